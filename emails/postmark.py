"""Sending through Postmark's email API over HTTPS.

`POST {base_url}/email` with header `X-Postmark-Server-Token`; JSON body From, To, Subject, HtmlBody,
TextBody, ReplyTo, Headers [{Name, Value}], MessageStream. Success is HTTP 200 with `ErrorCode` 0 and the
provider's `MessageID`. Failures carry an `ErrorCode`: 406 (inactive recipient: hard bounce, spam complaint
or manual suppression) and 300 (invalid request: a bad address) never succeed on retry, so they are
permanent; 429 and 5xx are transient; 10 (bad server token) is the merchant's configuration, retried and
logged rather than dead-lettering every email. A 200 that still names the recipient inactive is permanent
too: Postmark accepted the call but will not deliver.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from emails.send import Message, PermanentSendError, TransientSendError
from tracker.settings import Section

DEFAULT_BASE_URL = "https://api.postmarkapp.com"
PERMANENT_CODES = frozenset({300, 406})  # invalid request (address), inactive recipient
CONFIG_CODES = frozenset({10, 400, 401, 405, 412, 413})  # token, sender signature, account state


@dataclass(frozen=True)
class PostmarkSettings:
    server_token: str
    message_stream: str = "outbound"
    base_url: str = DEFAULT_BASE_URL
    timeout: float = 20.0

    @classmethod
    def from_section(cls, section: Section) -> PostmarkSettings:
        section.check_keys({"type", "server_token", "message_stream", "base_url", "timeout"})
        return cls(server_token=section.str("server_token"),
                   message_stream=section.str("message_stream", "outbound"),
                   base_url=section.str("base_url", DEFAULT_BASE_URL),
                   timeout=section.number("timeout", 20.0, minimum=1))


def request_body(message: Message, stream: str) -> dict:
    headers = [{"Name": "X-Trackmail-Kind", "Value": message.kind},
               {"Name": "X-Trackmail-Message-ID", "Value": message.message_id}]
    headers += [{"Name": name, "Value": value} for name, value in message.headers.items()]
    body = {"From": message.sender, "To": message.to, "Subject": message.subject, "HtmlBody": message.html,
            "TextBody": message.text, "Headers": headers, "MessageStream": stream, "Tag": message.kind}
    if message.reply_to:
        body["ReplyTo"] = message.reply_to
    return body


def read_answer(status: int, payload: object, text: str) -> str:
    """The provider's message id, or the send error the answer means."""
    if not isinstance(payload, dict):
        if status == 429 or status >= 500:
            raise TransientSendError(f"Postmark HTTP {status}: {text[:200]}")
        raise PermanentSendError(f"Postmark HTTP {status}, unreadable answer: {text[:200]}")
    code = payload.get("ErrorCode", 0)
    detail = f"Postmark HTTP {status}, ErrorCode {code}: {payload.get('Message', '')}"
    if status == 200 and code == 0:
        if "will not deliver" in str(payload.get("Message", "")):
            raise PermanentSendError(detail, suppress=True)
        return str(payload.get("MessageID", ""))
    if code in PERMANENT_CODES:
        raise PermanentSendError(detail, suppress=code == 406)
    if code in CONFIG_CODES or status in (401, 429) or status >= 500:
        raise TransientSendError(detail)
    raise PermanentSendError(detail)


class PostmarkSender:
    def __init__(self, settings: PostmarkSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.client = httpx.AsyncClient(base_url=settings.base_url, timeout=settings.timeout, transport=transport,
                                        headers={"X-Postmark-Server-Token": settings.server_token,
                                                 "Accept": "application/json"})

    async def send(self, message: Message, name: str) -> str:
        try:
            response = await self.client.post("/email", json=request_body(message, self.settings.message_stream))
        except httpx.HTTPError as exc:
            raise TransientSendError(f"Postmark unreachable: {type(exc).__name__}: {exc}") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        return read_answer(response.status_code, payload, response.text)

    async def aclose(self) -> None:
        await self.client.aclose()
