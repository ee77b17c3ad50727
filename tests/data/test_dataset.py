"""ClipDataset / collate / loader: decode once, determinism, bad files skipped and counted."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from tests.conftest import write_video
from vidssl.data.dataset import (
    ClipDataset,
    EpochShuffleSampler,
    SkipCounter,
    build_loader,
    collate_clips,
    set_loader_epoch,
)
from vidssl.data.decoders import available_decoders, open_video
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers import RandomClipSampler, TCLRSampler
from vidssl.errors import VidsslError


def make_index(paths, num_frames=40, name="test") -> VideoIndex:
    n = len(paths)
    return VideoIndex([str(p) for p in paths], np.arange(n) % 3, [num_frames] * n, [8.0] * n,
                      np.arange(n), class_names=["a", "b", "c"], name=name)


@pytest.fixture(scope="module")
def good_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("good")
    return [write_video(root / f"v{i}{'.mp4' if i % 2 else '.avi'}", num_frames=40, seed=i)
            for i in range(6)]


@pytest.mark.parametrize("backend", available_decoders())
def test_item_is_decoded_sampled_frames(good_videos, backend):
    ds = ClipDataset(make_index(good_videos), RandomClipSampler(num_frames=8, stride=2),
                     decoder=backend, seed=3)
    item = ds[2]
    (clip,) = item["views"]
    assert clip.dtype == torch.uint8 and clip.shape == (8, 3, 32, 32)
    expected_idx = ds.sampler(40, 8.0, ds.rng(2)).views[0]
    with open_video(good_videos[2]) as dec:
        assert torch.equal(clip, dec.get_frames(expected_idx))
    assert item["label"] == 2 and item["index"] == 2 and item["skipped"] == []


def test_views_decoded_in_one_call(good_videos, monkeypatch):
    calls = []
    from vidssl.data.decoders.torchcodec_backend import TorchCodecDecoder

    original = TorchCodecDecoder.get_frames

    def counting(self, indices):
        calls.append(len(indices))
        return original(self, indices)

    monkeypatch.setattr(TorchCodecDecoder, "get_frames", counting)
    sampler = TCLRSampler(num_frames=4, global_stride=2, num_local=2)
    ds = ClipDataset(make_index(good_videos), sampler)
    item = ds[0]
    assert len(calls) == 1 and calls[0] == sum(sampler.view_lengths)
    assert [v.shape[0] for v in item["views"]] == list(sampler.view_lengths)


def test_deterministic_and_epoch_dependent(good_videos):
    ds = ClipDataset(make_index(good_videos), RandomClipSampler(num_frames=4, stride=1), seed=7)
    a, b = ds[1]["views"][0], ds[1]["views"][0]
    assert torch.equal(a, b)
    draws = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        draws.add(tuple(ds.sampler(40, 8.0, ds.rng(1)).views[0]))
    assert len(draws) > 1


def test_loader_batches_same_for_any_worker_count(good_videos):
    def run(workers):
        ds = ClipDataset(make_index(good_videos), RandomClipSampler(num_frames=4, stride=3), seed=1)
        loader = build_loader(ds, batch_size=3, num_workers=workers, seed=5)
        set_loader_epoch(loader, 1)
        return [(b["index"].tolist(), b["views"][0]) for b in loader]

    serial, parallel = run(0), run(2)
    assert [i for i, _ in serial] == [i for i, _ in parallel]
    assert all(torch.equal(x, y) for (_, x), (_, y) in zip(serial, parallel))
    batch_idx = sorted(i for idx, _ in serial for i in idx)
    assert batch_idx == list(range(6))


def test_epoch_over_tree_with_bad_files_completes(good_videos, bad_files, tmp_path, caplog):
    missing = tmp_path / "gone.mp4"
    paths = list(good_videos) + list(bad_files.values()) + [missing]
    ds = ClipDataset(make_index(paths), RandomClipSampler(num_frames=4, stride=2))
    loader = build_loader(ds, batch_size=4, num_workers=2, drop_last=False, shuffle=True)
    counter = SkipCounter()
    seen = 0
    with caplog.at_level(logging.WARNING, logger="vidssl.data"):
        for batch in loader:
            counter.update(batch)
            seen += batch["views"][0].shape[0]
            assert all(int(i) < len(good_videos) for i in batch["index"])  # only good files
    assert seen == len(paths)  # every item produced a clip, bad ones replaced
    bad_paths = {str(p) for p in bad_files.values()} | {str(missing)}
    assert set(counter.paths) == bad_paths
    assert counter.count >= len(bad_paths)
    assert "unreadable files" in counter.summary() and "gone.mp4" in counter.summary()
    assert counter.paths[str(missing)] == "file not found"


def test_single_process_warning_names_the_file(good_videos, bad_files, caplog):
    ds = ClipDataset(make_index([bad_files["random"], good_videos[0]]),
                     RandomClipSampler(num_frames=4))
    with caplog.at_level(logging.WARNING, logger="vidssl.data"):
        item = ds[0]
    assert item["index"] == 1
    assert str(bad_files["random"]) in caplog.text
    assert item["skipped"][0][0] == str(bad_files["random"])


def test_all_files_bad_raises_clearly(bad_files):
    ds = ClipDataset(make_index(list(bad_files.values())), RandomClipSampler(num_frames=4),
                     max_attempts=6)
    with pytest.raises(VidsslError, match="6 consecutive videos .* could not be decoded"):
        ds[0]


def test_collate_mismatched_sizes_says_what_to_do(good_videos, tmp_path):
    big = write_video(tmp_path / "big.mp4", num_frames=40, height=48, width=48)
    ds = ClipDataset(make_index([good_videos[0], big]), RandomClipSampler(num_frames=4))
    with pytest.raises(VidsslError, match=r"set data\.crop .* in the config") as info:
        collate_clips([ds[0], ds[1]])
    assert "\n" not in str(info.value)


def test_collate_targets_and_info(good_videos):
    from vidssl.data.samplers import VCOPSampler

    ds = ClipDataset(make_index(good_videos), VCOPSampler(clip_len=4, interval=2))
    batch = collate_clips([ds[i] for i in range(4)])
    assert len(batch["views"]) == 3 and batch["views"][0].shape == (4, 4, 3, 32, 32)
    assert batch["targets"]["order"].shape == (4,)
    assert batch["label"].tolist() == [0, 1, 2, 0]


def test_epoch_shuffle_sampler():
    s = EpochShuffleSampler(10, seed=1)
    first = list(s)
    assert sorted(first) == list(range(10)) and list(s) == first
    s.set_epoch(1)
    assert list(s) != first
    assert list(EpochShuffleSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_distributed_loader_uses_distributed_sampler(good_videos, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        ds = ClipDataset(make_index(good_videos), RandomClipSampler(num_frames=4))
        loader = build_loader(ds, batch_size=2)
        assert isinstance(loader.sampler.base, DistributedSampler)
        set_loader_epoch(loader, 3)
        assert loader.sampler.base.epoch == 3 and ds.epoch == 3
        assert sum(b["views"][0].shape[0] for b in loader) == 6
    finally:
        dist.destroy_process_group()


def test_loader_resumes_inside_an_epoch(good_videos):
    ds = ClipDataset(make_index(good_videos), RandomClipSampler(num_frames=4))
    loader = build_loader(ds, batch_size=2)
    set_loader_epoch(loader, 2)
    full = [b["index"].tolist() for b in loader]
    assert len(full) == 3
    set_loader_epoch(loader, 2, start_batch=1)
    assert len(loader) == 2
    resumed = [b["index"].tolist() for b in loader]
    assert resumed == full[1:]
    set_loader_epoch(loader, 2)  # the offset applies to one epoch only
    assert [b["index"].tolist() for b in loader] == full


def test_ranks_split_the_videos(good_videos):
    ds = ClipDataset(make_index(good_videos), RandomClipSampler(num_frames=4))
    parts = [list(DistributedSampler(ds, num_replicas=2, rank=r, seed=0)) for r in range(2)]
    assert sorted(parts[0] + parts[1]) == list(range(6)) and not set(parts[0]) & set(parts[1])


def test_empty_index_and_small_dataset_errors(good_videos):
    with pytest.raises(VidsslError, match="no videos"):
        ClipDataset(make_index([]), RandomClipSampler(num_frames=4))
    ds = ClipDataset(make_index(good_videos[:2]), RandomClipSampler(num_frames=4))
    with pytest.raises(VidsslError, match="fewer than one batch"):
        build_loader(ds, batch_size=4)


def test_a_bad_file_is_counted_every_time_it_is_drawn_whatever_the_loader(tmp_path):
    """A file found unreadable is remembered in-process (not decoded again) but still counted
    each time a sample or a replacement draw lands on it, so the counts do not depend on whether
    the dataset lives in workers (fresh each epoch), in-process or behind the DeviceLoader."""
    from vidssl.data.dataset import SkipCounter
    from vidssl.data.device_loader import DeviceLoader

    paths = [str(write_video(tmp_path / f"good{k}.mp4", num_frames=24, seed=k)) for k in range(3)]
    (tmp_path / "zero.mp4").write_bytes(b"")
    paths.append(str(tmp_path / "zero.mp4"))
    index = VideoIndex(paths, [0] * 4, [24] * 4, [8.0] * 4, class_names=["a"], name="t")
    per_mode = {}
    for mode in ("in_process", "workers", "device"):
        ds = ClipDataset(index, RandomClipSampler(num_frames=4, stride=1))
        loader = (DeviceLoader(ds, 4, "cpu", shuffle=False) if mode == "device"
                  else build_loader(ds, 4, shuffle=False, num_workers=2 if mode == "workers" else 0))
        counts, total = [], SkipCounter()
        for epoch in range(3):
            set_loader_epoch(loader, epoch)
            seen = SkipCounter()
            for batch in loader:
                seen.update(batch)
            counts.append(seen.count)
            total.merge(seen)
        per_mode[mode] = counts
        assert min(counts) >= 1 and list(total.paths) == [paths[-1]] and "empty" in total.paths[paths[-1]]
        assert SkipCounter.from_state(total.state()).summary() == total.summary()
    assert per_mode["in_process"] == per_mode["workers"] == per_mode["device"], per_mode
