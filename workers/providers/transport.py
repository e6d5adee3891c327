"""Shared HTTP plumbing: one client, a rate limiter, retries with backoff, JSON replies."""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
)

from workers.providers.base import ProviderConfig, ProviderError

log = logging.getLogger(__name__)

# 418 is Binance's "IP banned for ignoring 429s"; it carries Retry-After like a 429.
RETRYABLE_STATUSES = frozenset({408, 418, 425, 429})

QueryParams = Mapping[str, str | int | float]


class _RetryableError(ProviderError):
    """A failure worth another attempt, with the server's requested pause if it gave one."""

    def __init__(
        self, provider: str, status: int | None, reason: str, retry_after: float | None = None
    ) -> None:
        super().__init__(provider, status, reason, transient=True)
        self.retry_after = retry_after


@dataclass(frozen=True)
class JsonReply:
    """A successful response's decoded JSON body, with what is needed to blame it."""

    provider: str
    status: int
    path: str
    data: Any

    def malformed(self, reason: str) -> ProviderError:
        """An error saying this body is not of the documented shape."""
        return ProviderError(
            self.provider, self.status, f"malformed body from {self.path}: {reason}"
        )

    def object(self) -> dict[str, Any]:
        """The body as a JSON object, or a malformed-body error."""
        if not isinstance(self.data, dict):
            raise self.malformed(f"expected a JSON object, got {type(self.data).__name__}")
        return self.data

    def array(self) -> list[Any]:
        """The body as a JSON array, or a malformed-body error."""
        if not isinstance(self.data, list):
            raise self.malformed(f"expected a JSON array, got {type(self.data).__name__}")
        return self.data


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or HTTP-date form), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; email.utils returns naive for "-0000".
        when = when.replace(tzinfo=UTC)
    delay = (when - (now or datetime.now(UTC))).total_seconds()
    return max(delay, 0.0)


# Limiters are shared by every client of one account in one event loop, so two jobs using
# the same key cannot together exceed its quota; aiolimiter binds to its first loop.
_LimiterKey = tuple[str, str, str | None, float, int]
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_LimiterKey, AsyncLimiter]] = (
    weakref.WeakKeyDictionary()
)


def shared_limiter(provider: str, config: ProviderConfig) -> AsyncLimiter:
    """The limiter for this provider account in the running loop (created on first use)."""
    rpm = config.requests_per_minute
    if rpm is None or config.base_url is None:
        raise ValueError("config must be resolved with provider defaults first")
    key: _LimiterKey = (provider, config.base_url, config.api_key, rpm, config.burst)
    per_loop = _LIMITERS.setdefault(asyncio.get_running_loop(), {})
    limiter = per_loop.get(key)
    if limiter is None:
        # A bucket of `burst` draining at rpm/60 per second: after the burst, requests are
        # spaced evenly instead of bunching at the start of each minute.
        limiter = AsyncLimiter(config.burst, config.burst * 60.0 / rpm)
        per_loop[key] = limiter
    return limiter


def backoff_seconds(attempt: int, initial: float, cap: float) -> float:
    """Pause after failed attempt `attempt` (1-based): exponential, capped, "equal jitter".

    Half the exponential step is fixed and half random, so the pause never collapses to
    zero and clients that failed together do not all retry together.
    """
    step = min(cap, initial * 2 ** min(attempt - 1, 60))
    return step / 2 + random.uniform(0, step / 2)


def _describe(response: httpx.Response) -> str:
    """A short reason from an error response: the provider's message field, else the body."""
    message: object = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        # Alpaca says "message", Polygon "error"/"message", Binance "msg".
        for key in ("message", "error", "msg"):
            if isinstance(body.get(key), str) and body[key]:
                message = body[key]
                break
    if message is None:
        text = response.text.strip()
        message = text[:200] if text else response.reason_phrase or "no body"
    return f"{response.request.method} {response.request.url.path}: {message}"


class HttpTransport:
    """GETs JSON for one provider: rate-limited, retried, errors turned into ProviderError."""

    def __init__(
        self,
        provider: str,
        config: ProviderConfig,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if config.base_url is None or config.requests_per_minute is None:
            raise ValueError("config must be resolved with provider defaults first")
        self.provider = provider
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            headers=dict(headers or {}),
            timeout=httpx.Timeout(config.timeout_seconds),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def get_json(self, url: str, params: QueryParams | None = None) -> JsonReply:
        """GET `url` (absolute, or relative to base_url) and decode its JSON body."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_RetryableError),
            before_sleep=self._log_retry,
        )
        try:
            response: httpx.Response = await retrying(self._attempt, url, params)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            if not isinstance(last, _RetryableError):  # only these are retried
                raise
            raise ProviderError(
                self.provider,
                last.status,
                f"gave up after {self.config.max_attempts} attempts; last: {last.reason}",
                transient=True,
            ) from last
        try:
            data = response.json()
        except ValueError as exc:
            raise ProviderError(
                self.provider,
                response.status_code,
                f"malformed body from {response.request.url.path}: not JSON ({exc})",
            ) from None
        return JsonReply(self.provider, response.status_code, response.request.url.path, data)

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it sent one, else exponential backoff with jitter."""
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _RetryableError) and exc.retry_after is not None:
            return exc.retry_after
        return backoff_seconds(
            state.attempt_number,
            self.config.backoff_initial_seconds,
            self.config.backoff_max_seconds,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        """Say what failed and how long we pause: throttling should be visible in the logs."""
        exc = state.outcome.exception() if state.outcome is not None else None
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s; attempt %d of %d, retrying in %.2f s",
            exc,
            state.attempt_number,
            self.config.max_attempts,
            pause,
        )

    async def _attempt(self, url: str, params: QueryParams | None) -> httpx.Response:
        """One rate-limited request; raises _RetryableError for what a retry may fix."""
        # httpx's params= would replace a query already in the URL (a Polygon next_url
        # cursor); merging keeps both.
        target = httpx.URL(url).copy_merge_params(params) if params else httpx.URL(url)
        await shared_limiter(self.provider, self.config).acquire()
        try:
            response = await self._client.get(target)
        except httpx.TimeoutException as exc:
            raise _RetryableError(
                self.provider,
                None,
                f"timed out after {self.config.timeout_seconds:g} s ({type(exc).__name__})",
            ) from exc
        except httpx.TransportError as exc:
            # Connection refused or reset, protocol errors: the next attempt may get through.
            raise _RetryableError(
                self.provider, None, f"connection failed ({type(exc).__name__}: {exc})"
            ) from exc
        status = response.status_code
        if status in RETRYABLE_STATUSES or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > self.config.max_retry_after_seconds:
                raise ProviderError(
                    self.provider,
                    status,
                    f"server asked to retry after {retry_after:g} s, more than the "
                    f"{self.config.max_retry_after_seconds:g} s allowed: {_describe(response)}",
                    transient=True,
                )
            raise _RetryableError(self.provider, status, _describe(response), retry_after)
        if status >= 300:
            raise ProviderError(self.provider, status, _describe(response))
        return response
