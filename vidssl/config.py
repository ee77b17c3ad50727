"""Typed configs: a dataclass schema, a YAML file over it, dotted overrides over that.

Unknown keys and values of the wrong type are errors with one line naming the key and the
file, never silently ignored. YAML is parsed by OmegaConf (safe loading: no code runs; no ``_target_``-style instantiation
exists: names such as ``method.name`` are looked up in vidssl's registries). A config holding the
value of a secret environment variable is rejected (see :mod:`vidssl.security`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vidssl.errors import ConfigError
from vidssl.security import check_no_secrets

T = TypeVar("T")


def load_config(schema: type[T], path: str | os.PathLike | None = None,
                overrides: Sequence[str] = ()) -> T:
    """Merge ``path`` (YAML) and ``overrides`` (``["a.b=1", ...]``) over ``schema``'s defaults.

    Raises:
        ConfigError: missing file, YAML syntax error, unknown key, wrong type.
    """
    base = OmegaConf.structured(schema)
    where = "defaults"
    try:
        if path is not None:
            where = os.fspath(path)
            if not os.path.isfile(where):
                raise ConfigError(f"config file not found: {where}")
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


def to_dict(config: Any) -> dict:
    """A plain dict of a config dataclass (for saving next to results)."""
    return dataclasses.asdict(config)


def to_yaml(config: Any) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))
