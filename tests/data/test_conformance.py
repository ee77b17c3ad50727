"""Frame-exactness conformance (docs/decoding.md, "The contract"): every installed backend is held
to a sequential decode by the FFmpeg command line, on generated files of every kind that matters
(AVI with B-frames and packed B-frames, H.264/HEVC/AV1/VP9 in MP4/MKV/WebM, open GOP, 10-bit,
full range, rotated, two video streams, variable frame rate, a corrupt packet), with random,
out-of-order, repeated, whole-file and single-frame requests."""

from __future__ import annotations

import shutil

import pytest

from vidssl.data.decoders import available_decoders
from vidssl.data.decoders import conformance as C
from vidssl.data.decoders.numbering import COUNT, PTS, frame_numbering, reorders

BACKENDS = available_decoders()

# What a backend may answer instead of exact frames, per kind: "refused" (one-line
# VideoDecodeError at open) or "partial" (opens; some frames refused with one line, every frame
# returned is right). Everything not listed must be exact (8-bit sources) or within
# HIGH_BIT_DEPTH_TOLERANCE (deeper ones). No backend may ever return a wrong frame.
ALLOWED = {
    "decord": {
        "av1_mp4": "refused", "av1_mkv": "refused",  # no AV1 decoder in decord's FFmpeg
        "h264_10bit_mp4": "refused", "hevc_10bit_mkv": "refused",  # inexact RGB conversion
        "two_streams_mkv": "refused",  # reads another stream than the best, takes no index
        "corrupt_packet_avi": "partial", "corrupt_packet_mp4": "partial",  # stops at the packet
    },
}


@pytest.fixture(scope="session")
def conformance_files(tmp_path_factory):
    """``kind name -> (path, Reference)``, each file written and decoded once per session."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.skip("the FFmpeg command-line tools are not installed (apt-get install ffmpeg)")
    root = tmp_path_factory.mktemp("conformance")
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            kind = C.KINDS_BY_NAME[name]
            missing = kind.missing_encoders()
            if missing:
                cache[name] = (None, f"the local ffmpeg has no {', '.join(missing)} encoder")
            else:
                path = C.write_kind(kind, root)
                cache[name] = (path, C.reference(path))
        path, ref = cache[name]
        if path is None:
            pytest.skip(ref)
        return path, ref

    return get


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", [k.name for k in C.KINDS])
def test_backend_matches_the_reference(conformance_files, kind, backend):
    path, ref = conformance_files(kind)
    outcome = C.check_backend(path, backend, ref, kind=kind)
    allowed = ALLOWED.get(backend, {}).get(kind)
    if outcome.status == "exact" or (outcome.status == "tolerance" and ref.high_bit_depth):
        assert outcome.max_diff <= C.HIGH_BIT_DEPTH_TOLERANCE
        return
    assert outcome.status != "wrong", f"{backend} on {kind}: " + "; ".join(outcome.problems)
    assert outcome.status == allowed, f"{backend} on {kind}: {outcome.cell}"
    for message in [outcome.message, *outcome.refusals]:
        assert "\n" not in message and 0 < len(message) < 400 if message else True


def test_every_kind_is_generated_by_the_local_ffmpeg():
    """The quick start's FFmpeg has every encoder the kinds need (a kind is only ever skipped on
    a machine whose FFmpeg lacks one)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    missing = {k.name: k.missing_encoders() for k in C.KINDS if k.missing_encoders()}
    if missing:
        pytest.skip(f"encoders missing here: {missing}")
    assert len(C.KINDS) >= 20


@pytest.mark.parametrize("kind,numbering,reordering", [
    ("xvid_bframes_avi", COUNT, True), ("xvid_packed_avi", COUNT, True),
    ("h264_bframes_avi", COUNT, True), ("mpeg4_avi", PTS, False), ("msmpeg4_avi", PTS, False),
    ("h264_mp4", PTS, True), ("vp9_webm", PTS, False),
])
def test_numbering_counts_only_where_timestamps_cannot_be_trusted(conformance_files, kind,
                                                                  numbering, reordering):
    """AVI without B-frames keeps torchcodec's seeking path (the synthetic dataset's AVIs, the
    throughput bar); only timestamp-less containers whose decoder reorders are counted."""
    path, _ = conformance_files(kind)
    assert frame_numbering(path) == numbering
    assert reorders(path) is reordering


def test_reference_numbers_holes_where_the_container_says(conformance_files):
    path, ref = conformance_files("corrupt_packet_mp4")
    assert ref.num_frames == 50 and len(ref.frames) == 49
    assert (ref.expected < 0).sum() == 1 and 0 < int((ref.expected < 0).argmax()) < 49
    path, ref = conformance_files("corrupt_packet_avi")
    assert len(ref.frames) == 49 and ref.num_frames == 50 and ref.expected[-1] == -1


