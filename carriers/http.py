"""What every HTTP adapter shares: the client, the retry policy, rate limits, OAuth tokens, and the mapping
from HTTP failures to the error tree in carriers/base.py.

Retries happen inline only for short waits; a long `Retry-After` (a daily quota) is raised to the poller,
which keeps the shipment as it is and polls it again after that time.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import httpx
import httpx_aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from carriers.base import AuthError, CarrierError, ResponseError, TransientError
from tracker.settings import Section

USER_AGENT = "trackmail/0.1 (+https://github.com/trackmail)"
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.5  # seconds, doubled per attempt
    max_inline_wait: float = 30.0  # a Retry-After longer than this goes back to the poller instead
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


@dataclass(frozen=True)
class Limits:
    """Per account: requests in flight, requests per second, requests per day (None: unlimited)."""

    concurrency: int = 4
    per_second: float = 5.0
    per_day: int | None = None

    @classmethod
    def from_section(cls, section: Section, defaults: Limits) -> Limits:
        return cls(
            concurrency=section.int("concurrency", defaults.concurrency, minimum=1),
            per_second=section.number("per_second", defaults.per_second, minimum=0.001),
            per_day=section.int("per_day", minimum=1) if "per_day" in section.data else defaults.per_day,
        )


class RateLimiter:
    """Spaces requests `1/per_second` apart and refuses to exceed the daily budget (in-memory: one daemon)."""

    def __init__(self, limits: Limits, source: str, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.limits = limits
        self.source = source
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._day: tuple[int, int] = (-1, 0)  # (UTC day ordinal, requests made that day)

    async def acquire(self) -> None:
        now = datetime.now(UTC)
        day, used = self._day if self._day[0] == now.toordinal() else (now.toordinal(), 0)
        if self.limits.per_day is not None and used >= self.limits.per_day:
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
            raise TransientError(f"daily budget of {self.limits.per_day} requests used up", source=self.source,
                                 retry_after=(midnight - now).total_seconds())
        self._day = (day, used + 1)
        async with self._lock:
            now = self._clock()
            wait = self._next - now
            self._next = max(now, self._next) + 1.0 / self.limits.per_second
        if wait > 0:
            await self._sleep(wait)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date), if there is one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def classify(response: httpx.Response, source: str, tracking_number: str | None = None) -> CarrierError | None:
    """The error an HTTP status means, or None for success."""
    code = response.status_code
    if code < 400:
        return None
    kwargs: dict[str, Any] = {"source": source, "status_code": code, "body": response.text,
                              "tracking_number": tracking_number}
    if code in TRANSIENT_STATUS:
        return TransientError("the service is busy or failing", retry_after=retry_after(response), **kwargs)
    if code in (401, 403):
        return AuthError("credentials refused; check the account's keys in config.toml", **kwargs)
    return ResponseError("request refused", **kwargs)


def parse_json(response: httpx.Response, source: str, tracking_number: str | None = None,
               secret: bool = False) -> Any:
    """The JSON body, or a ResponseError naming what came instead (an HTML error page, a cut-off body).
    `secret`: the body may hold a credential (a token answer), so no excerpt of it goes into the error."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        kind = response.headers.get("content-type", "unknown content type")
        raise ResponseError(f"expected JSON, got {kind}", source=source, status_code=response.status_code,
                            body=None if secret else response.text, tracking_number=tracking_number) from None


def token_shape(payload: Any) -> str:
    """What a token answer held, without the values: safe to log."""
    return f"keys {sorted(payload)}" if isinstance(payload, dict) else f"a {type(payload).__name__}"


def read_token(payload: Any, source: str, default_lifetime: float = 3600.0,
               status_code: int | None = None) -> tuple[str, float]:
    """(access token, lifetime in seconds) from a decoded token answer. `expires_in` is read leniently (UPS and
    USPS send it as a string): missing, unreadable or not positive is `default_lifetime`, since a usable token
    is worth more than a complaint about its lifetime. The error names the answer's keys, never a value."""
    token = payload.get("access_token") if isinstance(payload, dict) else None
    if not isinstance(token, str) or not token:
        raise ResponseError(f"token answer without access_token ({token_shape(payload)})", source=source,
                            status_code=status_code)
    lifetime = payload.get("expires_in")
    try:
        seconds = default_lifetime if isinstance(lifetime, bool) else float(lifetime)
    except (TypeError, ValueError):
        return token, default_lifetime
    return token, seconds if 0 < seconds < math.inf else default_lifetime


class AiohttpTransport(httpx_aiohttp.AiohttpTransport):
    """httpx's API over aiohttp's connection pool (bench/http.py: httpx's own pool, httpcore 1.0, reaches a
    fraction of the ideal rate at 64 requests in flight; this one reaches aiohttp's). Every aiohttp failure
    comes out as an httpx.TransportError, so Http maps it to a TransientError like any network failure."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except httpx.TimeoutException as exc:
            cause = exc.__cause__  # the base class calls every connection failure a timeout: tell them apart
            if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(cause, TimeoutError):
                raise httpx.ConnectError(f"{type(cause).__name__}: {cause}") from cause
            raise
        except aiohttp.ClientError as exc:  # the few the base class leaves unmapped, e.g. a malformed response
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}") from exc


def fast_transport(connections: int = 100) -> httpx.AsyncBaseTransport:
    """The transport make_client uses. The aiohttp session starts on the first request (inside the event
    loop) and the client's aclose() closes it."""
    return AiohttpTransport(limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections))


