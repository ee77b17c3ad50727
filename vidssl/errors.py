"""Exception types with one-line, user-facing messages.

Every error that reaches a user names *what* went wrong and *where* (a path, a config key, a
package to install) in a single line, so the CLI can print it without a traceback.
"""

from __future__ import annotations


class VidsslError(Exception):
    """Base class: the CLI prints ``str(err)`` and exits with status 2."""


class VideoDecodeError(VidsslError):
    """A video file could not be opened or decoded.

    Attributes:
        path: the file.
        reason: a short, single-line reason (no traceback, no newlines).
    """

    def __init__(self, path: str, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split()) or "unknown error"
        super().__init__(f"cannot decode {self.path}: {self.reason}")


class DecoderStuckError(VidsslError):
    """Too many decodes overran their deadline in one process: the storage or the backend is
    stuck, so the run (or index build) stops instead of piling up abandoned threads."""


class MissingDependencyError(VidsslError, ImportError):
    """An optional package is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, feature: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{feature} needs the '{package}' package, which is not installed: "
            f"pip install 'vidssl[{extra}]'  (or: pip install {package})"
        )


class BackendUnavailableError(VidsslError):
    """A backend's package is installed but it cannot run here (e.g. no CUDA device)."""


class DatasetError(VidsslError):
    """A dataset root, annotation file or split list is missing or malformed."""


class ConfigError(VidsslError):
    """A configuration key or value is invalid (unknown key, wrong type, bad range)."""
