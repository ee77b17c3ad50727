"""Writing an encoder as a Hub-style folder (``vidssl export``) and rebuilding one from it.

The format (config.json + model.safetensors + README.md) is described in :mod:`vidssl.models.hub`.
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

from vidssl.config import plain_data
from vidssl.errors import VidsslError
from vidssl.models.encoders import create_encoder, encoder_spec
from vidssl.models.hub import (CARD_NAME, CONFIG_NAME, EXPORT_FORMAT, HUB_PREFIX, WEIGHTS_NAME,
                               hub_snapshot, read_export_config)


def load_exported_encoder(ref: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the encoder of an exported folder or ``hf:`` reference (architecture from its
    config.json, weights from model.safetensors)."""
    source = os.fspath(ref)
    folder = hub_snapshot(source) if source.startswith(HUB_PREFIX) else source
    if not os.path.isdir(folder):
        raise VidsslError(f"exported encoder not found: {source}")
    spec = read_export_config(folder)["encoder"]
    return create_encoder(spec["name"], pretrained=folder, **dict(spec.get("kwargs") or {})).to(map_location)


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

    out = Path(out)
    if out.exists() and not overwrite:
        raise VidsslError(f"{out} exists (pass --overwrite to replace it)")
    preprocess = getattr(encoder, "preprocess", None)
    config = {
        "format": EXPORT_FORMAT, "library_name": "vidssl", "vidssl_version": vidssl.__version__,
        "encoder": encoder_spec(encoder),
        "num_features": int(getattr(encoder, "num_features", 0)),
        "preprocess": plain_data(dataclasses.asdict(preprocess)) if dataclasses.is_dataclass(preprocess) else None,
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
