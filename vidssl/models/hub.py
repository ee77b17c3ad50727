"""Encoders shared the way the field shares models: a Hugging Face Hub-style folder.

::

    my-encoder/
      config.json        {"format": "vidssl-encoder-1", "encoder": {"name", "kwargs"},
                          "preprocess": {...}, "num_features": D, "vidssl_version": ..., "source": {...}}
      model.safetensors  the encoder's state dict (safetensors: no pickle, loads lazily)
      README.md          the model card: method, data, steps, evaluation, the exact command

``vidssl export`` writes one (:func:`export_encoder`); wherever an encoder takes ``pretrained``
(``encoder.pretrained`` in configs, ``vidssl eval --pretrained``) such a folder or
``hf:org/name[@revision]`` (fetched with ``huggingface_hub``) is accepted, and
:func:`load_exported_encoder` rebuilds the encoder from the folder alone. A folder can be
uploaded as it is (``huggingface-cli upload org/name my-encoder``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from vidssl.errors import ConfigError, MissingDependencyError, VidsslError

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
    try:
        import huggingface_hub
    except ImportError:
        raise MissingDependencyError("huggingface_hub is needed for hf: weights "
                                     "(pip install huggingface_hub)") from None
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
    differ = [k for k in saved if k in kwargs and _plain(kwargs[k]) != _plain(saved[k])]
    if differ:
        k = differ[0]
        raise ConfigError(f"{pretrained} was exported with {k}={saved[k]!r}, the encoder asks for "
                          f"{k}={kwargs[k]!r}")
    return os.path.join(source, WEIGHTS_NAME)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def load_exported_encoder(ref: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the encoder of an exported folder or ``hf:`` reference (architecture from its
    config.json, weights from model.safetensors)."""
    from vidssl.models.encoders import create_encoder

    source = os.fspath(ref)
    folder = hub_snapshot(source) if source.startswith(HUB_PREFIX) else source
    if not os.path.isdir(folder):
        raise VidsslError(f"exported encoder not found: {source}")
    spec = read_export_config(folder)["encoder"]
    return create_encoder(spec["name"], pretrained=folder, **dict(spec.get("kwargs") or {})).to(map_location)


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file (one-line errors)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise MissingDependencyError("safetensors is needed to read .safetensors weights "
                                     "(pip install safetensors)") from None
    try:
        return load_file(os.fspath(path), device="cpu")
    except Exception as err:  # noqa: BLE001 - header / IO errors
        raise VidsslError(f"cannot read weights {os.fspath(path)}: {_one_line(err)}") from None


# ---------------------------------------------------------------- writing
def export_encoder(encoder: nn.Module, out: str | os.PathLike, *, card: Mapping[str, Any] | None = None,
                   source: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``encoder`` (built by ``create_encoder``) as a folder: config.json, model.safetensors
    and a README.md model card from ``card`` (see :func:`model_card`). The folder is written
    next to ``out`` and renamed into place, so a failed export leaves nothing half-written.

    Raises:
        VidsslError: ``out`` exists (and not ``overwrite``) or cannot be written.
    """
    from safetensors.torch import save_file

    import vidssl
    from vidssl.models.encoders import encoder_spec

    out = Path(out)
    if out.exists() and not overwrite:
        raise VidsslError(f"{out} exists (pass --overwrite to replace it)")
    preprocess = getattr(encoder, "preprocess", None)
    config = {
        "format": EXPORT_FORMAT, "library_name": "vidssl", "vidssl_version": vidssl.__version__,
        "encoder": encoder_spec(encoder),
        "num_features": int(getattr(encoder, "num_features", 0)),
        "preprocess": _plain(dataclasses.asdict(preprocess)) if dataclasses.is_dataclass(preprocess) else None,
        "source": dict(source or {}),
    }
    # safetensors refuses tensors that share memory; a contiguous copy of each is what loads back
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in encoder.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "vidssl": EXPORT_FORMAT})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (tmp / CARD_NAME).write_text(model_card(config, card or {}), encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise VidsslError(f"cannot write {out}: {err.strerror or err}") from None
    return out


def model_card(config: Mapping[str, Any], card: Mapping[str, Any]) -> str:
    """A Hub model card (YAML front matter + markdown). ``card`` keys, all optional: ``title``,
    ``method``, ``method_params``, ``dataset``, ``data`` (dict), ``steps``, ``seed``,
    ``command``, ``results_markdown``, ``versions`` (dict), ``notes`` (list of str)."""
    spec = config["encoder"]
    title = card.get("title") or f"{spec['name']} ({card.get('method') or 'vidssl'})"
    tags = ["video", "self-supervised-learning", "vidssl"] + ([card["method"]] if card.get("method") else [])
    lines = ["---", "library_name: vidssl", "tags:"] + [f"- {t}" for t in tags]
    if card.get("dataset"):
        lines += ["datasets:", f"- {card['dataset']}"]
    lines += ["---", "", f"# {title}", "",
              f"A video encoder trained with [vidssl](https://github.com/vidssl/vidssl). Load it with "
              f"`create_encoder('{spec['name']}', pretrained=PATH_OR_HF_ID)`, "
              f"`vidssl.models.hub.load_exported_encoder(PATH_OR_HF_ID)` or "
              f"`vidssl eval --pretrained PATH_OR_HF_ID ...`.", "",
              "| | |", "|---|---|",
              f"| encoder | `{spec['name']}` {json.dumps(spec.get('kwargs') or {})} |",
              f"| features | {config.get('num_features')} |"]
    if config.get("preprocess"):
        p = config["preprocess"]
        lines.append(f"| input | {p.get('num_frames')} frames, stride {p.get('stride')}, "
                     f"{p.get('crop_size')} px crop, mean {p.get('mean')}, std {p.get('std')} |")
    if card.get("method"):
        lines.append(f"| method | `{card['method']}` {json.dumps(card.get('method_params') or {})} |")
    if card.get("data"):
        lines.append(f"| data | {json.dumps(card['data'])} |")
    for key in ("steps", "seed"):
        if card.get(key) is not None:
            lines.append(f"| {key} | {card[key]} |")
    for name, version in (card.get("versions") or {}).items():
        lines.append(f"| {name} | {version} |")
    if card.get("command"):
        lines += ["", "## How it was trained", "", "```bash", str(card["command"]), "```"]
    lines += ["", "## Evaluation", ""]
    lines.append(card["results_markdown"].strip() if card.get("results_markdown") else
                 "No evaluation was attached to this export (`vidssl export --results results.json`).")
    notes = list(card.get("notes") or [])
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
