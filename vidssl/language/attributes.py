"""Class vocabularies and per-class attribute descriptions shipped with vidssl.

Attribute files are JSON (``vidssl/resources/attributes/<vocabulary>.json`` or any path)::

    {
      "vocabulary": "ucf101",
      "template_version": "v1",
      "source": "curated" | "<backend>:<model id>",
      "note": "...",
      "classes": {"ApplyEyeMakeup": ["a brush and an eyeshadow palette", ...], ...}
    }

Every class of the vocabulary must appear, in any order; each value is a list of short visual
attribute phrases (objects, body motion, scene).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from vidssl.data.index.datasets import vocabulary as load_vocabulary  # noqa: F401 (re-export)
from vidssl.errors import ConfigError

VOCABULARIES = ("ucf101", "hmdb51", "kinetics400", "kinetics600")


def _resource(*parts: str):
    return resources.files("vidssl").joinpath("resources", *parts)


def load_attributes(source: str | Path) -> dict:
    """Read an attribute file: a shipped vocabulary name (``"ucf101"``) or a path to a JSON file.

    Returns the parsed document (see the module docstring); ``doc["classes"]`` maps class name
    to a list of attribute phrases. Raises ConfigError naming the file on any format problem.
    """
    if isinstance(source, str) and source in VOCABULARIES:
        res = _resource("attributes", f"{source}.json")
        if not res.is_file():
            raise ConfigError(f"no curated attribute file is shipped for {source!r}")
        where, text = f"vidssl/resources/attributes/{source}.json", res.read_text(encoding="utf-8")
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"attribute file not found: {path}")
        where, text = str(path), path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    classes = doc.get("classes") if isinstance(doc, dict) else None
    if not isinstance(classes, dict) or not all(
        isinstance(v, list) and all(isinstance(a, str) for a in v) for v in classes.values()
    ):
        raise ConfigError(f"{where}: expected {{'classes': {{name: [attribute, ...]}}}}")
    return doc
