"""One chat-completions request to an OpenAI-compatible endpoint, through the ``openai`` package.

Settings come from flags or the environment: the key from the variable named by ``api_key_env``
(default ``OPENAI_API_KEY``; the key itself is never a command-line argument), the base URL from
``--base-url`` or ``OPENAI_BASE_URL`` (a local server such as vLLM or llama.cpp works), the model from
``--model`` or ``DIFFREFINE_REPORT_MODEL`` (default :data:`DEFAULT_MODEL`). With neither a base URL
nor a key the endpoint counts as not configured and the caller uses the offline report.

Every failure (connection, time-out, rate limit, HTTP status, malformed reply) becomes one
:class:`LLMFailure` with a one-line message from which the key has been removed (:func:`redact`); the
key is kept out of ``repr`` as well.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DEFAULT_MODEL = "gpt-4o"
MODEL_ENV = "DIFFREFINE_REPORT_MODEL"
BASE_URL_ENV = "OPENAI_BASE_URL"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
PLACEHOLDER_KEY = "not-needed"
"""Sent when a base URL is set without a key (local servers ignore it; the client needs one)."""

TEMPERATURE = 0.0


class LLMFailure(Exception):
    """The request failed; the message is one line, safe to print and to store."""


@dataclass(frozen=True)
class LLMSettings:
    """Where and how to ask. ``api_key`` is excluded from ``repr``."""

    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 2

    @property
    def configured(self) -> bool:
        """Whether there is an endpoint to ask (a base URL or a key)."""
        return bool(self.base_url or self.api_key)


def settings_from(
    model: str | None = None,
    base_url: str | None = None,
    api_key_env: str = DEFAULT_KEY_ENV,
    timeout_s: float = 60.0,
    max_retries: int = 2,
    environ: Mapping[str, str] | None = None,
) -> LLMSettings:
    """Settings from the flags, falling back on the environment (see the module docstring)."""
    env = os.environ if environ is None else environ
    return LLMSettings(
        model=model or env.get(MODEL_ENV) or DEFAULT_MODEL,
        base_url=base_url or env.get(BASE_URL_ENV) or None,
        api_key=env.get(api_key_env) or None,
        timeout_s=float(timeout_s),
        max_retries=int(max_retries),
    )


def safe_url(url: str | None) -> str:
    """``url`` without user info, query or fragment (credentials can hide there)."""
    if not url:
        return "the default OpenAI endpoint"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact(text: str, secret: str | None) -> str:
    """``text`` on one line, at most 300 characters, with the secret and any token sharing 8 or more
    consecutive characters with it replaced by ``[redacted]``."""
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "[redacted]")
        if len(secret) >= 8:
            pieces = {secret[i : i + 8] for i in range(len(secret) - 7)}

            def scrub(match: re.Match) -> str:
                token = match.group(0)
                return "[redacted]" if any(p in token for p in pieces) else token

            text = re.sub(r"\S+", scrub, text)
    return text if len(text) <= 300 else text[:297] + "..."


def _describe(error: Exception, settings: LLMSettings) -> str:
    import openai

    where = safe_url(settings.base_url)
    if isinstance(error, openai.APITimeoutError):
        return f"the LLM request to {where} timed out after {settings.timeout_s:g} s"
    if isinstance(error, openai.APIConnectionError):
        return f"could not connect to the LLM endpoint {where}"
    if isinstance(error, openai.RateLimitError):
        return f"the LLM endpoint {where} rate-limited the request (HTTP 429)"
    if isinstance(error, openai.APIStatusError):
        detail = re.sub(r"^Error code: \d+ - ", "", str(error.message))
        return f"the LLM endpoint {where} answered HTTP {error.status_code}: {detail}"
    return f"the LLM request failed ({type(error).__name__}: {error})"


def complete(settings: LLMSettings, messages: list[dict[str, Any]]) -> str:
    """The text of the model's first choice at temperature 0, or :class:`LLMFailure`."""
    import openai

    client = openai.OpenAI(
        api_key=settings.api_key or PLACEHOLDER_KEY,
        base_url=settings.base_url,
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
    )
    try:
        response = client.chat.completions.create(
            model=settings.model, messages=messages, temperature=TEMPERATURE
        )
        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        content = getattr(message, "content", None)
    except openai.OpenAIError as e:
        raise LLMFailure(redact(_describe(e, settings), settings.api_key)) from None
    except (AttributeError, TypeError, IndexError, KeyError, ValueError) as e:
        raise LLMFailure(
            redact(
                f"malformed reply from {safe_url(settings.base_url)} ({type(e).__name__})", settings.api_key
            )
        ) from None
    finally:
        client.close()
    if not content or not str(content).strip():
        raise LLMFailure(f"the LLM endpoint {safe_url(settings.base_url)} returned an empty reply")
    return str(content)
