"""One registry helper for every kind of named thing vidssl builds from a config.

A :class:`Registry` maps a name to an object, or to a lazy import path (``"pkg.module:attr"``)
resolved on first use, so registering a backend never imports its library. Each entry also holds
free-form ``info`` (a decoder's device, a dataset's capabilities, a protocol's kind). A registry
can *discover* its entries by importing every module of a package once, on the first lookup:
a module registers what it defines when it is imported, so a new method is one file.

Encoders, methods, decoders, datasets, samplers and evaluation protocols are all registries::

    REG = Registry("sampler")
    REG.register("cvrl", CVRLIntervalSampler)                     # an object
    REG.register("decord", lazy="vidssl.data.decoders.decord_backend:DecordDecoder", device="cpu")
    @REG.register("tclr")                                          # a decorator
    class TCLRSampler: ...
    REG.get("cvrl"); REG.info("decord")["device"]; REG.names(); "cvrl" in REG

Every unknown name raises the same one-line :class:`~vidssl.errors.ConfigError`:
``unknown sampler 'nope'; known: cvrl, dpc, ...``; registering a taken name to another object
raises ``sampler name 'x' is already registered`` (the same object again is a no-op).
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, Mapping, TypeVar

from vidssl.errors import ConfigError

T = TypeVar("T")

__all__ = ["Registry", "Entry", "import_path"]


def import_path(path: str) -> Any:
    """The object at ``"pkg.module:attr"`` (or ``"pkg.module"`` for the module itself)."""
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry(Generic[T]):
    """One registered name: the object (once resolved) or its lazy import path, and its info."""

    name: str
    obj: Any = None
    lazy: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> T:
        if self.obj is None:
            self.obj = import_path(self.lazy)
        return self.obj

    def same_target(self, obj: Any, lazy: str | None) -> bool:
        if lazy is not None or self.lazy is not None:
            return lazy == self.lazy and (obj is None or self.obj is None or obj is self.obj)
        return obj is self.obj


class Registry(Mapping[str, T]):
    """Name -> object (or lazy import path) with info, duplicate checks and one error message.

    Args:
        kind: what the entries are, used in messages (``"encoder"``, ``"decoder backend"``).
        discover: a package whose modules are all imported on the first lookup (each registers
            what it defines); modules whose name starts with ``_`` are skipped.
        aliases: other names accepted by lookups (``{"kinetics": "kinetics_csv"}``).
        normalize: applied to a looked-up name before aliases (e.g. lower-casing).

    It is a read-only ``Mapping`` of resolved objects (``reg[name]``, ``set(reg)``, ``len``),
    plus :meth:`register`, :meth:`info`, :meth:`names`, :meth:`pop`.
    """

    def __init__(self, kind: str, *, discover: str | None = None, aliases: Mapping[str, str] | None = None,
                 normalize: Callable[[str], str] | None = None):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._discover = discover
        self._discovered = discover is None
        self._aliases = dict(aliases or {})
        self._normalize = normalize

    # ------------------------------------------------------------------ registering
    def register(self, name: str, obj: Any = None, *, lazy: str | None = None, **info: Any) -> Any:
        """Register ``obj`` (or the import path ``lazy``) under ``name`` with ``info``.

        Without ``obj`` and ``lazy`` it returns a decorator that registers what it decorates.
        Returns ``obj`` (so it can be used inline).
        """
        if obj is None and lazy is None:
            def deco(target: Any) -> Any:
                self.register(name, target, **info)
                return target

            return deco
        self._load()  # built-in names first, so a clash with one is caught here
        old = self._entries.get(name)
        if old is not None and not old.same_target(obj, lazy):
            raise ConfigError(f"{self.kind} name {name!r} is already registered")
        self._entries[name] = Entry(name, obj, lazy, dict(info))
        return obj

    def pop(self, name: str, default: Any = None) -> Any:
        """Remove ``name`` (tests and plugins that register temporarily); its entry or ``default``."""
        return self._entries.pop(name, default)

    # ------------------------------------------------------------------ looking up
    def _load(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self._discover)
        for mod in pkgutil.iter_modules(package.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self._discover}.{mod.name}")

    def key(self, name: str) -> str:
        """The registered name ``name`` refers to (after normalisation and aliases); raises the
        registry's one-line :class:`ConfigError` when there is none."""
        self._load()
        key = self._normalize(str(name)) if self._normalize else name
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise self.unknown(name)
        return key

    def unknown(self, name: Any) -> ConfigError:
        """The one error for an unknown name: ``unknown KIND 'x'; known: a, b, c``."""
        return ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self.key(name)]

    def get(self, name: str, default: Any = ...) -> T:  # type: ignore[override]
        """The object registered as ``name`` (imported now if it was registered lazily)."""
        if default is not ... and not self.__contains__(name):
            return default
        return self.entry(name).resolve()

    def info(self, name: str) -> dict[str, Any]:
        """The info given when ``name`` was registered (capabilities, device, ...)."""
        return self.entry(name).info

    def names(self, pattern: str | None = None, *, sort: bool = True, **where: Any) -> list[str]:
        """Registered names, sorted (``sort=False``: in registration order); ``pattern`` is a
        shell glob, ``where`` filters on info (``names(device="cuda")``)."""
        self._load()
        names = [n for n, e in self._entries.items()
                 if (pattern is None or fnmatch.fnmatch(n, pattern))
                 and all(e.info.get(k) == v for k, v in where.items())]
        return sorted(names) if sort else names

    # ------------------------------------------------------------------ Mapping
    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        try:
            self.key(name)  # type: ignore[arg-type]
        except ConfigError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
