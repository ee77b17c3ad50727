"""The counterfactual protocol: rendered triplets (same action / other look, same look / other
action) and the motion-preference outcome, on real encoded files."""

from __future__ import annotations

import numpy as np
import pytest
from torchcodec.decoders import VideoDecoder

from tests.eval.test_run_report import small_config
from vidssl.data.synthetic.counterfactual import dataset_params, write_counterfactual
from vidssl.errors import ConfigError, DatasetError
from vidssl.eval import evaluate
from vidssl.eval.counterfactual import counterfactual_setup, motion_preference


def test_motion_preference_by_hand():
    rng = np.random.default_rng(0)
    anchor = rng.normal(size=(5, 8))
    near, far = anchor + 0.01 * rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    assert motion_preference(anchor, near, far)["motion_preference"].tolist() == [1.0] * 5
    assert motion_preference(anchor, far, near)["motion_preference"].tolist() == [0.0] * 5
    out = motion_preference(anchor, 2 * anchor, 3 * anchor)          # equal cosines: a tie
    assert out["motion_preference"].tolist() == [0.5] * 5
    np.testing.assert_allclose(out["cos_motion"], 1.0)
    np.testing.assert_allclose(out["action_share"], 0.5)                # neither moves it
    # by hand: cos to the motion twin 0 (look moves it by 1), to the look twin 0.5 (action by 0.5)
    e = np.eye(3)[None]
    hand = motion_preference(e[:, 0], e[:, 1], (e[:, 0] + np.sqrt(3) * e[:, 1]) / 2)
    np.testing.assert_allclose(hand["cos_look"], 0.5)
    np.testing.assert_allclose(hand["action_share"], 0.5 / 1.5)
    assert hand["motion_preference"].tolist() == [0.0]
    mixed = motion_preference(anchor, np.vstack([near[:2], far[2:]]), np.vstack([far[:2], near[2:]]))
    assert mixed["motion_preference"].mean() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="one shape"):
        motion_preference(anchor, near[:4], far)


def _frame0(path) -> np.ndarray:
    return VideoDecoder(str(path))[0].permute(1, 2, 0).numpy().astype(np.float64)


def test_triplets_share_the_action_or_the_look(tmp_path, small_synthetic):
    params = dataset_params(small_synthetic)
    triplets = write_counterfactual(tmp_path / "a", params, num_triplets=4, seed=0)
    again = write_counterfactual(tmp_path / "b", params, num_triplets=4, seed=0)
    assert [t.anchor for t in triplets] == [t.anchor for t in again]
    for t in triplets:
        assert t.anchor.startswith(t.anchor_class + "/") and t.motion.startswith(t.anchor_class + "/")
        assert t.look.startswith(t.look_class + "/") and t.look_class != t.anchor_class
        assert (tmp_path / "a" / t.anchor).read_bytes() == (tmp_path / "b" / t.anchor).read_bytes()
        dec = VideoDecoder(str(tmp_path / "a" / t.anchor))
        assert len(dec) == params["num_frames"] and dec.metadata.width == params["size"]
        a, m, lk = (_frame0(tmp_path / "a" / getattr(t, r)) for r in ("anchor", "motion", "look"))
        # same look (background, object, start position): the first frames nearly agree
        assert np.median(np.abs(a - lk)) < 0.5 * np.median(np.abs(a - m))


def test_dataset_params_errors(tmp_path):
    with pytest.raises(DatasetError, match="synthetic.json"):
        dataset_params(tmp_path)
    with pytest.raises(ConfigError, match="at least 1"):
        write_counterfactual(tmp_path, {"num_frames": 8, "size": 32, "fps": 8}, num_triplets=0)


def test_protocol_end_to_end(small_synthetic, tiny_encoder):
    cfg = small_config()
    cfg.bn.mode = "recompute"
    cfg.diagnostics.counterfactual_triplets = 5
    res = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1],
                   protocols=["counterfactual"], config=cfg, progress=False)
    out = res.per_split[1]["counterfactual"]
    assert set(out) == {"motion_preference", "action_share", "cos_motion", "cos_look"}
    assert 0.0 <= out["action_share"] <= 1.0
    pv = res.info["per_video"]["1"]["counterfactual"]
    assert len(pv["videos"]) == 5 and all(v.startswith(".counterfactual/") for v in pv["videos"])
    assert set(pv["outcomes"]["motion_preference"]) <= {0.0, 0.5, 1.0}
    assert out["motion_preference"] == pytest.approx(np.mean(pv["outcomes"]["motion_preference"]))
    assert any(n.startswith("counterfactual: 5 rendered triplets") for n in res.info["notes"])
    row = next(r for r in res.to_markdown().splitlines() if "action_share (%)" in r)
    assert row.count("[") == 2                                    # split 1 and mean, with intervals
    # deterministic: the same encoder and settings give the same outcomes
    res2 = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1],
                    protocols=["counterfactual"], config=cfg, progress=False)
    assert res2.info["per_video"]["1"]["counterfactual"] == pv


def test_protocol_refuses_other_datasets():
    class Ctx:
        dataset, root = "ucf101", None

    with pytest.raises(ConfigError, match="needs the synthetic dataset"):
        counterfactual_setup(Ctx())



def test_rendered_once_and_encoded_once_per_encoder(small_synthetic, tiny_encoder, monkeypatch):
    import vidssl.data.synthetic.counterfactual as cf
    import vidssl.eval.features as features

    renders, encodes = [], []
    real_write, real_extract = cf.write_counterfactual, features.extract_features
    monkeypatch.setattr(cf, "write_counterfactual", lambda *a, **k: renders.append(1) or real_write(*a, **k))

    def counting(encoder, index, **kw):
        encodes.append(index.name)
        return real_extract(encoder, index, **kw)

    monkeypatch.setattr(features, "extract_features", counting)
    cfg = small_config()
    cfg.diagnostics.counterfactual_triplets = 3
    res = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1, 2, 3],
                   protocols=["counterfactual"], config=cfg, progress=False)   # bn keep: one encoder
    assert renders == [1] and len(encodes) == 1
    assert len({str(res.per_split[s]["counterfactual"]) for s in (1, 2, 3)}) == 1
