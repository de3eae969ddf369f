"""A real SMTP server (aiosmtpd) on loopback: messages arrive whole, 4xx is retried, 5xx dead-lettered, and a
server that is down delays mail without losing or doubling any."""

from __future__ import annotations

import asyncio
import email
import socket
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlmodel import Session

from emails.outbox import enqueue
from emails.send import Message, PermanentSendError, TransientSendError
from emails.smtp import SmtpSender, SmtpSettings
from tests.factories import T0, add_order
from tracker.models import Email, EmailState


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps what it receives, or answers with a scripted SMTP error."""

    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.answer: str | None = None  # e.g. "451 4.3.0 try later"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.answer:
            return self.answer
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.original_content))
        return "250 OK"


@pytest.fixture
def server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def sender_for(port: int) -> SmtpSender:
    return SmtpSender(SmtpSettings(host="127.0.0.1", port=port, security="none", timeout=5))


def message() -> Message:
    return Message(message_id="<abc123@shop.example.com>", sender="Shop <hello@shop.example.com>",
                   to="Ada <ada@example.com>", subject="Your order #1 is confirmed", html="<p>Hi <b>Ada</b></p>",
                   text="Hi Ada", date=datetime(2026, 3, 2, 9, 0, tzinfo=UTC), kind="order_confirmation",
                   reply_to="support@shop.example.com", headers={"X-Trackmail-Ref": "order_confirmation:order:1"})


def test_a_message_arrives_as_multipart_with_its_headers(server):
    controller, inbox = server
    asyncio.run(sender_for(controller.port).send(message(), "1"))
    [received] = inbox.messages
    assert inbox.envelopes == [("hello@shop.example.com", ["ada@example.com"])]
    assert received["Message-ID"] == "<abc123@shop.example.com>"
    assert received["X-Trackmail-Kind"] == "order_confirmation"
    assert received["Reply-To"] == "support@shop.example.com"
    assert received.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode().rstrip() for p in received.walk()
             if not p.is_multipart()}
    assert parts == {"text/plain": "Hi Ada", "text/html": "<p>Hi <b>Ada</b></p>"}


def test_a_4xx_answer_is_transient(server):
    controller, inbox = server
    inbox.answer = "451 4.3.0 Mailbox temporarily unavailable"
    with pytest.raises(TransientSendError, match="451"):
        asyncio.run(sender_for(controller.port).send(message(), "1"))


def test_a_5xx_answer_is_permanent(server):
    controller, inbox = server
    inbox.answer = "550 5.1.1 No such user"
    with pytest.raises(PermanentSendError, match="550 5.1.1 No such user"):
        asyncio.run(sender_for(controller.port).send(message(), "1"))


def test_a_server_that_is_down_is_transient():
    with pytest.raises(TransientSendError, match="cannot connect"):
        asyncio.run(sender_for(free_port()).send(message(), "1"))


def test_through_the_outbox_a_server_down_then_up_delivers_exactly_once(app):
    port = free_port()
    app.outbox.sender = sender_for(port)
    with Session(app.engine) as session:
        enqueue(session, app.config, "order_confirmation", add_order(session), now=T0)
        session.commit()
    down = asyncio.run(app.outbox.send_due(app.engine, T0))
    assert down.retried == 1 and down.sent == 0
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        later = T0 + timedelta(hours=1)
        assert asyncio.run(app.outbox.send_due(app.engine, later)).sent == 1
        assert asyncio.run(app.outbox.send_due(app.engine, later + timedelta(hours=1))).sent == 0
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    with Session(app.engine) as session:
        row = session.execute(select(Email)).scalar_one()
    assert row.state is EmailState.SENT and row.attempts == 1
    assert inbox.messages[0]["Message-ID"] == row.message_id


def test_through_the_outbox_a_5xx_is_dead_lettered_with_the_servers_words(app, server):
    controller, inbox = server
    inbox.answer = "554 5.7.1 Rejected by policy"
    app.outbox.sender = sender_for(controller.port)
    with Session(app.engine) as session:
        enqueue(session, app.config, "order_confirmation", add_order(session), now=T0)
        session.commit()
    assert asyncio.run(app.outbox.send_due(app.engine, T0)).dead == 1
    with Session(app.engine) as session:
        row = session.execute(select(Email)).scalar_one()
    assert row.state is EmailState.DEAD and "554 5.7.1 Rejected by policy" in row.last_error
