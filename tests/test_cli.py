"""The command line: help everywhere, one-line errors, the demo and the decode benchmark."""

from __future__ import annotations

import json

import pytest

from vidssl.cli import build_parser, main

SMALL = ["num_classes=3", "groups_per_class=3", "clips_per_group=2", "num_frames=20", "size=32",
         "tracking_sequences=1"]


@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "synthetic"
    assert main(["make-synthetic", "--out", str(root), "--quiet", *SMALL]) == 0
    return root


@pytest.mark.parametrize("argv", [[], ["demo"], ["make-synthetic"], ["index"], ["bench"],
                                  ["bench", "decode"], ["bench", "soak"], ["bench", "gpu"],
                                  ["track"], ["concepts"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*argv, "--help"])
    assert info.value.code == 0
    assert "usage: vidssl" in capsys.readouterr().out


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    return err


def test_bad_root_is_one_line(tmp_path, capsys):
    assert main(["index", "ucf101", "--root", str(tmp_path / "nope")]) == 2
    assert "nope" in _one_line_error(capsys)


def test_unknown_config_key_is_one_line(tmp_path, capsys):
    assert main(["make-synthetic", "--out", str(tmp_path / "s"), "bogus_key=1"]) == 2
    assert "bogus_key" in _one_line_error(capsys)


def test_missing_config_file_is_one_line(tmp_path, capsys):
    assert main(["make-synthetic", "--out", str(tmp_path / "s"), "--config",
                 str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml" in _one_line_error(capsys)


def test_an_output_folder_that_cannot_be_made_is_one_line(small_synthetic, tmp_path, capsys):
    """An output path under a file: the run-folder claim (pretrain, eval, track, compare) and any
    other command's folder creation (make-synthetic) say what and where in one line."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["make-synthetic", "--out", str(blocker / "syn")]) == 2
    assert "a_file" in _one_line_error(capsys)
    assert main(["pretrain", "encoder.name=r3d_tiny", f"data.root={small_synthetic}",
                 f"train.out_dir={blocker / 'run'}", "train.max_steps=1"]) == 2
    line = _one_line_error(capsys)
    assert "cannot create the training run folder" in line and "a_file" in line


def test_kinetics_needs_csv(tmp_path, capsys):
    assert main(["index", "kinetics_csv", "--root", str(tmp_path)]) == 2
    assert "--csv" in _one_line_error(capsys)


def test_index_summary_table(small_synthetic, capsys, tmp_path):
    save = tmp_path / "index.npz"
    assert main(["index", "synthetic", "--root", str(small_synthetic), "--split", "2",
                 "--subset", "test", "--save", str(save), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "synthetic" in out and "videos" in out and save.exists()
    from vidssl.data.index.core import VideoIndex

    assert len(VideoIndex.load(save)) == 6  # 3 classes x 1 test group x 2 clips


def test_make_synthetic_is_idempotent(small_synthetic, capsys):
    assert main(["make-synthetic", "--out", str(small_synthetic), "--quiet", *SMALL]) == 0
    assert main(["make-synthetic", "--out", str(small_synthetic), "--quiet", "num_classes=4",
                 *SMALL[1:]]) == 2
    assert "--overwrite" in _one_line_error(capsys)


def test_demo_runs_on_small_dataset(small_synthetic, capsys):
    assert main(["demo", "--root", str(small_synthetic), "--loader-only", "--quiet",
                 "num_workers=0", "batch_size=2", *[f"synthetic.{kv}" for kv in SMALL]]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "clips/s" in out and "no videos skipped" in out


def test_demo_on_a_dataset_made_with_other_settings_asks_for_overwrite(tmp_path, capsys):
    root = tmp_path / "synthetic"
    assert main(["make-synthetic", "--out", str(root), "--quiet", *SMALL]) == 0
    other = [f"synthetic.{kv}" for kv in ["num_classes=2", *SMALL[1:]]]
    demo = ["demo", "--root", str(root), "--loader-only", "--quiet"]
    other += ["num_workers=0", "batch_size=2"]
    assert main([*demo, *other]) == 2
    assert "--overwrite" in _one_line_error(capsys)
    assert main([*demo, "--overwrite", *other]) == 0
    assert "2 classes" in " ".join(capsys.readouterr().out.split())


def test_bench_decode_writes_results(small_synthetic, tmp_path, capsys):
    out_dir = tmp_path / "results"
    assert main(["bench", "decode", "--root", str(small_synthetic), "--clips", "6",
                 "--rounds", "1", "--frames", "8", "--out", str(out_dir)]) == 0
    result = json.loads((out_dir / "decode_throughput.json").read_text())
    names = set(result["results"])
    assert {"raw_torchcodec", "vidssl[torchcodec]", "vidssl[pyav]", "vidssl[decord]"} <= names
    assert result["results"]["raw_torchcodec"]["ratio_to_raw_torchcodec"] == pytest.approx(1.0)
    assert "| contender |" in (out_dir / "decode_throughput.md").read_text()


def test_train_benchmark_report_names_the_encoder_arguments():
    """A recipe's encoder arguments change what a step costs (CVRL's recipe feeds frame
    differences): the report's title says which were measured."""
    from vidssl.bench.train import to_markdown

    result = {"method": "cvrl", "encoder": "r3d_tiny", "encoder_kwargs": {"input_mode": "differences"},
              "device": "cpu", "batch_size": 16, "views": 2, "clip_shape": [16, 3, 64, 64], "num_workers": 2,
              "rounds": 3, "steps_per_round": 8, "clips_per_s": {"loader": 30.0, "in_memory": 36.0},
              "efficiency": 0.83, "environment": {}}
    assert to_markdown(result).startswith("# Training throughput (cvrl, r3d_tiny(input_mode=differences), cpu)")
    assert to_markdown({**result, "encoder_kwargs": {}}).startswith("# Training throughput (cvrl, r3d_tiny, cpu)")


def test_bench_gpu_runs_its_cpu_parts(small_synthetic, tmp_path, capsys):
    """Without CUDA the GPU benchmark still decodes with every CPU backend and runs the step
    comparison, and says which GPU backends were unavailable (the GPU numbers need a GPU)."""
    import torch

    from vidssl.data.decoders import available_decoders

    out = tmp_path / "results"
    assert main(["bench", "gpu", "--root", str(small_synthetic), "--sizes", "64x48",
                 "--videos", "2", "--frames", "24", "--clips", "12", "--encoders", "r3d_tiny",
                 "--batch-sizes", "4", "--steps", "1", "--rounds", "1", "--out", str(out)]) == 0
    result = json.loads((out / "gpu_pipeline.json").read_text())
    assert set(result["decode"]["64x48"]) >= set(available_decoders("cpu"))
    assert all(r["clips_per_s"] > 0 and r["clips"] == 12 for r in result["decode"]["64x48"].values())
    (e2e,) = result["end_to_end"]
    assert e2e["encoder"] == "r3d_tiny" and 0 <= e2e["data_wait_fraction"] <= 1
    if not torch.cuda.is_available():
        assert {"torchcodec_cuda", "pynvvideocodec"} <= set(result["unavailable"])
    assert "--encoders r3d_tiny" in result["command"]
    assert "loader clips/s" in (out / "gpu_pipeline.md").read_text()


def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "vidssl", "index", "folder", "--root",
                           str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("vidssl index: error:")
