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
- ``method.encoder``: the backbone being trained; checkpoints export the encoder object the
  trainer built and passed to the method, which is ``method.encoder`` except where a method
  says otherwise (LSS with ``export: teacher`` makes that object its EMA teacher
  ``encoder_t``; such a method names it ``method.exported_encoder``);
- optional ``method.set_step(step: int, total_steps: int)``, called before each step with the
  0-based index of the step about to run (also the first one after ``--resume``): behaviour
  that follows the schedule (DPC's curriculum);
- optional ``method.after_step(step: int, total_steps: int)`` for EMA / queue updates;
- optional static ``stages(params) -> list[Stage]``: one config that runs as several stages
  (CoCLR's alternation), as plain data the trainer expands (:func:`method_stages`);
- optional static ``pretext(params) -> Pretext``: which logged scalar measures the method's own
  task (instance / order / odd-one-out accuracy, DPC top-1, teacher-student agreement); the
  forward then also logs ``"chance"``, that scalar's value for a guess at random on this batch
  (:func:`method_pretext`: the learning checks, ``vidssl compare``'s pretext curves, the demo's
  supervised bound).

One method per file, no shared base class, discovered from this package: a new method is its
file plus a config (see ``docs/architecture.md``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

from torch import nn

from vidssl.errors import ConfigError
from vidssl.registry import Registry

#: Method classes by name (info: ``params``, the parameter dataclass). Every module of this
#: package is imported on the first lookup and registers its class with
#: :func:`register_method`: a new method is one file here plus one config.
METHODS: Registry[type] = Registry("method", discover="vidssl.methods")


def register_method(name: str, params: type) -> Callable[[type], type]:
    """Class decorator: register ``cls(encoder, params_instance)`` under ``name``."""

    def deco(cls: type) -> type:
        return METHODS.register(name, cls, params=params)

    return deco


def list_methods() -> list[str]:
    return METHODS.names()


def method_class(name: str) -> type:
    """The registered class of method ``name`` (``ConfigError`` if unknown)."""
    return METHODS[name]


def method_params(name: str, params: dict[str, Any] | None = None) -> Any:
    """The method's parameter dataclass with ``params`` merged over its defaults.

    Raises:
        ConfigError: unknown method, unknown parameter key or wrong type.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = METHODS.info(name)["params"]
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.create(dict(params or {})))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        raise param_error(name, getattr(err, "full_key", None), str(err).split("\n")[0]) from None


def create_method(name: str, encoder: nn.Module, params: dict[str, Any] | None = None) -> nn.Module:
    """Build method ``name`` around ``encoder`` (see the module docstring for the contract)."""
    p = method_params(name, params)
    return METHODS[name](encoder, p)


@dataclass(frozen=True)
class Stage:
    """One run of a multi-stage method, as plain data the trainer expands into a config.

    Attributes:
        name: the stage's folder under the run's ``out_dir``.
        params: method parameters that replace the run's own for this stage.
        checkpoints: parameters that take an earlier stage's checkpoint, ``param -> stage name``
            (the trainer fills in ``OUT_DIR/<stage name>/checkpoints/last.pt``).
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)


def method_stages(name: str, params: dict[str, Any] | None = None) -> list[Stage]:
    """The stages a method's parameters expand into (``[]``: one ordinary run). A method class
    declares them with a static ``stages(params_dataclass) -> list[Stage]``."""
    fn = getattr(METHODS[name], "stages", None)
    return list(fn(method_params(name, params))) if fn is not None else []


class Pretext(NamedTuple):
    """A method's own task, as logged: ``metric`` is a key of the forward's output (an accuracy
    in ``[0, 1]``), ``what`` names it for people; the forward logs ``"chance"`` beside it."""

    metric: str
    what: str


def method_pretext(name: str, params: dict[str, Any] | None = None) -> Optional[Pretext]:
    """The pretext metric of method ``name`` with ``params`` (``None``: the method declares
    none, e.g. the masked-modelling methods, whose measure is their loss)."""
    fn = getattr(METHODS[name], "pretext", None)
    return fn(method_params(name, params)) if fn is not None else None


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


_RANGES: dict[str, Callable[[Any], bool]] = {
    "[0, 1]": lambda v: 0.0 <= v <= 1.0, "[0, 1)": lambda v: 0.0 <= v < 1.0,
    "> 0": lambda v: v > 0, ">= 0": lambda v: v >= 0,
}


def check_range(method: str, params: Any, bounds: dict[str, str]) -> None:
    """Every ``params.<name>`` lies in ``bounds[name]``: ``"[0, 1]"``, ``"[0, 1)"``, ``"> 0"`` or
    ``">= 0"`` (NaN never does)."""
    for name, bound in bounds.items():
        value = getattr(params, name)
        if not _RANGES[bound](value):
            where = "in " if bound.startswith("[") else ""
            raise param_error(method, name, f"must be {where}{bound}, got {value!r}")


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
