"""Streaming tracking: frames read lazily, features per clip, heads fed one frame at a time.

- the streaming path gives exactly what a straightforward whole-sequence reference gives (all
  frames read and encoded at once, then the heads), for pixels and a 3D encoder whose clips are
  shorter than the sequence;
- the frames decoded and the feature maps alive at once are bounded by a clip, not by the
  sequence's length;
- the pieces: FrameSequence, iter_features, LabelPropagator, SequenceJF, track_object on a
  stream.
"""

from __future__ import annotations

import re
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vidssl.errors import ConfigError, DatasetError
from vidssl.track import TrackConfig, build_adapter, run_tracking
from vidssl.track import datasets as datasets_mod
from vidssl.track import run as run_mod
from vidssl.track.adapter import AppearanceAdapter
from vidssl.track.association import AssociationTracker, roi_features
from vidssl.track.datasets import FrameSequence, resolve_dataset
from vidssl.track.metrics import (SequenceJF, mot_accumulator, mot_summary, sequence_jf,
                                  success_auc)
from vidssl.track.propagation import (LabelPropagator, PropagationConfig, masks_to_labels,
                                      propagate, radius_mask)
from vidssl.track.sot import SotConfig, track_object


# ------------------------------------------------------------ whole-sequence reference --
def whole_features(adapter: AppearanceAdapter, frames: np.ndarray, scale: int) -> torch.Tensor:
    """Every frame upsampled, normalised and encoded at once: ``adapter(x)`` on the whole
    ``(T, 3, H, W)`` sequence (what the tracking code did before it streamed)."""
    x = torch.as_tensor(frames).permute(0, 3, 1, 2).float()
    if scale > 1:
        x = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
        x = x.clamp(0, 255).round().to(torch.uint8).float()
    x = (x / 255 - adapter.mean) / adapter.std
    with torch.no_grad():
        return adapter.eval()(x).float()


def whole_propagate(feats: torch.Tensor, first: torch.Tensor, cfg: PropagationConfig):
    """Propagation over a whole ``(T, C, h, w)`` tensor, every frame's labels kept (the
    pre-streaming implementation)."""
    t_len, c, h, w = feats.shape
    n = h * w
    feats = F.normalize(feats.float(), dim=1).reshape(t_len, c, n)
    labels = torch.zeros(t_len, first.shape[0], n)
    labels[0] = first.reshape(first.shape[0], n).float()
    allowed = radius_mask(h, w, cfg.radius)
    for t in range(1, t_len):
        ctx = [0] + list(range(max(1, t - cfg.num_context), t))
        m = len(ctx)
        ctx_f = feats[ctx].permute(1, 0, 2).reshape(c, m * n)
        ctx_l = labels[ctx].permute(1, 0, 2).reshape(-1, m * n)
        aff = ctx_f.t() @ feats[t] / cfg.temperature
        if m > 1:
            aff[n:].masked_fill_(~allowed.repeat(m - 1, 1), float("-inf"))
        vals, idx = aff.topk(min(cfg.topk, m * n), dim=0)
        labels[t] = (ctx_l[:, idx] * torch.softmax(vals, dim=0).unsqueeze(0)).sum(1)
    return labels.reshape(t_len, -1, h, w)


