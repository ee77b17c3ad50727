"""GPU-decoding plumbing that runs on CPU: the DeviceLoader (same batches as the DataLoader path,
resumable, errors surface, the producer stops), ``decoder: auto`` calibration, and the GPU
backends' behaviour without a GPU. The GPU-only checks at the end are skipped without CUDA."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from vidssl.data.dataset import ClipDataset, build_loader, set_loader_epoch
from vidssl.data.decoders import available_decoders, decoder_class, decoder_device, list_decoders
from vidssl.data.decoders.calibrate import choose_decoder
from vidssl.data.device_loader import DeviceLoader
from vidssl.data.index import build_index
from vidssl.data.index.core import VideoIndex
from vidssl.data.samplers import RandomClipSampler
from vidssl.errors import BackendUnavailableError, MissingDependencyError, VidsslError

GPU_BACKENDS = ("torchcodec_cuda", "pynvvideocodec")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def index(tiny_synthetic):
    return build_index("synthetic", tiny_synthetic, split=1, subset="train", progress=False)


def make_dataset(index, decoder="torchcodec"):
    return ClipDataset(index, RandomClipSampler(num_frames=4, stride=2), decoder=decoder, seed=3)


def batches(loader, epoch=0, start=0):
    set_loader_epoch(loader, epoch, start_batch=start)
    return [(b["index"].tolist(), b["views"][0].clone()) for b in loader]


def test_device_loader_gives_the_dataloader_batches(index):
    ds = make_dataset(index)
    reference = build_loader(ds, 4, num_workers=0, seed=7)
    device_loader = DeviceLoader(ds, 4, "cpu", seed=7)
    assert len(device_loader) == len(reference) == len(index) // 4
    for epoch in (0, 1):
        a, b = batches(reference, epoch), batches(device_loader, epoch)
        assert [i for i, _ in a] == [i for i, _ in b]
        assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a, b))
    # Resuming inside an epoch skips the consumed batches, like the DataLoader path.
    assert [i for i, _ in batches(device_loader, 1, start=2)] == [i for i, _ in batches(reference, 1)][2:]


def test_device_loader_stops_its_thread_on_break_and_surfaces_errors(index, tmp_path):
    loader = DeviceLoader(make_dataset(index), 2, "cpu", prefetch=2)
    for _ in loader:
        break
    assert not [t for t in threading.enumerate() if t.name == "vidssl-device-loader"]
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    broken = VideoIndex([str(bad)] * 4, [0] * 4, [8] * 4, [8.0] * 4)
    dataset = ClipDataset(broken, RandomClipSampler(num_frames=4, stride=1), max_attempts=3)
    with pytest.raises(VidsslError, match="3 consecutive videos"):
        list(DeviceLoader(dataset, 2, "cpu"))


def test_device_loader_break_after_the_last_batch_was_produced_does_not_wait(index):
    """The producer has queued every batch and waits to add its end marker to a full queue
    when the consumer stops: it must notice the stop, not block until join gives up."""
    import time

    loader = DeviceLoader(make_dataset(index), 2, "cpu", prefetch=1, shuffle=False)
    loader.sampler = list(range(6))  # 3 batches
    it = iter(loader)
    next(it)
    time.sleep(0.5)  # the producer fills the queue with batch 2, then blocks on batch 3 / the marker
    it.close()  # joins the producer (up to 30 s); a producer stuck on the full queue outlives it
    assert not [t for t in threading.enumerate() if t.name == "vidssl-device-loader"]


def test_decoder_auto_times_every_backend_and_picks_the_fastest(index, caplog):
    with caplog.at_level("INFO", logger="vidssl"):
        choice = choose_decoder(lambda name: make_dataset(index, name), samples=4)
    assert set(choice.rates) == set(available_decoders("cpu"))
    assert choice.decoder == max(choice.rates, key=choice.rates.get)
    assert all(r > 0 for r in choice.rates.values())
    assert "decoder auto:" in choice.reason and choice.reason in caplog.text
    # CPU rates scale with the workers that will run them.
    two = choose_decoder(lambda name: make_dataset(index, name), samples=4, num_workers=2,
                         candidates=["torchcodec"])
    from vidssl.data.decoders.calibrate import cpus_per_process

    assert two.rates["torchcodec"] == pytest.approx(two.single["torchcodec"] * min(2, cpus_per_process()))


def test_cpu_share_is_split_between_the_ranks_of_a_node(monkeypatch):
    from vidssl.data.decoders.calibrate import cpus_per_process

    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert cpus_per_process() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert cpus_per_process() == 1


def test_decoder_auto_does_not_time_the_fallback_as_the_candidate(index, tmp_path):
    """A candidate that only 'decodes' through the fallback decoder would be timed at the
    fallback's speed and could win; it is marked failed instead."""
    import shutil

    from vidssl.data.decoders.base import DECODERS, register_decoder

    register_decoder("refusing_test", "tests.reliability.hanging_backend", "RefusingDecoder",
                     "torchcodec", "torchcodec")
    try:
        odd = [tmp_path / f"odd{k}.mp4" for k in range(4)]
        for k, path in enumerate(odd):
            shutil.copy(index.path(k), path)
        sub = VideoIndex([str(o) for o in odd], [0] * 4, [int(index.num_frames[0])] * 4, [8.0] * 4)

        def factory(name):  # refusing_test reads none of these; its fallback (pyav) reads all
            return ClipDataset(sub, RandomClipSampler(num_frames=4, stride=1), decoder=name,
                               fallback_decoder="pyav" if name == "refusing_test" else None)

        choice = choose_decoder(factory, samples=3, candidates=["refusing_test", "torchcodec"])
        assert choice.decoder == "torchcodec" and "fallback" in choice.failed["refusing_test"]
    finally:
        DECODERS.pop("refusing_test", None)


