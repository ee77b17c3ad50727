"""Mutation fuzzing of every installed decoder (the property of tools/fuzz_decode.py): mutated
MP4/AVI bytes either decode to well-formed frames or fail with one line naming the file.

The default run tries a few dozen inputs per backend; the slow target a few hundred. Longer or
coverage-guided runs: ``python tools/fuzz_decode.py --backend B --iterations N [--atheris]``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vidssl.data.decoders import available_decoders

_spec = importlib.util.spec_from_file_location(
    "fuzz_decode", Path(__file__).resolve().parents[2] / "tools" / "fuzz_decode.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)

BACKENDS = available_decoders()


class Seeds(list):
    def __repr__(self) -> str:  # hypothesis prints fixtures of a failing example: not the bytes
        return f"<{len(self)} seed videos>"


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return Seeds(fuzz.seed_files(tmp_path_factory.mktemp("fuzz_seeds")))


def test_pyav_mutation_found_by_fuzzing_fails_cleanly(seeds, tmp_path):
    """A mutated AVI whose frame size changes mid-stream once made PyAV's backend raise numpy's
    'all input arrays must have the same shape' (hypothesis seed 937285)."""
    if "pyav" not in BACKENDS:
        pytest.skip("PyAV not installed")
    _run(seeds, tmp_path, "pyav", 1, 937285)


def test_torchcodec_mutation_found_by_fuzzing_fails_cleanly(seeds, tmp_path):
    """The same class of input (a frame size that changes mid-stream) once made the torchcodec
    backend's final stack raise torch's 'stack expects each tensor to be equal size' (hypothesis
    seed 502, found by the slow run)."""
    if "torchcodec" not in BACKENDS:
        pytest.skip("torchcodec not installed")
    _run(seeds, tmp_path, "torchcodec", 1, 502)


# Backends whose C code is known to abort the process on some corrupt inputs (found by the slow
# fuzz run, reported in docs/reliability.md). Their inputs are decoded in a forked child so the
# crash does not take the test run down; a crash there is tolerated, any other finding is not.
# No other backend may crash: for them a crash fails the test.
KNOWN_NATIVE_CRASHES = {"decord"}


def _run(seeds, tmp_path, backend, which, seed, isolate=False):
    data, suffix = seeds[which]
    mutated = fuzz.mutate(data, np.random.default_rng(seed))
    if isolate or backend in KNOWN_NATIVE_CRASHES:
        outcome = fuzz.check_bytes_isolated(mutated, backend, tmp_path, suffix)
        if outcome.startswith("crash") and backend in KNOWN_NATIVE_CRASHES:
            return
    else:
        outcome = fuzz.check_bytes(mutated, backend, tmp_path, suffix)
    assert outcome in ("ok", "error"), outcome


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 1), seed=st.integers(0, 2**32 - 1))
def test_mutated_videos_decode_or_fail_cleanly(seeds, tmp_path, backend, which, seed):
    _run(seeds, tmp_path, backend, which, seed)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 1), seed=st.integers(0, 2**32 - 1))
def test_mutated_videos_decode_or_fail_cleanly_long(seeds, tmp_path, backend, which, seed):
    _run(seeds, tmp_path, backend, which, seed)


def test_the_fuzz_target_catches_a_bad_error(tmp_path, seeds, monkeypatch):
    """The property can fail: an error message without the file name is a finding."""
    from vidssl.errors import VideoDecodeError

    def bad_open(path, backend):
        raise VideoDecodeError("elsewhere.mp4", "two\nlines")

    monkeypatch.setattr(fuzz, "open_video", bad_open)
    with pytest.raises(AssertionError, match="multi-line|does not name"):
        fuzz.check_bytes(seeds[0][0], "torchcodec", tmp_path)
    assert fuzz.main(["--iterations", "3", "--crash-dir", str(tmp_path / "findings")]) == 1
    assert len(list((tmp_path / "findings").glob("finding_*"))) == 3
