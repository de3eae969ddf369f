"""The shared HTTP layer: retries what may pass later, never retries a refusal, and names what went wrong."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import respx

from carriers.base import AuthError, ResponseError, TransientError
from carriers.http import (
    AiohttpTransport,
    Http,
    Limits,
    OAuthToken,
    RetryPolicy,
    client_credentials,
    make_client,
    parse_json,
    read_token,
    with_token,
)
from tests.doubles import Sleeps

BASE = "https://courier.test"



def http(sleeps: Sleeps, **limits) -> Http:
    return Http("acme", make_client(BASE), Limits(per_second=1000, **limits), RetryPolicy(sleep=sleeps))


def get(client: Http, **kwargs) -> httpx.Response:
    async def call():
        try:
            return await client.request("GET", "/track/1", **kwargs)
        finally:
            await client.aclose()

    return asyncio.run(call())


@respx.mock
def test_a_5xx_then_success_is_retried_with_backoff():
    route = respx.get(f"{BASE}/track/1").mock(side_effect=[httpx.Response(503), httpx.Response(502),
                                                           httpx.Response(200, json={"ok": True})])
    sleeps = Sleeps()
    assert get(http(sleeps)).json() == {"ok": True}
    assert route.call_count == 3
    assert sleeps.waits == [0.5, 1.0]


@respx.mock
def test_a_429_waits_for_retry_after():
    respx.get(f"{BASE}/track/1").mock(side_effect=[httpx.Response(429, headers={"Retry-After": "7"}),
                                                   httpx.Response(200, json={})])
    sleeps = Sleeps()
    get(http(sleeps))
    assert sleeps.waits == [7.0]


@respx.mock
def test_a_long_retry_after_goes_back_to_the_poller_instead_of_blocking():
    route = respx.get(f"{BASE}/track/1").mock(return_value=httpx.Response(429, headers={"Retry-After": "3600"},
                                                                          text="quota"))
    with pytest.raises(TransientError) as caught:
        get(http(Sleeps()))
    assert route.call_count == 1
    assert caught.value.retry_after == 3600 and caught.value.status_code == 429


@respx.mock
def test_retries_end_with_the_last_error_and_its_excerpt():
    respx.get(f"{BASE}/track/1").mock(return_value=httpx.Response(500, text="<html><h1>Oops</h1></html>"))
    with pytest.raises(TransientError) as caught:
        get(http(Sleeps()), tracking_number="1Z999")
    message = str(caught.value)
    assert "acme" in message and "1Z999" in message and "HTTP 500" in message and "Oops" in message


@respx.mock
def test_auth_errors_are_not_retried():
    route = respx.get(f"{BASE}/track/1").mock(return_value=httpx.Response(401, json={"error": "bad key"}))
    with pytest.raises(AuthError):
        get(http(Sleeps()))
    assert route.call_count == 1


@respx.mock
def test_an_unexpected_4xx_is_a_response_error_unless_the_caller_reads_it():
    respx.get(f"{BASE}/track/1").mock(return_value=httpx.Response(404, json={"title": "No shipment"}))
    with pytest.raises(ResponseError):
        get(http(Sleeps()))
    assert get(http(Sleeps()), ok=frozenset({404})).status_code == 404


@respx.mock
def test_timeouts_and_refused_connections_are_transient():
    respx.get(f"{BASE}/track/1").mock(side_effect=[httpx.ConnectTimeout("slow"), httpx.ConnectError("refused"),
                                                   httpx.ReadTimeout("slow")])
    with pytest.raises(TransientError, match="timed out"):
        get(http(Sleeps()))


def test_an_html_page_where_json_was_expected_is_named():
    response = httpx.Response(200, text="<!DOCTYPE html><title>Maintenance</title>",
                              headers={"content-type": "text/html"})
    with pytest.raises(ResponseError, match="expected JSON, got text/html.*Maintenance"):
        parse_json(response, "acme")


@respx.mock
def test_the_daily_budget_is_never_exceeded():
    respx.get(f"{BASE}/track/1").mock(return_value=httpx.Response(200, json={}))
    client = http(Sleeps(), per_day=2)

    async def three():
        await client.request("GET", "/track/1")
        await client.request("GET", "/track/1")
        with pytest.raises(TransientError, match="daily budget of 2") as caught:
            await client.request("GET", "/track/1")
        assert 0 < caught.value.retry_after <= 86400

    asyncio.run(three())


def test_a_token_is_fetched_once_reused_and_refreshed_before_it_expires():
    now = [0.0]
    fetched = []

    async def fetch():
        fetched.append(now[0])
        return f"token-{len(fetched)}", 3600.0

    token = OAuthToken(fetch, margin=60, clock=lambda: now[0])

    async def scenario():
        assert await token.get() == "token-1"
        now[0] = 3500
        assert await token.get() == "token-1"
        now[0] = 3541
        assert await token.get() == "token-2"

    asyncio.run(scenario())
    assert fetched == [0.0, 3541]


def test_a_401_refreshes_the_token_once_and_retries():
    tokens = iter(["stale", "fresh"])

    async def fetch():
        return next(tokens), 3600.0

    token = OAuthToken(fetch)
    used = []

    async def call(bearer: str) -> httpx.Response:
        used.append(bearer)
        if bearer == "stale":
            raise AuthError("expired", source="acme", status_code=401)
        return httpx.Response(200)

    assert asyncio.run(with_token(token, call)).status_code == 200
    assert used == ["stale", "fresh"]



def grant(answer: httpx.Response, **kwargs) -> tuple[str, float]:
    """One client-credentials grant against a mocked token endpoint."""
    client = http(Sleeps())

    async def call():
        try:
            return await client_credentials(client, "/oauth/token", data={"client_secret": "s3cret"}, **kwargs)
        finally:
            await client.aclose()

    with respx.mock:
        respx.post(f"{BASE}/oauth/token").mock(return_value=answer)
        return asyncio.run(call())


@pytest.mark.parametrize(("expires_in", "lifetime"), [("14399", 14399.0), (3600, 3600.0), (None, 900.0),
                                                    ("soon", 900.0), (-5, 900.0), (True, 900.0), ([1], 900.0)])
def test_a_token_lifetime_is_read_leniently(expires_in, lifetime):
    assert read_token({"access_token": "t", "expires_in": expires_in}, "acme", 900.0) == ("t", lifetime)
    assert grant(httpx.Response(200, json={"access_token": "t", "expires_in": expires_in}),
                 default_lifetime=900.0) == ("t", lifetime)


@pytest.mark.parametrize("answer", [
    httpx.Response(200, json={"accessToken": "eyJSECRET"}),
    httpx.Response(200, json={"access_token": ""}),
    httpx.Response(200, text="access_token=eyJSECRET"),
    httpx.Response(200, text='{"access_token": "eyJSECRET", "expi'),
])
def test_an_unreadable_token_answer_is_a_response_error_without_the_token(answer):
    with pytest.raises(ResponseError) as caught:
        grant(answer)
    assert "eyJSECRET" not in str(caught.value) and "s3cret" not in str(caught.value)
    assert caught.value.source == "acme"


@pytest.mark.parametrize(("status", "refused"), [(401, frozenset()), (403, frozenset()), (400, frozenset({400}))])
def test_refused_credentials_are_an_auth_error(status, refused):
    with pytest.raises(AuthError) as caught:
        grant(httpx.Response(status, json={"error": "invalid_client"}), refused=refused,
              refusal=lambda response: f"refused ({response.json()['error']})")
    assert caught.value.status_code == status and "invalid_client" in caught.value.excerpt
    if refused:
        assert "refused (invalid_client)" in str(caught.value)


def test_a_400_the_courier_does_not_call_a_refusal_stays_a_response_error():
    with pytest.raises(ResponseError):
        grant(httpx.Response(400, json={"error": "invalid_request"}))


def test_the_grant_sends_what_the_courier_asks_for():
    client = http(Sleeps())

    async def call():
        try:
            return await client_credentials(client, "/oauth/token", auth=httpx.BasicAuth("id", "pw"),
                                            data={"grant_type": "client_credentials"})
        finally:
            await client.aclose()

    with respx.mock:
        route = respx.post(f"{BASE}/oauth/token").mock(return_value=httpx.Response(200, json={"access_token": "t"}))
        assert asyncio.run(call()) == ("t", 3600.0)
    sent = route.calls.last.request
    assert sent.headers["Authorization"].startswith("Basic ") and sent.content == b"grant_type=client_credentials"

# ── The real transport (aiohttp under httpx) against servers on loopback ──────────────────────────────────────


async def _serve(answer) -> tuple[asyncio.Server, str]:
    """A raw TCP server on loopback; `answer(reader, writer)` plays the courier."""
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def test_the_default_client_talks_through_aiohttp_and_closing_it_closes_the_session():
    async def courier(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        body = json.dumps({"path": head.split()[1].decode()}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        writer.close()

    async def call():
        server, url = await _serve(courier)
        client = make_client(url)
        http = Http("acme", client, Limits(per_second=1000))
        try:
            response = await http.request("GET", "/track/shipments", params={"trackingNumber": "JJD 1"})
        finally:
            await http.aclose()
            server.close()
        transport = client._transport
        assert isinstance(transport, AiohttpTransport) and transport.client.closed
        return response

    response = asyncio.run(call())
    assert response.json() == {"path": "/track/shipments?trackingNumber=JJD+1"}
    assert response.request.headers["User-Agent"].startswith("trackmail/")


def test_a_refused_connection_is_transient_and_says_so():
    async def call():
        server, url = await _serve(lambda r, w: None)
        server.close()
        await server.wait_closed()  # nothing listens there any more
        http = Http("acme", make_client(url), Limits(per_second=1000), RetryPolicy(attempts=1))
        try:
            await http.request("GET", "/track/1")
        finally:
            await http.aclose()

    with pytest.raises(TransientError, match="cannot connect"):
        asyncio.run(call())


def test_a_courier_that_never_answers_times_out_as_transient():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(5)
        finally:  # cancelled when the test's loop ends
            writer.close()

    async def call():
        server, url = await _serve(silent)
        http = Http("acme", make_client(url, timeout=0.2), Limits(per_second=1000), RetryPolicy(attempts=1))
        try:
            await http.request("GET", "/track/1")
        finally:
            await http.aclose()
            server.close()

    with pytest.raises(TransientError, match="timed out"):
        asyncio.run(call())


def test_a_garbled_answer_is_a_transient_error_not_an_aiohttp_exception():
    async def garbled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()
        writer.close()

    async def call():
        server, url = await _serve(garbled)
        http = Http("acme", make_client(url), Limits(per_second=1000), RetryPolicy(attempts=1))
        try:
            await http.request("GET", "/track/1")
        finally:
            await http.aclose()
            server.close()

    with pytest.raises(TransientError, match="cannot connect: .*BadStatusLine|cannot connect: .*Client"):
        asyncio.run(call())


@respx.mock
def test_respx_intercepts_the_default_client_whatever_its_transport():
    """tests/conftest.py makes respx patch the client, not httpcore's pool, which aiohttp never touches."""
    route = respx.get(f"{BASE}/track/1").mock(return_value=httpx.Response(200, json={"mocked": True}))
    assert get(http(Sleeps())).json() == {"mocked": True}
    assert route.call_count == 1
