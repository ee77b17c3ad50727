"""Self-supervised methods, registered by name.

A method is an ``nn.Module`` built from an encoder and its own typed parameters (a dataclass,
so unknown keys are errors). What the training engine relies on:

- ``method.sampler``: the :class:`~vidssl.data.samplers.ClipSampler` the dataset must use;
- ``method(batch) -> dict[str, Tensor]``: ``batch["views"]`` is a list of uint8
  ``(B, T, C, H, W)`` tensors already on the training device (one per sampler view),
  ``batch["targets"]`` the sampler's targets; the dict holds a scalar ``"loss"`` plus any
  other scalars worth logging; a true ``"skip_update"`` makes the trainer skip backward and
  the optimiser for that step (CoCLR while its queue fills). Augmentations run inside, on the
  device, batched;
- ``method.encoder``: the backbone that evaluation and checkpoints export;
- optional ``method.set_step(step: int, total_steps: int)``, called before each step with the
  0-based index of the step about to run (also the first one after ``--resume``): behaviour
  that follows the schedule (DPC's curriculum);
- optional ``method.after_step(step: int, total_steps: int)`` for EMA / queue updates.

One method per file, no shared base class (see ``docs/architecture.md``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator, Sequence

from torch import nn

from vidssl.errors import ConfigError

_METHODS: dict[str, tuple[type, type]] = {}


def register_method(name: str, params: type) -> Callable[[type], type]:
    """Class decorator: register ``cls(encoder, params_instance)`` under ``name``."""

    def deco(cls: type) -> type:
        if name in _METHODS and _METHODS[name][0] is not cls:
            raise ConfigError(f"method name {name!r} is already registered")
        _METHODS[name] = (cls, params)
        return cls

    return deco


def _load_builtin() -> None:
    import vidssl.methods.cvrl  # noqa: F401
    import vidssl.methods.tclr  # noqa: F401
    import vidssl.methods.supervised  # noqa: F401
    import vidssl.methods.vcop  # noqa: F401
    import vidssl.methods.o3n  # noqa: F401
    import vidssl.methods.dpc  # noqa: F401
    import vidssl.methods.coclr  # noqa: F401
    import vidssl.methods.lss  # noqa: F401


def list_methods() -> list[str]:
    _load_builtin()
    return sorted(_METHODS)


def method_class(name: str) -> type:
    """The registered class of method ``name`` (``ConfigError`` if unknown)."""
    _load_builtin()
    if name not in _METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(_METHODS))}")
    return _METHODS[name][0]


def method_params(name: str, params: dict[str, Any] | None = None) -> Any:
    """The method's parameter dataclass with ``params`` merged over its defaults.

    Raises:
        ConfigError: unknown method, unknown parameter key or wrong type.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    _load_builtin()
    if name not in _METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(_METHODS))}")
    schema = _METHODS[name][1]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.create(dict(params or {})))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise param_error(name, getattr(err, "full_key", None), str(err).split("\n")[0]) from None


def create_method(name: str, encoder: nn.Module, params: dict[str, Any] | None = None) -> nn.Module:
    """Build method ``name`` around ``encoder`` (see the module docstring for the contract)."""
    p = method_params(name, params)
    return _METHODS[name][0](encoder, p)


def params_dict(p: Any) -> dict[str, Any]:
    return dataclasses.asdict(p)


# One-line errors for a method's parameters, shared by every method's ``__post_init__``.


def param_error(method: str, key: str | None, msg: str) -> ConfigError:
    """``invalid parameter for method 'M' at key 'method.params.K': msg`` (no key: not tied to one)."""
    where = f" at key 'method.params.{key}'" if key else ""
    return ConfigError(f"invalid parameter for method {method!r}{where}: {' '.join(str(msg).split())}")


def check_ints(method: str, params: Any, minimums: dict[str, int]) -> None:
    """Every ``params.<name>`` is an int (not a bool) of at least ``minimums[name]``."""
    for name, minimum in minimums.items():
        value = getattr(params, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise param_error(method, name, f"must be an int >= {minimum}, got {value!r}")


def check_choice(method: str, key: str, value: Any, options: Sequence[Any]) -> None:
    if value not in options:
        raise param_error(method, key, f"must be one of {tuple(options)}, got {value!r}")


@contextlib.contextmanager
def building_parts(method: str) -> Iterator[None]:
    """Build a method's sampler / augmentations / loss to validate them: their ``TypeError`` or
    ``ValueError`` becomes the method's one-line ``ConfigError``."""
    try:
        yield
    except (TypeError, ValueError) as err:
        raise param_error(method, None, str(err)) from None