def test_decoder_auto_skips_a_failing_candidate(index, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"junk")

    def factory(name):
        if name == "pyav":  # a backend that cannot read this dataset at all
            broken = VideoIndex([str(bad)] * 4, [0] * 4, [8] * 4, [8.0] * 4)
            return ClipDataset(broken, RandomClipSampler(num_frames=4, stride=1), decoder=name,
                               max_attempts=2)
        return make_dataset(index, name)

    choice = choose_decoder(factory, samples=3, candidates=["pyav", "torchcodec"])
    assert choice.decoder == "torchcodec" and "pyav" in choice.failed


def test_pretrain_with_decoder_auto_and_the_device_loader(tiny_synthetic, tmp_path, caplog):
    from tests.train.test_pretrain import tiny_config
    from vidssl.train.loop import pretrain

    cfg = tiny_config(tiny_synthetic, tmp_path, "train.max_steps=2", "data.decoder=auto",
                      "data.loader=device")
    with caplog.at_level("INFO", logger="vidssl"):
        result = pretrain(cfg)
    assert result.steps == 2 and np.isfinite(result.losses).all()
    assert "decoder auto:" in caplog.text


def test_gpu_backends_are_registered_lazily_and_refused_without_cuda(index):
    assert set(GPU_BACKENDS) <= set(list_decoders("cuda"))
    assert not set(GPU_BACKENDS) & set(list_decoders("cpu"))
    assert all(decoder_device(n) == "cuda" for n in GPU_BACKENDS)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot be observed")
    assert available_decoders("cuda") == []
    for name in GPU_BACKENDS:
        with pytest.raises((BackendUnavailableError, MissingDependencyError)) as info:
            decoder_class(name).check_available()
        assert "\n" not in str(info.value)
    with pytest.raises(BackendUnavailableError, match="needs a CUDA GPU"):
        make_dataset(index, "torchcodec_cuda")


def test_gpu_frames_cannot_go_through_dataloader_workers(index, monkeypatch):
    ds = make_dataset(index)
    ds.decoder = "torchcodec_cuda"  # as if built on a GPU machine
    with pytest.raises(VidsslError, match="data.loader=device"):
        build_loader(ds, 2, num_workers=2)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = ((a.float() - b.float()) ** 2).mean().item()
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@needs_cuda
@pytest.mark.parametrize("backend", GPU_BACKENDS)
def test_gpu_frames_match_cpu_frames(index, backend):
    from vidssl.data.decoders import open_video

    if backend not in available_decoders("cuda"):
        pytest.skip(f"{backend} not usable here")
    path, want = index.path(0), np.array([0, 3, 7, 2])
    with open_video(path, "torchcodec") as cpu, open_video(path, backend) as gpu:
        a, b = cpu.get_frames(want), gpu.get_frames(want)
        assert gpu.metadata.num_frames == cpu.metadata.num_frames
    assert b.is_cuda and b.dtype == torch.uint8 and b.shape == a.shape
    assert psnr(a, b.cpu()) > 30  # colour conversion differs slightly; the frames must agree


