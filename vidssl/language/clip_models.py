"""open_clip models for vidssl: one loader, one-line errors, a tiny random-init config for tests.

``load_clip(model, pretrained)`` wraps ``open_clip.create_model_and_transforms``: ``model`` is an
open_clip architecture name (``"ViT-B-16"``) or vidssl's own ``"vidssl-tiny-clip"`` (a 2-layer,
32-wide CLIP shipped as ``vidssl/resources/open_clip/vidssl-tiny-clip.json`` and registered with
``open_clip.add_model_config``: CPU tests and the synthetic dataset, where no weights exist).
``pretrained`` is an open_clip tag (``"openai"``, ``"laion2b_s34b_b88k"``), a local weights file,
or ``None`` for random init, drawn from ``init_seed`` so two processes build the same model.

Missing weights (offline, unknown tag) become one :class:`~vidssl.errors.VidsslError` line.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from importlib import resources
from typing import Optional
from urllib.parse import urlparse

import torch
from torch import nn

from vidssl.errors import MissingDependencyError, VidsslError
from vidssl.offline import host_reachable, offline_mode, require_download

TINY_CLIP = "vidssl-tiny-clip"
_REGISTERED = False


def import_open_clip():
    """The ``open_clip`` module, with vidssl's tiny config registered (one-line error if absent)."""
    global _REGISTERED
    try:
        import open_clip
    except ImportError:
        raise MissingDependencyError(package="open_clip_torch", extra="language",
                                     feature="the CLIP concept space and CLIP-temporal encoders") from None
    if not _REGISTERED:
        cfg = resources.files("vidssl").joinpath("resources", "open_clip", f"{TINY_CLIP}.json")
        with resources.as_file(cfg) as path:
            open_clip.add_model_config(path)
        _REGISTERED = True
    return open_clip


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_clip(model: str, pretrained: Optional[str] = None, *, init_seed: int = 0,
              device: str | torch.device = "cpu") -> nn.Module:
    """An open_clip CLIP model in eval mode.

    Args:
        model: open_clip architecture name (``open_clip.list_models()``) or ``"vidssl-tiny-clip"``.
        pretrained: open_clip tag or weights file; ``None`` / ``""`` = random init from ``init_seed``.

    Raises:
        VidsslError: unknown architecture, or weights that cannot be found / downloaded / read
            (the message says so in one line; offline machines need the weights in the
            open_clip / Hugging Face cache, or a local file).
    """
    open_clip = import_open_clip()
    if model not in open_clip.list_models():
        raise VidsslError(f"unknown open_clip model {model!r}; known: e.g. ViT-B-16, ViT-B-32, ViT-L-14, "
                          f"{TINY_CLIP} (see open_clip.list_models())")
    tag = pretrained or None
    if tag is not None and model == TINY_CLIP and not os.path.isfile(str(tag)):
        raise VidsslError(f"{TINY_CLIP} has no published weights; use pretrained=None or a weights file")
    offline_cache = False
    if tag is not None and not os.path.isfile(str(tag)):
        source, cached = _weights_source(open_clip, model, tag)
        if source and not cached:  # fail in seconds, not after a minute of hub retries
            require_download(f"open_clip weights {tag!r} for {model}", source,
                             hint=f"for a run without weights (tests, smoke runs): --model {TINY_CLIP} "
                                  f"--pretrained none")
        offline_cache = bool(source and cached) and (offline_mode() or not host_reachable(
            urlparse(source).hostname or source))
    previous = logging.root.manager.disable
    try:
        with torch.random.fork_rng(devices=[]), _hub_offline(offline_cache):
            torch.manual_seed(init_seed)
            if tag is None:  # open_clip warns on root that no weights were loaded: that is the point
                logging.disable(max(previous, logging.WARNING))
            try:
                clip, _, _ = open_clip.create_model_and_transforms(model, pretrained=tag, device=device)
            finally:
                logging.disable(previous)
    except Exception as err:  # noqa: BLE001 - download / hub / state-dict errors of many kinds
        if tag is None:
            raise VidsslError(f"cannot build open_clip model {model} on {device}: {_one_line(err)}") from None
        raise VidsslError(f"open_clip weights {tag!r} for {model} are not available or not loadable ({_one_line(err)}); "
                          f"on an offline machine put them in the Hugging Face cache or pass a "
                          f"local file as the pretrained tag") from None
    return clip.eval()


def _weights_source(open_clip, model: str, tag: str) -> tuple[str | None, bool]:
    """Where open_clip would download ``tag``'s weights from (a URL) and whether a local cache
    already holds them; ``(None, False)`` when open_clip does not know the tag (it then raises
    its own error)."""
    cfg = open_clip.get_pretrained_cfg(model, tag) or {}
    hub = cfg.get("hf_hub")
    try:
        import huggingface_hub
    except ImportError:
        huggingface_hub, hub = None, None
    if hub:  # "org/name/" (open_clip's default file name) or "org/name/file"
        repo, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        names = (filename.rsplit(".", 1)[0] + ".safetensors", filename)  # open_clip tries the first
        cached = any(isinstance(huggingface_hub.try_to_load_from_cache(repo, n), str) for n in names)
        return f"https://huggingface.co/{repo}", cached
    if cfg.get("url"):
        url = cfg["url"]
        return url, os.path.isfile(os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(url)))
    return None, False


@contextlib.contextmanager
def _hub_offline(enabled: bool):
    """huggingface_hub in offline mode for the call (cached weights, no host): no retries."""
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def clip_tokenizer(model: str):
    """open_clip's tokenizer for ``model`` (CLIP's BPE for the OpenAI-style models)."""
    return import_open_clip().get_tokenizer(model)


@functools.lru_cache(maxsize=1)
def _simple_tokenizer():
    import_open_clip()
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def count_clip_tokens(text: str) -> int:
    """Tokens ``text`` takes in CLIP's 77-token context, start and end tokens included."""
    return len(_simple_tokenizer().encode(text)) + 2


CLIP_CONTEXT = 77
