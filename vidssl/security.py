"""Secrets stay in the environment: they never enter configs, logs or written files.

vidssl reads credentials (e.g. the API key of an OpenAI-compatible endpoint for prompt
generation) from environment variables only. Two guards keep them from leaking:

- :func:`check_no_secrets` -- a loaded config whose values contain the value of a secret-looking
  environment variable (``${oc.env:OPENAI_API_KEY}`` interpolated, or pasted) is rejected,
  because every resolved config is saved with its run and its checkpoints;
- :class:`RedactingFilter` -- on the ``vidssl`` log handlers, replaces such values in any log
  message with ``<redacted:NAME>``.

A variable is secret-looking when its name contains KEY, TOKEN, SECRET, PASSWORD, PASSWD or
CREDENTIAL (case-insensitive) and its value has at least 8 characters.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterator

from vidssl.errors import ConfigError

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
MIN_SECRET_LEN = 8


def secret_values(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``{value: variable name}`` of the secret-looking environment variables."""
    env = os.environ if environ is None else environ
    return {v: k for k, v in env.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LEN}


def redact(text: str, secrets: dict[str, str] | None = None) -> str:
    """``text`` with every secret value replaced by ``<redacted:NAME>``."""
    for value, name in (secret_values() if secrets is None else secrets).items():
        if value in text:
            text = text.replace(value, f"<redacted:{name}>")
    return text


def _strings(obj: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _strings(v, f"{path}[{i}]")
    elif hasattr(obj, "__dataclass_fields__"):
        for k in obj.__dataclass_fields__:
            yield from _strings(getattr(obj, k), f"{path}.{k}" if path else k)


def check_no_secrets(config: Any, where: str) -> None:
    """Raise ConfigError if a value of ``config`` contains a secret environment value."""
    secrets = secret_values()
    if not secrets:
        return
    for key, value in _strings(config):
        for secret, name in secrets.items():
            if secret in value:
                raise ConfigError(
                    f"config key '{key}' in {where} holds the value of the environment variable "
                    f"{name}; secrets must stay in the environment (configs are saved with every "
                    "run): remove it, vidssl reads credentials from the environment itself")


class RedactingFilter(logging.Filter):
    """Log filter that redacts secret environment values from the formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = secret_values()
        if secrets:
            message = record.getMessage()
            clean = redact(message, secrets)
            if clean != message:
                record.msg, record.args = clean, None
        return True