@needs_cuda
def test_device_loader_on_cuda_matches_cpu_batches(index):
    ds = make_dataset(index)
    cpu = batches(DeviceLoader(ds, 4, "cpu", seed=1))
    gpu = batches(DeviceLoader(ds, 4, "cuda", seed=1))
    assert [i for i, _ in cpu] == [i for i, _ in gpu]
    assert all(torch.equal(x, y.cpu()) for (_, x), (_, y) in zip(cpu, gpu))


def test_fallback_decoder_reads_what_the_first_cannot_and_counts_it(index, tmp_path):
    import shutil

    from vidssl.data.dataset import SkipCounter
    from vidssl.data.decoders.base import DECODERS, register_decoder

    register_decoder("refusing_test", "tests.reliability.hanging_backend", "RefusingDecoder",
                     "torchcodec", "torchcodec")
    try:
        odd = tmp_path / "odd.mp4"
        shutil.copy(index.path(0), odd)
        paths = [index.path(1), str(odd), index.path(2), index.path(3)]
        sub = VideoIndex(paths, [0] * 4, [int(index.num_frames[0])] * 4, [8.0] * 4)
        ds = ClipDataset(sub, RandomClipSampler(num_frames=4, stride=2), decoder="refusing_test",
                         fallback_decoder="pyav", seed=1)
        plain = ClipDataset(sub, RandomClipSampler(num_frames=4, stride=2), decoder="pyav", seed=1)
        item = ds[1]
        assert item["index"] == 1 and item["skipped"] == []
        assert item["fallbacks"] == [(str(odd), "codec not supported by this decoder")]
        assert torch.equal(item["views"][0], plain[1]["views"][0])  # same clip draw
        counter = SkipCounter()
        for batch in DeviceLoader(ds, 2, "cpu", shuffle=False):
            counter.update(batch)
        assert counter.count == 0 and counter.fallbacks == 1
        assert "1 samples decoded by the fallback decoder" in counter.summary()
        without = ClipDataset(sub, RandomClipSampler(num_frames=4, stride=2), decoder="refusing_test")
        assert without[1]["skipped"][0][0] == str(odd)  # no fallback: skipped as before
    finally:
        DECODERS.pop("refusing_test", None)


def test_pynvvideocodec_opening_logic_with_a_fake_library(monkeypatch):
    """The PyNvVideoCodec backend's session handling, on CPU with a stand-in for the library:
    the size comes from the stream metadata (no frame decoded just to learn it), and a pooled
    session that cannot be re-pointed at a file is replaced by a fresh one, not blamed on the file."""
    from types import SimpleNamespace

    from vidssl.data.decoders import nvdec

    decoded, created = [], []

    class FakeSimpleDecoder:
        def __init__(self, path, **kwargs):
            created.append(path)

        def __len__(self):
            return 12

        def get_stream_metadata(self):
            return SimpleNamespace(width=320, height=240, average_fps=25.0)

        def get_batch_frames_by_index(self, indices):
            decoded.extend(indices)
            return [torch.zeros(3, 240, 320, dtype=torch.uint8) for _ in indices]

    class StalePooled(FakeSimpleDecoder):
        def reconfigure_decoder(self, path):
            raise RuntimeError("codec changed")

    fake = SimpleNamespace(SimpleDecoder=FakeSimpleDecoder, OutputColorType=SimpleNamespace(RGBP="rgbp"))
    monkeypatch.setattr(nvdec, "_import_nvc", lambda: fake)
    monkeypatch.setattr(nvdec, "_require_cuda", lambda name: None)
    monkeypatch.setattr(nvdec, "_cuda_device", lambda gpu_id: 0)
    monkeypatch.setattr(nvdec, "_POOL", nvdec._DecoderPool())
    nvdec._POOL.give(0, StalePooled("old.mp4"))
    created.clear()
    dec = nvdec.PyNvVideoCodecDecoder("clip.mp4")
    assert created == ["clip.mp4"]                      # the stale session was replaced
    assert (dec.metadata.width, dec.metadata.height, dec.metadata.num_frames) == (320, 240, 12)
    assert dec.metadata.fps == 25.0 and decoded == []   # nothing decoded to open the file
