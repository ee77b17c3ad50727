"""Typed configs: a dataclass schema, a YAML file over it, dotted overrides over that.

Unknown keys and values of the wrong type are errors with one line naming the key and the
file, never silently ignored. YAML is parsed by OmegaConf (safe loading: no code runs; no ``_target_``-style instantiation
exists: names such as ``method.name`` are looked up in vidssl's registries). A config holding the
value of a secret environment variable is rejected (see :mod:`vidssl.security`).
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vidssl.errors import ConfigError
from vidssl.security import check_no_secrets

T = TypeVar("T")


def shipped_configs_dir() -> Path:
    """The folder of configs that ship with vidssl: ``vidssl/configs`` inside an installed wheel
    (``configs/`` is packaged there, see ``setup.py``), the repository's ``configs/`` in a source
    checkout or an editable install."""
    packaged = resources.files("vidssl") / "configs"
    if packaged.is_dir():
        return Path(os.fspath(packaged))
    return Path(__file__).resolve().parents[1] / "configs"


def list_shipped_configs() -> list[str]:
    """Names of the shipped configs, relative to :func:`shipped_configs_dir`
    (``pretrain/tclr_synthetic.yaml``, ``demo.yaml``, ...)."""
    root = shipped_configs_dir()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml")) if root.is_dir() else []


def resolve_config_path(path: str | os.PathLike) -> str:
    """``path`` when that file exists; otherwise the shipped config it names, so the commands in
    the docs (``--config configs/pretrain/tclr_synthetic.yaml``) also work outside a checkout, and
    a short name works anywhere (``pretrain/tclr_synthetic``, ``tclr_synthetic``).

    Raises:
        ConfigError: neither a file nor a shipped config.
    """
    where = os.fspath(path)
    if os.path.isfile(where):
        return where
    if not os.path.isabs(where):
        name = Path(where).as_posix()
        name = name[len("configs/"):] if name.startswith("configs/") else name
        name = name if name.endswith((".yaml", ".yml")) else name + ".yaml"
        shipped = list_shipped_configs()
        matches = [n for n in shipped if n == name] or [n for n in shipped if n.endswith("/" + name)]
        if len(matches) == 1:
            return str(shipped_configs_dir() / matches[0])
        if len(matches) > 1:
            raise ConfigError(f"config {where!r} is ambiguous: {', '.join(matches)}")
    raise ConfigError(f"config file not found: {where} (shipped configs: `vidssl configs`)")


def load_config(schema: type[T], path: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> T:
    """Merge ``path`` (YAML; a file, or a shipped config's name: :func:`resolve_config_path`) and
    ``overrides`` (``["a.b=1", ...]``) over ``schema``'s defaults.

    Raises:
        ConfigError: missing file, YAML syntax error, unknown key, wrong type.
    """
    base = OmegaConf.structured(schema)
    where = "defaults"
    try:
        if path is not None:
            where = resolve_config_path(path)
            base = OmegaConf.merge(base, OmegaConf.load(where))
        if overrides:
            where = "command-line overrides"
            bad = [o for o in overrides if "=" not in o]
            if bad:
                raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
            base = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
        config = OmegaConf.to_object(base)
    except ConfigError:
        raise
    except OmegaConfBaseException as err:
        msg = " ".join(str(err).split("\n")[0].split())
        key = getattr(err, "full_key", None)
        raise ConfigError(f"invalid config in {where}" + (f" at key '{key}'" if key else "")
                          + f": {msg}") from None
    except Exception as err:  # noqa: BLE001 - YAML scanner errors etc.
        raise ConfigError(f"cannot read config {where}: {' '.join(str(err).split())}") from None
    check_no_secrets(config, where if path is None else os.fspath(path))
    return config


def plain_data(value: Any) -> Any:
    """Tuples, lists and mappings (OmegaConf containers included) as plain lists / dicts with
    string keys, so a value survives YAML, JSON and ``torch.load(weights_only=True)`` and compares
    equal to its own round trip."""
    if isinstance(value, Mapping):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain_data(v) for v in value]
    return value


def to_dict(config: Any) -> dict:
    """A plain dict of a config dataclass (for saving next to results)."""
    return dataclasses.asdict(config)


def to_yaml(config: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
