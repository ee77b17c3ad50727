"""Video encoders, registered by name: registry + factory + tiny test variants (timm style).

::

    enc = create_encoder("r3d_tiny")                          # random init, CPU demo size
    enc = create_encoder("r3d_18", pretrained="default")      # torchvision Kinetics-400 weights
    enc = create_encoder("r3d_18", pretrained="run/last.pt")  # vidssl checkpoint / state dict
    enc = create_encoder("r3d_18", pretrained="exports/mine")  # vidssl export (or hf:org/name)
    spec = encoder_spec(enc)            # {"name": "r3d_18", "kwargs": {...}}, YAML/JSON-safe
    same = create_encoder(spec["name"], **spec["kwargs"])   # same architecture, random init

Every encoder keeps the contract of :mod:`vidssl.models.encoders.base` (``num_features``,
``preprocess``, ``forward_features``, ``forward_feature_map``). A factory is a function with
keyword-only architecture arguments plus ``pretrained``; :func:`create_encoder` checks the
names against its signature, so an unknown argument is a :class:`~vidssl.errors.ConfigError`.
``pretrained`` never enters the spec: a checkpoint rebuilds the architecture and loads its own
``encoder`` state dict.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, TypeVar

from torch import nn

from vidssl.config import plain_data
from vidssl.errors import ConfigError
from vidssl.models.encoders.base import Preprocess, VideoEncoder
from vidssl.models.encoders.weights import Pretrained
from vidssl.registry import Registry

__all__ = [
    "ENCODERS",
    "Preprocess",
    "VideoEncoder",
    "register_encoder",
    "create_encoder",
    "list_encoders",
    "encoder_defaults",
    "encoder_spec",
]

Factory = TypeVar("Factory", bound=Callable[..., nn.Module])

#: Encoder factories by name; the modules of this package are imported on the first lookup
#: (each registers its factories with :func:`register_encoder`), so a new encoder is one file.
ENCODERS: Registry[Callable[..., nn.Module]] = Registry("encoder", discover="vidssl.models.encoders")
_SPEC_ATTR = "_vidssl_encoder_spec"


def register_encoder(name: str) -> Callable[[Factory], Factory]:
    """Decorator: register ``fn(*, pretrained=None, **arch_kwargs) -> nn.Module`` as ``name``."""

    def deco(fn: Factory) -> Factory:
        if "pretrained" not in inspect.signature(fn).parameters:
            raise ConfigError(f"encoder factory {fn.__qualname__} must accept 'pretrained'")
        return ENCODERS.register(name, fn)

    return deco


def list_encoders(pattern: str | None = None) -> list[str]:
    """Registered names, sorted; ``pattern`` is a shell glob such as ``"*_tiny"``."""
    return ENCODERS.names(pattern)


def _factory(name: str) -> Callable[..., nn.Module]:
    return ENCODERS[name]


def encoder_defaults(name: str) -> dict[str, Any]:
    """The architecture arguments of encoder ``name`` and their defaults (no ``pretrained``)."""
    params = inspect.signature(_factory(name)).parameters
    return {k: p.default for k, p in params.items() if k != "pretrained"}


def create_encoder(name: str, pretrained: Pretrained = None, **kwargs: Any) -> nn.Module:
    """Build encoder ``name`` with architecture arguments ``kwargs``.

    Args:
        name: a registered name (see :func:`list_encoders`).
        pretrained: ``None`` (random init), ``True``/``"default"`` (the encoder's published
            weights; the ViT encoders also take a Hugging Face hub id or a local directory), a
            path to a state dict / ``.safetensors`` file / vidssl checkpoint (its ``"encoder"``
            entry), or a folder written by ``vidssl export`` / ``hf:ORG/NAME`` (checked against
            ``name`` and ``kwargs``: :mod:`vidssl.models.hub`), loaded strictly.
        **kwargs: the factory's architecture arguments (see :func:`encoder_defaults`).

    Raises:
        ConfigError: unknown name or argument, invalid argument value.
        VidsslError: weights that cannot be downloaded, read or loaded (one line).
        MissingDependencyError: an optional package the encoder needs is not installed.
    """
    factory = _factory(name)
    defaults = encoder_defaults(name)
    if isinstance(pretrained, str) and not pretrained.strip():
        pretrained = None  # an empty config / CLI value means "no weights"
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown argument(s) {', '.join(map(repr, unknown))} for encoder "
                          f"{name!r}; accepted: {', '.join(defaults) or 'none'}")
    resolved = {**defaults, **kwargs}
    from vidssl.models.hub import resolve_pretrained

    pretrained = resolve_pretrained(name, resolved, pretrained)  # exported folder, hf:ORG/NAME
    model = factory(pretrained=pretrained, **kwargs)
    setattr(model, _SPEC_ATTR, {"name": name, "kwargs": plain_data(resolved)})
    model.encoder_name = name
    return model


def encoder_spec(module: nn.Module) -> dict[str, Any]:
    """``{"name": str, "kwargs": dict}`` to rebuild ``module``'s architecture with
    :func:`create_encoder` (all arguments resolved, defaults included; no ``pretrained``).

    Raises:
        ConfigError: ``module`` was not built by :func:`create_encoder`.
    """
    spec = getattr(module, _SPEC_ATTR, None)
    if spec is None:
        raise ConfigError(f"{type(module).__name__} was not built by create_encoder; "
                          f"no encoder spec to save")
    return {"name": spec["name"], "kwargs": plain_data(spec["kwargs"])}
