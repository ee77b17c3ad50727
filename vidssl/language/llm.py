"""LLM backends for attribute generation: a local ``transformers`` model or an OpenAI-compatible
HTTP endpoint. Both decode greedily (deterministic answers, so caching them is sound).

A backend has ``name`` (``"transformers"`` / ``"openai"``), ``model_id``, ``decoding`` (the
settings that change the answer: they enter the cache key) and ``complete(messages) -> str``;
failures raise :class:`LLMError` (one line) and the caller retries.

- :class:`TransformersBackend`: ``AutoTokenizer`` + ``AutoModelForCausalLM`` from a hub id or
  local folder (or objects passed in), prompt built with the tokenizer's chat template,
  ``generate(do_sample=False, max_new_tokens=...)``.
- :class:`OpenAIBackend`: ``POST {base_url}/chat/completions`` (``temperature: 0``) with the
  standard library's ``urllib``. Base URL and key come from the environment only
  (``VIDSSL_LLM_BASE_URL`` / ``OPENAI_BASE_URL``, ``VIDSSL_LLM_API_KEY`` / ``OPENAI_API_KEY``);
  the key goes into the ``Authorization`` header and nowhere else: it is never logged, never put
  in an error message, a cache key or a generated file, and never sent on after a redirect.
  Messages show the base URL without any ``user:password@`` part or query.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Optional

from vidssl.errors import ConfigError, MissingDependencyError, VidsslError

BASE_URL_VARS = ("VIDSSL_LLM_BASE_URL", "OPENAI_BASE_URL")
API_KEY_VARS = ("VIDSSL_LLM_API_KEY", "OPENAI_API_KEY")
BACKENDS = ("transformers", "openai")


class LLMError(VidsslError):
    """One failed completion (timeout, HTTP error, malformed response); retried by the caller."""


def _env(names: tuple[str, ...]) -> Optional[str]:
    for n in names:
        value = os.environ.get(n)
        if value:
            return value
    return None


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, ...).

    Args:
        model_id: the server's model name.
        base_url: default from ``$VIDSSL_LLM_BASE_URL`` / ``$OPENAI_BASE_URL`` (e.g.
            ``http://127.0.0.1:8000/v1``); the key only ever from ``$VIDSSL_LLM_API_KEY`` /
            ``$OPENAI_API_KEY`` (optional: local servers often need none).
        max_tokens: answer budget; timeout: seconds per request.
    """

    name = "openai"

    def __init__(self, model_id: str, *, base_url: Optional[str] = None, max_tokens: int = 256,
                 timeout: float = 60.0):
        base = base_url or _env(BASE_URL_VARS)
        if not base:
            raise ConfigError(f"the openai backend needs a base URL: set {BASE_URL_VARS[0]} "
                              f"(e.g. http://127.0.0.1:8000/v1)")
        parts = urllib.parse.urlsplit(base)
        host = parts.netloc.rpartition("@")[2]  # drop user:password@
        shown = urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"LLM base URL must be http:// or https:// with a host, got {shown!r}")
        if any(c.isspace() for c in base):
            raise ConfigError(f"LLM base URL contains whitespace: {shown!r}")
        self.model_id, self.base_url = model_id, base.rstrip("/")
        self._shown = shown.rstrip("/")  # for messages: no credentials, no query
        self.max_tokens, self.timeout = int(max_tokens), float(timeout)

    @property
    def decoding(self) -> dict[str, Any]:
        return {"temperature": 0, "max_tokens": self.max_tokens}

    def complete(self, messages: list[dict[str, str]]) -> str:
        body = json.dumps({"model": self.model_id, "messages": messages, **self.decoding}).encode()
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
        key = _env(API_KEY_VARS)
        if key:  # not copied onto a redirected request (urllib copies ordinary headers)
            req.add_unredirected_header("Authorization", f"Bearer {key}")
        url = self._shown
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as err:
            raise LLMError(f"{url}: HTTP {err.code} {err.reason}") from None
        except (socket.timeout, TimeoutError):
            raise LLMError(f"{url}: no answer within {self.timeout:g} s") from None
        except urllib.error.URLError as err:
            reason = err.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise LLMError(f"{url}: no answer within {self.timeout:g} s") from None
            raise LLMError(f"{url}: {reason}") from None
        except OSError as err:
            raise LLMError(f"{url}: {err}") from None
        except (http.client.HTTPException, ValueError) as err:  # bad status line, body cut short
            raise LLMError(f"{url}: broken HTTP response ({type(err).__name__})") from None
        try:
            return str(json.loads(payload)["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMError(f"{url}: response is not a chat completion") from None


class TransformersBackend:
    """Greedy chat completion with a local causal LM through ``transformers``.

    Args:
        model_id: hub id or local folder (ignored for loading when ``model`` and ``tokenizer``
            are given, but still names the model in the cache key and the output file).
        model, tokenizer: already-built objects (tests, or a model you hold in memory).
        max_new_tokens: answer budget; device: where generation runs.
    """

    name = "transformers"

    def __init__(self, model_id: str, *, model=None, tokenizer=None, max_new_tokens: int = 256,
                 device: str = "cpu"):
        try:
            import transformers
        except ImportError:
            raise MissingDependencyError(package="transformers", extra="vit",
                                         feature="the transformers LLM backend") from None
        self.model_id, self.max_new_tokens, self.device = model_id, int(max_new_tokens), device
        try:
            self.tokenizer = tokenizer or transformers.AutoTokenizer.from_pretrained(model_id)
            self.model = model or transformers.AutoModelForCausalLM.from_pretrained(model_id)
        except (OSError, ValueError) as err:
            msg = " ".join(str(err).split())[:200]
            raise VidsslError(f"cannot load LLM {model_id!r} with transformers: {msg}") from None
        if not getattr(self.tokenizer, "chat_template", None):
            raise ConfigError(f"tokenizer of {model_id!r} has no chat template; use an instruction-tuned model")
        self.model.to(device).eval()

    @property
    def decoding(self) -> dict[str, Any]:
        return {"do_sample": False, "max_new_tokens": self.max_new_tokens}

    def complete(self, messages: list[dict[str, str]]) -> str:
        import torch

        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        ids = {k: v.to(self.device) for k, v in ids.items()}
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with torch.no_grad():
            out = self.model.generate(**ids, do_sample=False, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=pad)
        return self.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def create_backend(name: str, model_id: str, **kwargs: Any):
    """``"transformers"`` or ``"openai"`` backend for ``model_id`` (kwargs: the class's options)."""
    if name == "transformers":
        return TransformersBackend(model_id, **kwargs)
    if name == "openai":
        return OpenAIBackend(model_id, **kwargs)
    raise ConfigError(f"unknown LLM backend {name!r}; choose from {BACKENDS}")
