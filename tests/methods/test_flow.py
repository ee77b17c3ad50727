"""Optical flow for CoCLR's second modality: RAFT (random init: no weights can be fetched here)
on the fly, precomputed flow videos with tools/precompute_flow.py, and their paired loading."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidssl.data.dataset import ClipDataset, build_loader
from vidssl.data.decoders import open_video
from vidssl.data.index import build_index
from vidssl.errors import VidsslError
from vidssl.methods import create_method
from vidssl.models.encoders import create_encoder
from vidssl.models.flow import compute_flow, flow_to_image, load_raft

REPO = Path(__file__).resolve().parents[2]


def test_flow_to_image_encoding():
    flow = torch.tensor([[[[30.0]], [[-10.0]]]])                       # (1, 2, 1, 1): u 30 -> clipped 20
    img = flow_to_image(flow, bound=20)
    assert img.shape == (1, 3, 1, 1)
    assert img[0, 0].item() == pytest.approx(1.0) and img[0, 1].item() == pytest.approx(0.25)
    assert img[0, 2].item() == pytest.approx(min(1.0, math.hypot(20, 10) / 20))


def test_compute_flow_shapes_and_upsampling():
    torch.manual_seed(0)
    raft = load_raft("raft_small", None)
    frames = torch.rand(2, 3, 3, 40, 48)
    flow = compute_flow(raft, frames, num_flow_updates=2)              # 40x48 -> 128x152 and back
    assert flow.shape == (2, 2, 2, 40, 48) and torch.isfinite(flow).all()
    with pytest.raises(ValueError, match="T \\+ 1 >= 2"):
        compute_flow(raft, frames[:, :1])


def test_missing_flow_weights_are_clear(tmp_path):
    with pytest.raises(VidsslError, match="do not exist"):
        load_raft("raft_small", str(tmp_path / "nope.pth"))
    with pytest.raises(VidsslError, match="unknown flow model"):
        load_raft("pwc", None)


def test_coclr_flow_on_the_fly_trains():
    torch.manual_seed(0)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {"num_frames": 2, "crop_size": 32, "queue_size": 8, "topk": 2,
                            "second_modality": "flow", "flow_weights": None, "train_modality": "flow"})
    g = torch.Generator().manual_seed(0)
    views = [torch.randint(0, 256, (2, 3, 3, 40, 40), dtype=torch.uint8, generator=g) for _ in range(2)]
    out = method({"views": views, "targets": {}})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and all(p.grad is not None for p in method.encoder.parameters())
    assert not any(p.requires_grad for p in method.flow.parameters())


@pytest.fixture(scope="module")
def flow_tree(tiny_synthetic, tmp_path_factory):
    """Two synthetic videos (one .avi, one .mp4) and their precomputed flow videos."""
    root = tmp_path_factory.mktemp("flowsrc")
    index = build_index("synthetic", tiny_synthetic, split=1, subset="train", progress=False)
    picked = [p for p in index.paths if p.endswith(".avi")][:1] + [p for p in index.paths if p.endswith(".mp4")][:1]
    for p in picked:
        dst = root / os.path.relpath(p, tiny_synthetic)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
    out = tmp_path_factory.mktemp("flowout")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, str(REPO / "tools" / "precompute_flow.py"), "--root", str(root),
                          "--out", str(out), "--weights", "none", "--updates", "1", "--quiet"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 written" in run.stdout
    return root, out, picked


def test_precompute_writes_one_flow_video_per_video(flow_tree):
    root, out, _ = flow_tree
    flows = sorted(str(q) for q in Path(out).rglob("*") if q.suffix in (".avi", ".mp4"))
    assert len(flows) == 2
    for f in flows:
        src = os.path.join(root, os.path.relpath(f, out))
        with open_video(src) as a, open_video(f) as b:
            assert b.metadata.num_frames == a.metadata.num_frames - 1
            assert (b.metadata.height, b.metadata.width) == (a.metadata.height, a.metadata.width)
    # a second run keeps the finished files
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    again = subprocess.run([sys.executable, str(REPO / "tools" / "precompute_flow.py"), "--root", str(root),
                            "--out", str(out), "--weights", "none", "--quiet"], capture_output=True, text=True, env=env)
    assert "0 written, 2 kept" in again.stdout


def test_paired_dataset_and_coclr_flow_video(flow_tree, tiny_synthetic):
    root, out, _ = flow_tree
    full = build_index("synthetic", tiny_synthetic, split=1, subset="train", progress=False)
    keep = [i for i, p in enumerate(full.paths) if os.path.exists(os.path.join(out, os.path.relpath(p, tiny_synthetic)))]
    assert len(keep) == 2
    index = full.subset(keep)
    method = create_method("coclr", create_encoder("r3d_tiny"),
                           {"num_frames": 4, "crop_size": 32, "queue_size": 8, "topk": 2,
                            "second_modality": "flow_video", "train_modality": "flow_video"})
    ds = ClipDataset(index, method.sampler, paired=(str(tiny_synthetic), str(out)))
    item = ds[0]
    assert len(item["views"]) == 4 and item["views"][2].shape == item["views"][0].shape
    batch = next(iter(build_loader(ds, 2, num_workers=0, shuffle=False)))
    out_ = method(batch)
    assert torch.isfinite(out_["loss"])
    with pytest.raises(ValueError, match="paired_root"):
        method({"views": batch["views"][:2], "targets": {}})
    missing = ClipDataset(full, method.sampler, paired=(str(tiny_synthetic), str(out)), max_attempts=50)
    absent = next(i for i in range(len(full)) if i not in keep)
    sample = missing[absent]                                            # skipped, replaced by a paired one
    assert sample["skipped"] and "paired video" in sample["skipped"][0][1]
