"""Postmark: the documented request shape, and each published answer sorted into sent, retry or dead."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import respx

from emails.postmark import PostmarkSender, PostmarkSettings
from emails.send import Message, PermanentSendError, TransientSendError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "postmark"
URL = "https://api.postmarkapp.com/email"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def message() -> Message:
    return Message(message_id="<m1@shop.example.com>", sender="Shop <hello@shop.example.com>",
                   to="receiver@example.com", subject="Your parcel is on its way", html="<p>Hi</p>", text="Hi",
                   date=datetime(2026, 3, 2, tzinfo=UTC), kind="in_transit", reply_to="help@shop.example.com",
                   headers={"List-Unsubscribe": "<https://shop.example.com/u/1>"})


def send(answer: httpx.Response | Exception):
    route = respx.post(URL).mock(side_effect=[answer])
    sender = PostmarkSender(PostmarkSettings(server_token="token-123"))

    async def go():
        try:
            return await sender.send(message(), "1")
        finally:
            await sender.aclose()

    return asyncio.run(go()), route


@respx.mock
def test_a_send_uses_the_documented_shape_and_returns_postmarks_message_id():
    provider_id, route = send(httpx.Response(200, json=fixture("postmark-email-send-response-200.json")))
    assert provider_id == "0a129aee-e1cd-480d-b08d-4f48548ff48d"
    request = route.calls.last.request
    assert request.headers["X-Postmark-Server-Token"] == "token-123"
    body = json.loads(request.content)
    documented = fixture("postmark-email-send-request.json")
    assert set(documented) <= set(body)
    assert body["MessageStream"] == "outbound" and body["ReplyTo"] == "help@shop.example.com"
    headers = {h["Name"]: h["Value"] for h in body["Headers"]}
    assert headers["X-Trackmail-Kind"] == "in_transit"
    assert headers["List-Unsubscribe"] == "<https://shop.example.com/u/1>"


@pytest.mark.parametrize("status, name", [
    (422, "postmark-email-error-406-inactive-recipient.json"),
    (422, "postmark-email-error-300-invalid-to.json"),
    (200, "postmark-email-send-200-some-recipients-inactive.json"),
])
@respx.mock
def test_inactive_or_invalid_recipients_are_permanent(status, name):
    with pytest.raises(PermanentSendError, match="ErrorCode (406|300|0)"):
        send(httpx.Response(status, json=fixture(name)))


@pytest.mark.parametrize("answer", [
    httpx.Response(429, json={"ErrorCode": 429, "Message": "Rate Limit Exceeded"}),
    httpx.Response(503, text="<html>Service Unavailable</html>"),
    httpx.Response(401, json={"ErrorCode": 10, "Message": "Bad or missing server or user API token."}),
    httpx.ConnectError("refused"),
])
@respx.mock
def test_rate_limits_outages_and_a_bad_token_are_retried_later(answer):
    with pytest.raises(TransientSendError):
        send(answer)
