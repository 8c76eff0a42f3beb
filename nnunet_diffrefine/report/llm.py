"""One chat-completions request to an OpenAI-compatible endpoint, through the ``openai`` package.

Settings come from flags or the environment: the key from the variable named by ``api_key_env``
(default ``OPENAI_API_KEY``; the key itself is never a command-line argument), the base URL from
``--base-url`` or ``OPENAI_BASE_URL`` (a local server such as vLLM or llama.cpp works), the model from
``--model`` or ``DIFFREFINE_REPORT_MODEL`` (default :data:`DEFAULT_MODEL`). With neither a base URL
nor a key the endpoint counts as not configured and the caller uses the offline report.

``timeout_s`` bounds the whole wait, all retries together (:func:`complete`); a progress line is
reported while waiting. Every failure (connection, time-out, rate limit, HTTP status, malformed reply)
becomes one :class:`LLMFailure` with a one-line message saying what happened (each attempt's outcome
when none succeeded) from which the key has been removed (:func:`redact`); the key is kept out of
``repr`` as well.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from nnunet_diffrefine.environment import (
    REPORT_BASE_URL_VARIABLE,
    REPORT_DEFAULT_KEY_VARIABLE,
    REPORT_MODEL_VARIABLE,
    report_endpoint,
    report_model,
)

DEFAULT_MODEL = "gpt-4o"
MODEL_ENV = REPORT_MODEL_VARIABLE
BASE_URL_ENV = REPORT_BASE_URL_VARIABLE
DEFAULT_KEY_ENV = REPORT_DEFAULT_KEY_VARIABLE
PLACEHOLDER_KEY = "not-needed"
"""Sent when a base URL is set without a key (local servers ignore it; the client needs one)."""

TEMPERATURE = 0.0
PROGRESS_FIRST_S = 1.0
"""Seconds of waiting before the first progress line."""
PROGRESS_EVERY_S = 5.0
"""Seconds between progress lines."""


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
    env_base_url, env_api_key = report_endpoint(api_key_env, environ)
    return LLMSettings(
        model=model or report_model(environ) or DEFAULT_MODEL,
        base_url=base_url or env_base_url,
        api_key=env_api_key,
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


def _describe(error: BaseException, settings: LLMSettings, waited: float) -> tuple[str, str]:
    """A short and a full description of a failed attempt."""
    import openai

    where = safe_url(settings.base_url)
    if isinstance(error, openai.APITimeoutError):
        return f"no answer in {waited:.1f} s", f"no reply from the LLM endpoint {where}"
    if isinstance(error, openai.APIConnectionError):
        return "could not connect", f"could not connect to the LLM endpoint {where}"
    if isinstance(error, openai.RateLimitError):
        return "HTTP 429", f"the LLM endpoint {where} rate-limited the request (HTTP 429)"
    if isinstance(error, openai.APIStatusError):
        detail = re.sub(r"^Error code: \d+ - ", "", str(error.message))
        code = error.status_code
        return f"HTTP {code}", f"the LLM endpoint {where} answered HTTP {code}: {detail}"
    return type(error).__name__, f"the LLM request failed ({type(error).__name__}: {error})"


def _retryable(error: BaseException) -> bool:
    import openai

    if isinstance(error, openai.APIStatusError):
        return error.status_code in (408, 409, 429) or error.status_code >= 500
    return isinstance(error, openai.APIConnectionError)  # includes APITimeoutError


def _content(response: Any) -> str | None:
    choices = getattr(response, "choices", None) or []
    message = getattr(choices[0], "message", None) if choices else None
    return getattr(message, "content", None)


def _attempt(client: Any, settings: LLMSettings, messages: list, timeout: float, tick: Callable[[], None]):
    """One request in a worker thread, waited for at most ``timeout`` s (``tick`` called meanwhile).
    Returns ``("ok", response)``, ``("error", exception)`` or ``("late", None)``."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["response"] = client.chat.completions.create(
                model=settings.model, messages=messages, temperature=TEMPERATURE, timeout=timeout
            )
        except BaseException as e:  # noqa: BLE001 (handed to the waiting thread)
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name="llm-request", daemon=True).start()
    deadline = time.monotonic() + timeout
    while not done.wait(max(0.0, min(0.25, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            return "late", None
        tick()
    return ("error", box["error"]) if "error" in box else ("ok", box["response"])


def complete(
    settings: LLMSettings, messages: list[dict[str, Any]], progress: Callable[[str], None] | None = None
) -> str:
    """The text of the model's first choice at temperature 0, or :class:`LLMFailure`.

    All attempts together (the first and up to ``max_retries`` retries on connection errors, time-outs,
    HTTP 408/409/429/5xx, after 0.5, 1, 2 ... s) wait at most ``timeout_s``; each request runs in a
    worker thread that is abandoned at the deadline. While waiting, ``progress`` gets a line after
    :data:`PROGRESS_FIRST_S` s and then every :data:`PROGRESS_EVERY_S` s."""
    import openai

    where, total, attempts = safe_url(settings.base_url), settings.timeout_s, settings.max_retries + 1
    start = time.monotonic()
    deadline, next_line = start + total, [start + PROGRESS_FIRST_S]
    outcomes: list[tuple[str, str]] = []

    def tick() -> None:
        now = time.monotonic()
        if progress is not None and now >= next_line[0]:
            progress(
                f"waiting for the LLM endpoint {where}: {now - start:.0f} s of {total:g} s "
                f"(attempt {len(outcomes) + 1} of {attempts})"
            )
            next_line[0] = now + PROGRESS_EVERY_S

    client = openai.OpenAI(
        api_key=settings.api_key or PLACEHOLDER_KEY, base_url=settings.base_url, timeout=total, max_retries=0
    )
    try:
        for attempt in range(attempts):
            remaining = deadline - time.monotonic()
            if attempt and remaining <= 0.05:
                break
            began = time.monotonic()
            status, value = _attempt(client, settings, messages, remaining, tick)
            if status == "late":
                outcomes.append((f"no answer in {time.monotonic() - began:.1f} s", f"no reply from {where}"))
                break
            if status == "ok":
                return _text(value, settings)
            if not isinstance(value, openai.OpenAIError):
                raise LLMFailure(
                    redact(f"malformed reply from {where} ({type(value).__name__})", settings.api_key)
                )
            outcomes.append(_describe(value, settings, time.monotonic() - began))
            if not _retryable(value):
                break
            pause_until = min(time.monotonic() + 0.5 * 2**attempt, deadline)
            while attempt + 1 < attempts and time.monotonic() < pause_until:
                time.sleep(min(0.1, max(0.0, pause_until - time.monotonic())))
                tick()
    finally:
        client.close()
    raise LLMFailure(redact(_summary(where, total, outcomes), settings.api_key))


def _text(response: Any, settings: LLMSettings) -> str:
    where = safe_url(settings.base_url)
    try:
        content = _content(response)
    except (AttributeError, TypeError, IndexError, KeyError, ValueError) as e:
        raise LLMFailure(
            redact(f"malformed reply from {where} ({type(e).__name__})", settings.api_key)
        ) from None
    if not content or not str(content).strip():
        raise LLMFailure(f"the LLM endpoint {where} returned an empty reply")
    return str(content)


def _summary(where: str, total: float, outcomes: list[tuple[str, str]]) -> str:
    """What happened, for the warning: the last failure (or that the time ran out) and every attempt."""
    short, full = outcomes[-1]
    if short.startswith("no answer"):
        full = f"no reply from the LLM endpoint {where} within {total:g} s (--timeout, all attempts together)"
    if len(outcomes) == 1 and not short.startswith("no answer"):
        return full
    n = len(outcomes)
    return f"{full}; {n} attempt{'s' if n != 1 else ''}: " + ", ".join(s for s, _ in outcomes)