def make_client(base_url: str, timeout: float = 20.0, transport: httpx.AsyncBaseTransport | None = None,
                headers: Mapping[str, str] | None = None) -> httpx.AsyncClient:
    """An httpx client on the fast transport; tests pass their own `transport` or mock with respx."""
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport or fast_transport(),
                             headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})})


@dataclass
class Http:
    """One account's way to the network: client, limits and retries together."""

    source: str  # the account name, for errors and logs
    client: httpx.AsyncClient
    limits: Limits = field(default_factory=Limits)
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        self.limiter = RateLimiter(self.limits, self.source)
        self.gate = asyncio.Semaphore(self.limits.concurrency)

    async def _once(self, method: str, url: str, tracking_number: str | None, ok: frozenset[int],
                    **kwargs: Any) -> httpx.Response:
        await self.limiter.acquire()
        try:
            async with self.gate:
                response = await self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientError(f"timed out ({type(exc).__name__})", source=self.source,
                                 tracking_number=tracking_number) from exc
        except httpx.TransportError as exc:
            raise TransientError(f"cannot connect: {exc}", source=self.source,
                                 tracking_number=tracking_number) from exc
        if response.status_code in ok:
            return response
        error = classify(response, self.source, tracking_number)
        if error is not None:
            raise error
        return response

    async def request(self, method: str, url: str, *, tracking_number: str | None = None,
                      ok: frozenset[int] = frozenset(), **kwargs: Any) -> httpx.Response:
        """Send with retries for transient failures. `ok` lists error statuses the caller reads itself
        (e.g. DHL's 404 for a number it does not know yet)."""

        def delay(error: BaseException | None, attempt: int) -> float:
            if isinstance(error, TransientError) and error.retry_after is not None:
                return error.retry_after
            return self.retry.base_delay * 2 ** (attempt - 1)

        def worth_waiting(error: BaseException) -> bool:
            return isinstance(error, TransientError) and (error.retry_after or 0) <= self.retry.max_inline_wait

        try:  # the first try outside tenacity: most requests succeed, and its machinery costs CPU per request
            return await self._once(method, url, tracking_number, ok, **kwargs)
        except TransientError as error:
            if self.retry.attempts < 2 or not worth_waiting(error):
                raise
            await self.retry.sleep(delay(error, 1))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts - 1),
            retry=retry_if_exception(worth_waiting),
            wait=lambda state: delay(state.outcome.exception(), state.attempt_number + 1),
            sleep=self.retry.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(method, url, tracking_number, ok, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.client.aclose()


class OAuthToken:
    """A client-credentials token, cached until shortly before it expires; `invalidate` after a 401."""

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float]]], margin: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch  # returns (token, lifetime in seconds)
        self._margin = margin
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        async with self._lock:  # concurrent requests share one refresh
            if self._token is None or self._clock() >= self._expires - self._margin:
                token, lifetime = await self._fetch()
                self._token, self._expires = token, self._clock() + lifetime
            return self._token

    def invalidate(self) -> None:
        self._token = None


async def client_credentials(http: Http, path: str, *, auth: httpx.Auth | None = None,
                             data: Mapping[str, str] | None = None, json: Any = None,
                             refused: frozenset[int] = frozenset(),
                             refusal: str | Callable[[httpx.Response], str] = "token refused",
                             default_lifetime: float = 3600.0) -> tuple[str, float]:
    """An OAuth2 client-credentials grant (RFC 6749 §4.4) posted to `path`; returns (token, lifetime seconds).

    The credentials go as `auth` (HTTP Basic), `data` (form fields) or `json`, as the courier wants them.
    401/403 are AuthErrors (Http does that); `refused` lists the other statuses by which this courier refuses
    credentials (400 for UPS and USPS), raised as an AuthError saying `refusal` (text, or made from the
    response). The answer may hold the token, so no excerpt of it goes into an error."""
    sent = {key: value for key, value in (("auth", auth), ("data", data), ("json", json)) if value is not None}
    response = await http.request("POST", path, ok=refused, **sent)
    if response.status_code in refused:
        said = refusal(response) if callable(refusal) else refusal
        raise AuthError(said, source=http.source, status_code=response.status_code, body=response.text)
    payload = parse_json(response, http.source, secret=True)
    return read_token(payload, http.source, default_lifetime, response.status_code)


async def with_token(token: OAuthToken, call: Callable[[str], Awaitable[httpx.Response]]) -> httpx.Response:
    """Run `call` with a bearer token; on an AuthError, refresh the token once and try again."""
    bearer = await token.get()  # a refused token request is raised as it is: no second try
    try:
        return await call(bearer)
    except AuthError:
        token.invalidate()
        return await call(await token.get())
