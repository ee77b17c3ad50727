"""Encoders shared the way the field shares models: a Hugging Face Hub-style folder.

::

    my-encoder/
      config.json        {"format": "vidssl-encoder-1", "encoder": {"name", "kwargs"},
                          "preprocess": {...}, "num_features": D, "vidssl_version": ..., "source": {...}}
      model.safetensors  the encoder's state dict (safetensors: no pickle, loads lazily)
      README.md          the model card: method, data, steps, evaluation, the exact command

This module reads the format (and fetches ``hf:org/name[@revision]`` with ``huggingface_hub``);
:func:`resolve_pretrained` is how ``create_encoder(..., pretrained=FOLDER_OR_HF_REF)`` (configs'
``encoder.pretrained``, ``vidssl eval --pretrained``) loads one. Writing (``vidssl export``) and
rebuilding an encoder from the folder alone are in :mod:`vidssl.models.export`. A folder can be
uploaded as it is (``huggingface-cli upload org/name my-encoder``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from vidssl.config import plain_data
from vidssl.errors import ConfigError, VidsslError

EXPORT_FORMAT = "vidssl-encoder-1"
HUB_PREFIX = "hf:"
CONFIG_NAME, WEIGHTS_NAME, CARD_NAME = "config.json", "model.safetensors", "README.md"


def _one_line(err: BaseException, limit: int = 160) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- reading
def is_export_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :func:`export_encoder` (its config.json says so;
    a transformers ``save_pretrained`` folder also has a config.json, without that key)."""
    cfg = Path(path) / CONFIG_NAME
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text(encoding="utf-8")).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_export_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The config.json of an exported encoder (one-line errors)."""
    path = Path(folder) / CONFIG_NAME
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VidsslError(f"{folder} is not an exported encoder: no {CONFIG_NAME}") from None
    except (OSError, ValueError) as err:
        raise VidsslError(f"cannot read {path}: {_one_line(err)}") from None
    spec = cfg.get("encoder") if isinstance(cfg, dict) else None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or cfg.get("format") != EXPORT_FORMAT:
        raise VidsslError(f"{path} is not a vidssl encoder config (expected format {EXPORT_FORMAT!r} "
                          f"and an 'encoder' spec)")
    if not (Path(folder) / WEIGHTS_NAME).is_file():
        raise VidsslError(f"{folder} has no {WEIGHTS_NAME}")
    return cfg


def hub_snapshot(ref: str) -> str:
    """Download ``hf:org/name[@revision]`` (config, weights and card only) into the Hugging Face
    cache and return the local folder; offline, the cached copy is used when there is one.

    Raises:
        VidsslError: one line when the Hub cannot be reached and nothing is cached, the repository
            does not exist, or it holds no vidssl export / weights.
    """
    repo = ref[len(HUB_PREFIX):] if ref.startswith(HUB_PREFIX) else ref
    repo, _, revision = repo.partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ConfigError(f"{ref!r}: expected hf:ORG/NAME or hf:ORG/NAME@REVISION")
    import huggingface_hub
    from vidssl.offline import host_reachable, offline_mode

    # no host: the local cache only, at once (huggingface_hub would retry the host first)
    cache_only = offline_mode() or not host_reachable("huggingface.co")
    try:
        return huggingface_hub.snapshot_download(
            repo, revision=revision or None, etag_timeout=10, local_files_only=cache_only,
            allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, "*.json", "*.safetensors"])
    except Exception as err:  # noqa: BLE001 - offline, 404, gated, auth: many exception types
        if cache_only:
            raise VidsslError(f"cannot fetch {ref}: the Hugging Face Hub cannot be reached (or "
                              f"offline mode is on) and the local cache does not hold it; download "
                              f"the folder elsewhere and pass its path") from None
        raise VidsslError(
            f"cannot fetch {ref} from the Hugging Face Hub ({_one_line(err, 120)}); offline, "
            f"download the folder elsewhere and pass its path (or set HF_HUB_OFFLINE=1 to use "
            f"the local cache only)") from None


def resolve_pretrained(name: str, kwargs: Mapping[str, Any], pretrained: Any) -> Any:
    """What an encoder factory should load for ``pretrained``: ``hf:`` references are fetched; an
    exported folder becomes its ``model.safetensors`` after checking that it holds encoder
    ``name`` with the same architecture arguments; anything else is returned unchanged.

    Raises:
        ConfigError: the folder holds another encoder or other architecture arguments.
    """
    if not isinstance(pretrained, (str, os.PathLike)):
        return pretrained
    source = os.fspath(pretrained)
    if source.startswith(HUB_PREFIX):
        source = hub_snapshot(source)
        if not is_export_folder(source):
            return source  # e.g. a transformers checkpoint on the Hub: the ViT encoders read it
    if not (os.path.isdir(source) and is_export_folder(source)):
        return pretrained
    spec = read_export_config(source)["encoder"]
    if spec["name"] != name:
        raise ConfigError(f"{pretrained} holds encoder {spec['name']!r}, not {name!r} "
                          f"(drop the encoder name to use the folder's own)")
    saved = dict(spec.get("kwargs") or {})
    differ = [k for k in saved if k in kwargs and plain_data(kwargs[k]) != plain_data(saved[k])]
    if differ:
        k = differ[0]
        raise ConfigError(f"{pretrained} was exported with {k}={saved[k]!r}, the encoder asks for "
                          f"{k}={kwargs[k]!r}")
    return os.path.join(source, WEIGHTS_NAME)


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file (one-line errors)."""
    from safetensors.torch import load_file

    try:
        return load_file(os.fspath(path), device="cpu")
    except Exception as err:  # noqa: BLE001 - header / IO errors
        raise VidsslError(f"cannot read weights {os.fspath(path)}: {_one_line(err)}") from None


