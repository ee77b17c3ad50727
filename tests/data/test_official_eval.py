"""``vidssl eval --dataset diving48`` end to end on a fake Diving48 tree of real tiny videos: the
official V2 JSON files and vocab, one video missing, split 1 evaluated by default (kNN)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.conftest import write_video
from vidssl.cli import main

VOCAB = [["Back", "15som", "05Twis", "FREE"], ["Forward", "25som", "NoTwis", "PIKE"],
         ["Inward", "35som", "NoTwis", "TUCK"]]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def diving_tree(tmp_path_factory):
    """3 classes; train 3 videos per class, test 2 (one test video missing): 16 frames of 32x32."""
    root = tmp_path_factory.mktemp("d48") / "Diving48"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "Diving48_vocab.json").write_text(json.dumps(VOCAB))
    for subset, per_class in (("train", 3), ("test", 2)):
        entries = [{"vid_name": f"{subset}_{c}_{k:05d}", "label": c, "start_frame": 0, "end_frame": 16}
                   for c in range(3) for k in range(per_class)]
        (root / "annotations" / f"Diving48_V2_{subset}.json").write_text(json.dumps(entries))
        for e in entries:
            if e["vid_name"] != "test_2_00001":
                write_video(root / "rgb" / f"{e['vid_name']}.mp4", num_frames=16, fps=16,
                            seed=e["label"])
    return root


def test_eval_knn_on_diving48_split1(diving_tree, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--encoder", "r3d_tiny", "--dataset", "diving48", "--root", str(diving_tree),
                 "--protocol", "knn", "--out", str(out), "--quiet", "--device", "cpu",
                 "features.num_clips=1", "features.clip_len=4", "features.stride=2",
                 "features.size=32", "features.resize_size=32", "features.num_workers=0",
                 "knn.k=3"]) == 0
    results = json.loads((out / "results.json").read_text())
    text = json.dumps(results)
    assert results["dataset"] == "diving48" and results["splits"] == [1]
    assert '"1"' in json.dumps(results["info"]["videos"]) and "knn" in text
    assert results["info"]["videos"]["1"]["train"] == 9 and results["info"]["videos"]["1"]["test"] == 5
    assert "diving48" in capsys.readouterr().out


def test_zeroshot_on_diving48_uses_the_vocab_names_and_curated_attributes(diving_tree):
    from vidssl.config import load_config
    from vidssl.eval import EvalConfig, evaluate
    from vidssl.models.encoders import create_encoder

    torch.manual_seed(0)
    enc = create_encoder("clip_temporal_tiny")
    feats = ["features.num_clips=1", "features.clip_len=4", "features.stride=2", "features.size=32",
             "features.resize_size=32", "features.num_workers=0"]
    plain = evaluate(enc, dataset="diving48", root=diving_tree, protocols="zeroshot", device="cpu",
                     config=load_config(EvalConfig, None, feats), progress=False)
    curated = evaluate(enc, dataset="diving48", root=diving_tree, protocols="zeroshot", device="cpu",
                       config=load_config(EvalConfig, None, [*feats, "zeroshot.attributes=curated"]),
                       progress=False)
    for res in (plain, curated):
        assert res.splits == [1] and res.info["zeroshot"]["classes"] == 3
        assert 0.0 <= res.per_split[1]["zeroshot"]["top1"] <= 1.0
        assert res.info["videos"]["1"]["zeroshot_test_used"] == 5
