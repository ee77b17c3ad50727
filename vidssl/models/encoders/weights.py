"""Loading encoder weights: published downloads, local state dicts and vidssl checkpoints.

Every failure becomes one :class:`~vidssl.errors.VidsslError` line naming the weights, where they
were looked for and what to do next (never a bare ``torch.hub`` / pickle traceback).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from vidssl.errors import ConfigError, VidsslError

# ``pretrained`` accepts: None/False (random init), True/"default" (the published weights of the
# encoder), a path to a state dict / .safetensors file / vidssl checkpoint, or a folder written by
# ``vidssl export`` / ``hf:ORG/NAME`` (resolved by vidssl.models.hub before the factory runs).
Pretrained = str | os.PathLike | bool | None

DEFAULT_WEIGHTS = "default"


def _one_line(err: BaseException, limit: int = 200) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wants_default_weights(pretrained: Pretrained) -> bool:
    """True for ``True`` / ``"default"``; False for ``None`` / ``False``; a path is neither."""
    return pretrained is True or (isinstance(pretrained, str) and pretrained == DEFAULT_WEIGHTS)


def no_pretrained_weights(name: str, pretrained: Pretrained) -> None:
    """Raise if ``pretrained`` asks for published weights of an encoder that has none (tiny
    variants); a local path stays allowed (weights vidssl trained itself)."""
    if wants_default_weights(pretrained):
        raise ConfigError(f"encoder {name!r} has no published weights (it is a test/demo variant); "
                          f"use pretrained=None or pretrained=PATH to a state dict it saved")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path`` with ``torch.load(weights_only=True)``.

    Accepts a ``.safetensors`` file, a plain state dict (``{name: tensor}``, e.g. torchvision's published ``.pth`` files),
    a vidssl checkpoint (a dict whose ``"encoder"`` key holds the encoder's state dict) or a dict
    with a ``"state_dict"`` key. A ``module.`` prefix (DDP) on every key is removed.

    Raises:
        VidsslError: missing file, unreadable file, or no state dict inside.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise VidsslError(f"pretrained weights file not found: {path} (pretrained accepts None, "
                          f"'default', a state dict file, an exported folder or hf:ORG/NAME)")
    if path.endswith(".safetensors"):
        from vidssl.models.hub import read_safetensors

        return read_safetensors(path)
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - zip/pickle/unsafe-global errors of many kinds
        raise VidsslError(f"cannot read pretrained weights {path}: {_one_line(err)}") from None
    if isinstance(obj, Mapping):
        for key in ("encoder", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise VidsslError(f"{path} holds no state dict (expected {{name: tensor}} or a vidssl "
                          f"checkpoint with an 'encoder' key)")
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_state_dict_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                           ignore_prefixes: Sequence[str] = ()) -> None:
    """Load ``state`` into ``module`` strictly, after dropping keys under ``ignore_prefixes``
    (the classifier head of published weights, e.g. ``"fc."``).

    Raises:
        VidsslError: one line with the counts (and a first example) of missing keys, unexpected
            keys and shape mismatches.
    """
    state = {k: v for k, v in state.items() if not k.startswith(tuple(ignore_prefixes))}
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                parts.append(f"{len(keys)} {label} keys (e.g. {keys[0]!r})")
        if mismatched:
            k = mismatched[0]
            parts.append(f"{len(mismatched)} shape mismatches (e.g. {k!r}: "
                         f"{list(state[k].shape)} in the file, {list(own[k].shape)} in the model)")
        name = getattr(module, "encoder_name", type(module).__name__)
        raise VidsslError(f"weights {source} do not fit encoder {name!r}: {', '.join(parts)}")
    module.load_state_dict(state, strict=True)


def download_state_dict(url: str, what: str) -> dict[str, torch.Tensor]:
    """Fetch a published state dict through ``torch.hub`` (cached under ``torch.hub.get_dir()``).

    Raises:
        VidsslError: the download failed (no network, proxy, hash mismatch); the message names
            the weights, the URL and how to pass a local copy instead.
    """
    from urllib.parse import urlparse

    from vidssl.offline import require_download

    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
    if not os.path.isfile(cached):
        require_download(what, url, hint=f"or put the file in {os.path.dirname(cached)}/")
    try:
        return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False,
                                                  check_hash=True, weights_only=True)
    except Exception as err:  # noqa: BLE001 - URLError, HTTPError, OSError, hash RuntimeError
        cache = os.path.join(torch.hub.get_dir(), "checkpoints")
        raise VidsslError(f"cannot download {what} from {url} ({_one_line(err, 120)}); download "
                          f"that file elsewhere and pass pretrained=PATH, or put it in {cache}/"
                          ) from None


def fetch_pretrained(pretrained: Pretrained, *, default_url: str | None, default_what: str
                     ) -> tuple[dict[str, torch.Tensor] | None, str]:
    """Resolve ``pretrained`` to ``(state_dict, source)`` before the model is built (so a failed
    download costs no initialisation): ``(None, "")`` for ``None``/``False``, the published
    weights at ``default_url`` for ``True``/``"default"``, else a local file."""
    if pretrained is None or pretrained is False:
        return None, ""
    if wants_default_weights(pretrained):
        if default_url is None:
            raise ConfigError(f"{default_what} are not published; pass pretrained=PATH")
        return download_state_dict(default_url, default_what), f"{default_what} ({default_url})"
    if not isinstance(pretrained, (str, os.PathLike)):
        raise ConfigError(f"pretrained must be None, True, 'default' or a path, "
                          f"not {type(pretrained).__name__}")
    path = os.fspath(pretrained)
    return read_state_dict(path), path