def reference_vos(seq, adapter, cfg):
    frames, gt, s = seq.read_frames(), seq.read_labels(), cfg.frame_scale
    first = np.kron(gt[0], np.ones((s, s), dtype=gt.dtype)) if s > 1 else gt[0]
    ids = [int(k) for k in np.unique(first) if k != 0]
    feats = whole_features(adapter, frames, s)
    soft = whole_propagate(feats, masks_to_labels(first, ids, feats.shape[-2:]), cfg.propagation)
    lut = torch.tensor([0] + ids)
    up = F.interpolate(soft, size=first.shape, mode="bilinear", align_corners=False)
    pred = lut[up.argmax(1)].numpy()[:, s // 2::s, s // 2::s]
    pred[0] = gt[0]
    return pred, sequence_jf(pred, gt, np.unique(gt[0]))


def reference_mot(seq, adapter, cfg):
    feats = whole_features(adapter, seq.read_frames(), cfg.frame_scale)
    tracker = AssociationTracker(cfg.association)
    gt, hyp = {}, {}
    for f in range(1, len(seq) + 1):
        g = seq.frame_rows("gt", f)
        gt[f] = [(int(r[1]), r[2:6]) for r in g]
        d = seq.frame_rows("det", f)
        sets = roi_features(feats[f - 1], d[:, 1:5] * cfg.frame_scale, adapter.stride,
                            cfg.association.roi_size)
        hyp[f] = [(tid, box) for tid, box, _ in tracker.step(d[:, 1:5], d[:, 5], sets)]
    return hyp, mot_accumulator(gt, hyp, len(seq))


def reference_sot(seq, adapter, cfg):
    frames, s = seq.read_frames(), cfg.frame_scale
    feats = whole_features(adapter, frames, s)
    size = (frames.shape[1] * s, frames.shape[2] * s)
    return track_object(feats, seq.boxes[0] * s, size, adapter.stride, cfg.sot) / s


def appearance(name: str) -> AppearanceAdapter:
    torch.manual_seed(0)
    if name == "pixels":
        a = build_adapter(pixels=True)
        a.batch_frames = 5  # several clips per 16-frame sequence
        return a
    return build_adapter(name, window=4, context=2)  # 16 frames = 4 windows with context


@pytest.mark.parametrize("name,scale", [("pixels", 1), ("pixels", 2), ("r3d_tiny", 1)])
def test_streaming_equals_whole_sequence_reference(name, scale, tiny_tracking):
    """Same masks, J&F, MOT tracks and metrics, SOT boxes as encoding each sequence whole
    (pixels in clips of 5 frames; r3d_tiny in windows of 4 with 2 frames of context)."""
    adapter = appearance(name)
    cfg = TrackConfig(frame_scale=scale, vis_frames=1000)  # vis_frames: keep every VOS mask
    count = 2 if (name, scale) == ("pixels", 1) else 1  # sequences per task (time)

    _, vos = resolve_dataset("vos", str(tiny_tracking))
    for seq in vos[:count]:
        want, scores = reference_vos(seq, adapter, cfg)
        res, (_, masks) = run_mod._run_vos(seq, adapter, cfg, "cpu", visualize=True)
        assert sorted(masks) == list(range(len(seq)))
        assert np.array_equal(np.stack([masks[t] for t in range(len(seq))]), want), seq.name
        assert res["objects"] == {str(k): v for k, v in scores.items()} and scores

    _, mot = resolve_dataset("mot", str(tiny_tracking))
    got_accs, want_accs = {}, {}
    for seq in mot[:count]:
        want, want_accs[seq.name] = reference_mot(seq, adapter, cfg)
        _, (_, drawn, got_accs[seq.name]) = run_mod._run_mot(seq, adapter, cfg, "cpu", None)
        assert len(drawn) == len(seq) and any(drawn)
        for f, hyp in enumerate(drawn, 1):
            assert [i for i, _ in hyp] == [i for i, _ in want[f]]
            assert np.array_equal(np.array([b for _, b in hyp]), np.array([b for _, b in want[f]]))
    assert mot_summary(got_accs) == mot_summary(want_accs)

    _, sot = resolve_dataset("sot", str(tiny_tracking))
    for seq in sot[:count]:
        want = reference_sot(seq, adapter, cfg)
        res, (_, boxes, _) = run_mod._run_sot(seq, adapter, cfg, "cpu")
        assert np.array_equal(np.stack([b[0][1] for b in boxes]), want), seq.name
        assert res["boxes"] == want.round(2).tolist()
        assert res["auc"] == success_auc(want, seq.boxes)


# ------------------------------------------------------------------------ bounded memory --
def write_long_sequences(root, frames: int, size: int = 32) -> dict:
    """DAVIS, MOT and OTB folders over one ``frames``-long sequence of ``size``-pixel PNG
    frames: a bright square drifting over noise (first-frame mask, gt boxes)."""
    rng = np.random.default_rng(0)
    davis, mot, otb = root / "davis", root / "mot" / "LONG-01", root / "otb" / "Long"
    img, ann = davis / "JPEGImages" / "480p" / "long", davis / "Annotations" / "480p" / "long"
    for d in (img, ann, davis / "ImageSets" / "2017", mot / "img1", mot / "gt", otb / "img"):
        d.mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_text("long\n")
    rows = []
    for t in range(frames):
        frame = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        x = 4 + (t // 4) % (size - 16)
        frame[8:18, x:x + 10] = (250, 40, 40)
        Image.fromarray(frame).save(img / f"{t:05d}.png")
        Image.fromarray(frame).save(mot / "img1" / f"{t + 1:06d}.png")
        Image.fromarray(frame).save(otb / "img" / f"{t + 1:04d}.png")
        if t == 0:
            label = np.zeros((size, size), dtype=np.uint8)
            label[8:18, x:x + 10] = 1
            im = Image.fromarray(label, mode="P")
            im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
            im.save(ann / f"{t:05d}.png")
        rows.append(f"{t + 1},1,{x + 1},9,10,10,1,1,1\n")
    (mot / "gt" / "gt.txt").write_text("".join(rows))
    (otb / "groundtruth_rect.txt").write_text("".join(r.split(",", 2)[2].rsplit(",", 3)[0] + "\n"
                                                      for r in rows))
    return {"vos": davis, "mot": root / "mot", "sot": root / "otb"}


class Census:
    """Counts decoded frames and yielded feature maps that are still alive (weak references),
    and how far frame reading runs ahead of the maps handed out."""

    def __init__(self, monkeypatch):
        self.frames_alive = self.max_frames_alive = self.reads = 0
        self.maps_alive = self.max_maps_alive = 0
        self.last_read, self.max_lead = -1, 0
        read, stream = datasets_mod.read_frame, AppearanceAdapter.iter_features

        def counted_read(path):
            frame = read(path)
            self.reads += 1
            self.last_read = max(self.last_read, int(re.findall(r"\d+", path)[-1]))
            self.frames_alive += 1
            self.max_frames_alive = max(self.max_frames_alive, self.frames_alive)
            weakref.finalize(frame, self._frame_freed)
            return frame

        def counted_stream(adapter, frames, device="cpu"):
            base = int(re.findall(r"\d+", frames.paths[0])[-1])  # 1-based MOT / OTB files
            for t, fmap in enumerate(stream(adapter, frames, device)):
                self.max_lead = max(self.max_lead, self.last_read - base - t)
                self.maps_alive += 1
                self.max_maps_alive = max(self.max_maps_alive, self.maps_alive)
                weakref.finalize(fmap, self._map_freed)
                yield fmap
                del fmap

        monkeypatch.setattr(datasets_mod, "read_frame", counted_read)
        monkeypatch.setattr(AppearanceAdapter, "iter_features", counted_stream)

    def _frame_freed(self):
        self.frames_alive -= 1

    def _map_freed(self):
        self.maps_alive -= 1


@pytest.mark.parametrize("name,task", [("pixels", "vos"), ("pixels", "mot"), ("pixels", "sot"),
                                       ("r3d_tiny", "vos"), ("r3d_tiny", "mot")])
def test_frames_and_maps_alive_do_not_grow_with_length(name, task, tmp_path, monkeypatch):
    """pixels: batches of 16 independent frames; r3d_tiny with window 4, context 2: clips of
    4 + 2 x 2 = 8 frames whose last one is 5 frames ahead of the first map kept."""
    clip, lead = (16, 15) if name == "pixels" else (8, 5)
    seen = {}
    adapter = build_adapter(pixels=True) if name == "pixels" else \
        build_adapter(name, window=4, context=2)
    for frames in (30, 90):
        roots = write_long_sequences(tmp_path / str(frames), frames)
        census = Census(monkeypatch)
        res = run_tracking(task, str(roots[task]), encoder=adapter,
                           config=TrackConfig(mot_detections="gt"))
        assert res["speed"]["frames"] == frames
        assert census.reads == frames  # every frame decoded once, none twice
        assert census.max_frames_alive <= clip, census.max_frames_alive
        assert census.max_lead <= lead, census.max_lead
        assert census.max_maps_alive <= 2, census.max_maps_alive  # this frame's, the last one's
        seen[frames] = (census.max_frames_alive, census.max_lead, census.max_maps_alive)
        monkeypatch.undo()
    assert seen[30] == seen[90]  # 3x the frames, the same peak


def test_visualisations_reread_only_the_frames_drawn(tmp_path, monkeypatch):
    roots = write_long_sequences(tmp_path, 30)
    census = Census(monkeypatch)
    res = run_tracking("vos", str(roots["vos"]), pixels=True, out=str(tmp_path / "out"),
                       config=TrackConfig(vis_frames=4))
    assert len(res["visualizations"]) == 1
    assert census.reads == 30 + 4
    strip = np.asarray(Image.open(res["visualizations"][0]))
    assert strip.shape[1] == 4 * (32 + 4) - 4


# ------------------------------------------------------------------------------ the pieces --
def test_frame_sequence_reads_on_demand(tmp_path):
    paths = []
    for t in range(3):
        paths.append(str(tmp_path / f"{t}.png"))
        Image.fromarray(np.full((6, 10, 3), 50 * t, dtype=np.uint8)).save(paths[-1])
    seq = FrameSequence(paths)
    assert len(seq) == 3 and seq.frame_size == (6, 10)
    assert seq[2].shape == (6, 10, 3) and seq[2][0, 0, 0] == 100 and seq[-1][0, 0, 0] == 100
    assert seq[1:].shape == (2, 6, 10, 3) and [f[0, 0, 0] for f in seq] == [0, 50, 100]
    with pytest.raises(IndexError):
        seq[3]
    Image.fromarray(np.zeros((7, 10, 3), dtype=np.uint8)).save(paths[1])
    with pytest.raises(DatasetError, match="is 10x7, the sequence's first frame 10x6") as err:
        FrameSequence(paths)[1]  # frame 0's size read first, from its header
    assert "\n" not in str(err.value)
    (tmp_path / "1.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="cannot read frame"):
        FrameSequence(paths)[1]


@pytest.mark.parametrize("source,kw", [("pixels", {}), ("r3d_tiny", {"window": 3, "context": 1}),
                                       ("videomae_tiny", {}),
                                       ("clip_temporal_tiny", {"window": 4, "context": 3})])
def test_iter_features_reads_each_frame_once_and_equals_forward(source, kw):
    torch.manual_seed(0)
    a = build_adapter(pixels=True) if source == "pixels" else build_adapter(source, **kw)
    a.batch_frames = 4
    video = np.random.default_rng(1).integers(0, 256, (11, 24, 40, 3), dtype=np.uint8)
    reads = []

    class Frames:
        def __len__(self):
            return len(video)

        def __getitem__(self, t):
            reads.append(t)
            return video[t]

    maps = list(a.iter_features(Frames()))
    assert sorted(reads) == list(range(11))
    assert len(maps) == 11 and all(m.shape == maps[0].shape for m in maps)
    assert torch.equal(torch.stack(maps), whole_features(a, video, 1))
    assert torch.equal(torch.stack(maps), a.encode_video(video))


def test_label_propagator_equals_the_whole_sequence_reference():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(9, 8, 5, 6, generator=g)
    first = torch.rand(3, 5, 6, generator=g)
    for cfg in (PropagationConfig(num_context=2, radius=2.0), PropagationConfig(num_context=0),
                PropagationConfig(max_pairs=40)):
        want = whole_propagate(feats, first, cfg)
        prop = LabelPropagator(feats[0], first, cfg)
        got = torch.stack([first] + [prop.step(f) for f in feats[1:]])
        assert torch.allclose(got, want, atol=1e-6, rtol=0)
        assert len(prop.recent) == cfg.num_context  # only the context is held
        assert torch.allclose(propagate(feats, first, cfg), want, atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="frame 0's"):
        prop.step(torch.zeros(8, 4, 6))


def test_sequence_jf_frame_by_frame():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 3, (5, 20, 20))
    pred = np.where(rng.random((5, 20, 20)) < 0.8, gt, 0)
    acc = SequenceJF(5, [1, 2])
    for t in range(5):
        acc.add(t, pred[t], gt[t])
    assert acc.result() == sequence_jf(pred, gt, [1, 2])
    acc = SequenceJF(5, [1])
    with pytest.raises(ConfigError, match="frame 2 given, expected frame 0"):
        acc.add(2, pred[2], gt[2])
    acc.add(0, pred[0], gt[0])
    with pytest.raises(ConfigError, match="1 of 5 frames"):
        acc.result()


@pytest.mark.parametrize("method", ["xcorr", "dcf"])
def test_track_object_takes_a_stream(method):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(7, 8, 12, 14, generator=g)
    cfg = SotConfig(method=method)
    want = track_object(feats, [30, 20, 24, 16], (96, 112), 8, cfg)
    got = track_object((f.clone() for f in feats), [30, 20, 24, 16], (96, 112), 8, cfg)
    assert got.shape == (7, 4) and np.array_equal(got, want)
    with pytest.raises(ConfigError, match="at least one"):
        track_object(iter([]), [30, 20, 24, 16], (96, 112), 8, cfg)