def test_the_index_verifies_seeking_and_the_loader_uses_it(conformance_files, tmp_path):
    """MPEG-4 part 2 AVI with B-frames: the index build decodes each file once to verify that
    seeking in it is exact (seek_token); ClipDataset then reads from keyframes, and the frames
    still equal the reference. A file whose frames do not all decode gets no token."""
    import numpy as np

    from vidssl.data.dataset import ClipDataset
    from vidssl.data.index import build_index
    from vidssl.data.samplers.base import SampledClips

    root = tmp_path / "videos"
    for name in ("xvid_bframes_avi", "xvid_packed_avi", "corrupt_packet_avi", "mpeg4_avi"):
        path, _ = conformance_files(name)
        (root / name).mkdir(parents=True)
        shutil.copy(path, root / name / path.name)
    index = build_index("folder", root, progress=False, cache=tmp_path / "cache.sqlite")
    tokens = {p.split("/")[-2]: int(t) for p, t in zip(index.paths, index.seek_tokens)}
    assert tokens["xvid_bframes_avi"] and tokens["xvid_packed_avi"]  # keyframe seeking
    assert tokens["mpeg4_avi"]  # no B-frames, timestamps on the fps grid: no scan per open
    assert not tokens["corrupt_packet_avi"]  # a frame does not decode: counted from the start
    again = build_index("folder", root, progress=False, cache=tmp_path / "cache.sqlite")
    assert again.report.cached == 4 and list(again.seek_tokens) == list(index.seek_tokens)

    class Clip:
        view_lengths = (4,)

        def __call__(self, num_frames, fps, rng):
            start = int(rng.integers(0, num_frames - 8))
            return SampledClips((np.arange(start, start + 8, 2),), ("clip",))

    ds = ClipDataset(index, Clip())
    for i in range(len(index)):
        _, ref = conformance_files(index.paths[i].split("/")[-2])
        for epoch in range(3):
            ds.set_epoch(epoch)
            item = ds[i]
            start = int(ds.rng(i, 0).integers(0, index.num_frames[i] - 8))
            want = ref.frames[ref.expected[np.arange(start, start + 8, 2)]]
            if (ref.expected[np.arange(start, start + 8, 2)] < 0).any():
                continue  # drew the hole: re-drawn elsewhere, checked in test_folder_training
            assert np.array_equal(item["views"][0].permute(0, 2, 3, 1).numpy(), want)


# Real files vidssl never wrote, where the machine has them (Debian's opencv-doc package): an
# XVID AVI with packed B-frames and an AC3 track, the same with keyframes two packets apart, and
# a Cinepak AVI whose header lists 444 frames of which 68 are present.
REAL_AVI = ["/usr/share/doc/opencv-doc/examples/data/Megamind.avi",
            "/usr/share/doc/opencv-doc/examples/data/Megamind_bugy.avi",
            "/usr/share/doc/opencv-doc/examples/data/tree.avi"]


@pytest.mark.slow
@pytest.mark.parametrize("path", REAL_AVI, ids=lambda p: p.rsplit("/", 1)[-1])
def test_real_avi_files_decode_exactly(path):
    import os

    if not os.path.exists(path) or shutil.which("ffmpeg") is None:
        pytest.skip(f"{path} (or ffmpeg) is not on this machine")
    ref = C.reference(path)
    for backend in BACKENDS:
        outcome = C.check_backend(path, backend, ref, kind=os.path.basename(path))
        assert outcome.status == "exact", f"{backend}: {outcome.cell}"


def test_without_torchcodec_blocks_counted_files_are_refused_not_misread(conformance_files,
                                                                         tmp_path, monkeypatch):
    """torchcodec < 0.17 has no demuxer/decoder blocks: an AVI with B-frames is then refused with
    one line saying what to install (its own seek would misread it); AVI without B-frames (the
    synthetic dataset's) still reads exactly."""
    from vidssl.data.decoders import numbering, open_video, torchcodec_backend
    from vidssl.errors import VideoDecodeError

    monkeypatch.setattr(numbering, "blocks_available", lambda: False)
    monkeypatch.setattr(torchcodec_backend, "blocks_available", lambda: False)
    for name in ("xvid_bframes_avi", "mpeg4_avi"):
        path, ref = conformance_files(name)
        copy = tmp_path / path.name  # a new path: not decided before in this process
        shutil.copy(path, copy)
        if name == "xvid_bframes_avi":
            with pytest.raises(VideoDecodeError, match=r"torchcodec >= 0\.17.* or the pyav"):
                open_video(copy, "torchcodec")
        else:
            assert C.check_backend(copy, "torchcodec", ref, kind=name).status == "exact"
