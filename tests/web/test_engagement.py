"""The open pixel and the click redirect: opens and clicks are recorded once, the pixel never tells a good
token from a bad one, and the redirect goes only to the URL the token was signed for."""

from __future__ import annotations

import base64
import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session
from starlette.testclient import TestClient

from emails.engagement import CLICK, click_url, open_url
from emails.tokens import make_token
from tests.factories import T0, add_order
from tracker.config import WebSettings
from tracker.models import Email, EmailEvent, EmailState
from tracker.web.app import create_app
from tracker.web.engagement import PIXEL, routes

BASE = "http://shop.test"
COUPON_URL = "https://shop.example.com/p/beanie?utm_source=mail&utm_medium=email"


@pytest.fixture
def web(app):
    app.config = app.outbox.config = dataclasses.replace(app.config, web=WebSettings(public_url=BASE))
    application = create_app(app)
    if not any(getattr(r, "path", "") == "/c/{token}" for r in application.routes):
        application.router.routes.extend(routes())  # until tracker/web/app.py registers them
    with TestClient(application, base_url=BASE) as client:
        yield client


@pytest.fixture
def email_id(app) -> int:
    with Session(app.engine) as session:
        order = add_order(session)
        email = Email(idempotency_key="resell_coupon:order:1", message_id="<m@x>", kind="resell_coupon",
                      shop="demo", order_id=order.id, customer_id=order.customer_id, to_address="ada@example.com",
                      state=EmailState.SENT, created_at=T0, due_at=T0, sent_at=T0, marketing=True)
        session.add(email)
        session.commit()
        return email.id


def events(app) -> list[tuple[int, str, str]]:
    with Session(app.engine) as session:
        rows = session.execute(select(EmailEvent).order_by(EmailEvent.id)).scalars()
        return [(e.email_id, e.kind, e.url) for e in rows]


def path(url: str) -> str:
    return url.removeprefix(BASE)


def click_path(app, email_id: int, url: str = COUPON_URL) -> str:
    return path(click_url(BASE, app.outbox.secret, email_id, url))


def tamper(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 1  # one bit of the URL changed
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def test_a_click_is_recorded_and_redirected_to_exactly_the_signed_url(app, web, email_id):
    answer = web.get(click_path(app, email_id), follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == COUPON_URL
    assert events(app) == [(email_id, "click", COUPON_URL)]


def test_a_double_click_within_a_minute_counts_once_and_a_later_one_again(app, web, email_id):
    web.get(click_path(app, email_id), follow_redirects=False)
    assert web.get(click_path(app, email_id), follow_redirects=False).status_code == 302
    web.get(click_path(app, email_id, "https://shop.example.com/other"), follow_redirects=False)
    assert len(events(app)) == 2  # another link is another click
    app.clock.set(T0 + timedelta(minutes=2))
    web.get(click_path(app, email_id), follow_redirects=False)
    assert len(events(app)) == 3


def test_a_query_string_cannot_change_where_the_redirect_goes(app, web, email_id):
    answer = web.get(click_path(app, email_id) + "?u=https://evil.example&url=https://evil.example",
                     follow_redirects=False)
    assert answer.headers["location"] == COUPON_URL


@pytest.mark.parametrize("forge", [
    lambda app, email_id: "/c/" + tamper(click_path(app, email_id).removeprefix("/c/")),
    lambda app, email_id: "/c/" + make_token(app.outbox.secret, "open", str(email_id)),
    lambda app, email_id: "/c/" + make_token(app.outbox.secret, "track", f"{email_id}|https://evil.example"),
    lambda app, email_id: "/c/" + make_token(b"guessed" * 5, CLICK, f"{email_id}|https://evil.example"),
    lambda app, email_id: "/c/" + click_path(app, email_id + 1).removeprefix("/c/")[:-4] + "AAAA",
    lambda app, email_id: "/c/not-a-token?u=https://evil.example",
], ids=["altered", "open-token", "other-purpose", "other-secret", "truncated", "garbage-with-u"])
def test_a_forged_or_altered_click_token_gets_a_clear_400_and_no_redirect(app, web, email_id, forge):
    answer = web.get(forge(app, email_id), follow_redirects=False)
    assert answer.status_code == 400
    assert "location" not in answer.headers and "evil" not in answer.text
    assert "Link not valid" in answer.text
    assert events(app) == []


@pytest.mark.parametrize("attempt", ["/c/?u=https://evil.example", "/c//evil.example", "/c/%2F%2Fevil.example",
                                     "/c?url=https://evil.example"])
def test_a_click_path_with_no_token_redirects_nowhere(app, web, attempt):
    answer = web.get(attempt, follow_redirects=False)
    assert answer.status_code in (400, 404) and "location" not in answer.headers


def test_a_token_signed_for_another_email_counts_for_that_email_only(app, web, email_id):
    """The email id is inside the signature: a link copied from one email cannot be credited to another."""
    token = click_path(app, email_id).removeprefix("/c/")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    moved = raw.replace(f"{email_id}|".encode(), f"{email_id + 1}|".encode(), 1)
    forged = base64.urlsafe_b64encode(moved).decode().rstrip("=")
    assert web.get(f"/c/{forged}", follow_redirects=False).status_code == 400
    assert events(app) == []


def test_a_click_on_an_email_since_deleted_still_reaches_the_shop_but_records_nothing(app, web):
    answer = web.get(click_path(app, 999), follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == COUPON_URL
    assert events(app) == []


def test_an_open_is_recorded_at_most_once_a_minute_and_answers_a_transparent_gif(app, web, email_id):
    pixel = path(open_url(BASE, app.outbox.secret, email_id))
    for _ in range(3):
        answer = web.get(pixel)
        assert answer.status_code == 200 and answer.content == PIXEL
        assert answer.headers["content-type"] == "image/gif" and "no-store" in answer.headers["cache-control"]
    assert events(app) == [(email_id, "open", "")]
    app.clock.set(T0 + timedelta(minutes=1, seconds=1))
    web.get(pixel)
    assert events(app) == [(email_id, "open", ""), (email_id, "open", "")]


def test_the_pixel_is_a_1x1_gif():
    assert PIXEL.startswith(b"GIF89a") and PIXEL[6:10] == b"\x01\x00\x01\x00" and PIXEL.endswith(b";")


@pytest.mark.parametrize("token", ["garbage", "AAAA", "%00", "x" * 300])
def test_a_bad_open_token_gets_the_same_gif_and_records_nothing(app, web, email_id, token):
    good = web.get(path(open_url(BASE, app.outbox.secret, email_id)))
    bad = web.get(f"/o/{token}.gif")
    assert (bad.status_code, bad.content, bad.headers["content-type"]) == (200, good.content, "image/gif")
    assert events(app) == [(email_id, "open", "")]


def test_an_open_token_is_not_accepted_as_a_click_and_a_click_token_not_as_an_open(app, web, email_id):
    click_token = click_path(app, email_id).removeprefix("/c/")
    assert web.get(f"/o/{click_token}.gif").content == PIXEL
    assert events(app) == []
