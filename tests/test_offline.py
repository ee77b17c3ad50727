"""Offline is a first-class state: a download the caches cannot serve fails at once, in one line
that says how to go on without the network (no minute of hub retries, no screen of warnings)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import vidssl.offline as offline
from vidssl.errors import VidsslError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_network(monkeypatch):
    import vidssl.language.clip_models as clip_models

    unreachable = lambda host, port=443, timeout=5.0: False  # noqa: E731
    monkeypatch.setattr(offline, "host_reachable", unreachable)
    monkeypatch.setattr(clip_models, "host_reachable", unreachable)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VIDSSL_OFFLINE"):
        monkeypatch.delenv(key, raising=False)


def test_require_download_says_what_and_how(no_network, monkeypatch):
    with pytest.raises(VidsslError, match="cannot download the thing from https://example.org/w.pt: example.org cannot be reached") as info:
        offline.require_download("the thing", "https://example.org/w.pt", hint="try X")
    assert str(info.value).endswith("try X") and "\n" not in str(info.value)
    monkeypatch.setenv("VIDSSL_OFFLINE", "1")
    with pytest.raises(VidsslError, match="offline mode is on"):
        offline.require_download("the thing", "example.org")


def test_clip_weights_offline_fail_fast_with_the_recipe(no_network):
    import vidssl.language.clip_models as clip_models

    t0 = time.monotonic()
    with pytest.raises(VidsslError) as info:
        clip_models.load_clip("ViT-B-16", "openai")
    msg = str(info.value)
    assert "\n" not in msg and "huggingface.co cannot be reached" in msg
    assert "--model vidssl-tiny-clip --pretrained none" in msg
    assert time.monotonic() - t0 < 30  # a bound against retry storms, not a speed claim


def test_clip_weights_in_the_cache_need_no_network(monkeypatch):
    import huggingface_hub

    import vidssl.language.clip_models as clip_models

    open_clip = clip_models.import_open_clip()
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name, **kw: "/cache/" + name)
    source, cached = clip_models._weights_source(open_clip, "ViT-B-16", "openai")
    assert source.startswith("https://huggingface.co/") and cached
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name, **kw: None)
    assert clip_models._weights_source(open_clip, "ViT-B-16", "openai")[1] is False


def test_published_encoder_weights_offline_fail_fast(no_network, monkeypatch, tmp_path):
    import torch

    from vidssl.models.encoders import create_encoder

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(VidsslError, match="cannot download .* cannot be reached") as info:
        create_encoder("r3d_18", pretrained="default")
    assert "\n" not in str(info.value) and str(tmp_path / "hub" / "checkpoints") in str(info.value)


def test_concepts_encode_offline_from_the_command_line(tmp_path):
    """The issue's command, as a user types it, with offline mode on: one line, exit 2."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VIDSSL_OFFLINE": "1",
           "VIDSSL_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "vidssl", "concepts", "encode", "--vocabulary", "ucf101"],
                          cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "offline mode is on" in err and "vidssl-tiny-clip --pretrained none" in err
