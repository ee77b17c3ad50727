"""Downloads that cannot happen fail at once, in one line that says how to run offline.

Hub clients retry a host they cannot reach (open_clip over huggingface_hub took ~55 s and
printed ~77 warning lines before a truncated error). Before a download that the local caches
cannot serve, :func:`require_download` asks once whether the host answers (a TCP connect with a
short timeout, remembered for the process) and raises :class:`~vidssl.errors.VidsslError` with
the offline recipe when it does not, or when offline mode is on (``HF_HUB_OFFLINE=1`` or
``VIDSSL_OFFLINE=1``).
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

from vidssl.errors import VidsslError

#: How to go on without the network; each caller adds what fits its weights.
OFFLINE_RECIPE = ("offline, pass a local weights file or folder instead, or copy the weights into the "
                  "cache on a machine that has the network")


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` / ``VIDSSL_OFFLINE`` set to a true value."""
    return any(os.environ.get(k, "").strip().lower() in ("1", "true", "yes", "on")
               for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VIDSSL_OFFLINE"))


@functools.lru_cache(maxsize=None)
def host_reachable(host: str, port: int = 443, timeout: float = 5.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds (name lookup
    included). Remembered for the life of the process."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_download(what: str, where: str, hint: str = "") -> None:
    """Raise one line unless ``where`` (a URL or host name) can be downloaded from now.

    Args:
        what: the thing being fetched, e.g. ``"open_clip weights 'openai' for ViT-B-16"``.
        where: its URL or host.
        hint: what else the user can do (appended after the generic recipe).
    """
    host = urlparse(where).hostname if "://" in where else where
    reason = ("offline mode is on (HF_HUB_OFFLINE / VIDSSL_OFFLINE)" if offline_mode()
              else None if host and host_reachable(host) else f"{host} cannot be reached")
    if reason:
        raise VidsslError(f"cannot download {what} from {where}: {reason}; {OFFLINE_RECIPE}"
                          + (f"; {hint}" if hint else ""))
