"""One-click unsubscribe (RFC 8058) and the preference page: marketing stops, tracking never does."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select
from sqlmodel import Session
from starlette.testclient import TestClient

from emails.unsubscribe import make_token
from tests.factories import add_order
from tracker.config import WebSettings
from tracker.models import Suppression, SuppressionScope
from tracker.web.app import create_app


@pytest.fixture
def web(app):
    app.config = app.outbox.config = dataclasses.replace(app.config, web=WebSettings(public_url="http://shop.test"))
    with TestClient(create_app(app)) as client:
        yield client


def customer_token(app) -> str:
    with Session(app.engine) as session:
        order = add_order(session)
        session.commit()
        return make_token(app.outbox.secret, order.customer_id)


def suppressions(app) -> list[Suppression]:
    with Session(app.engine) as session:
        return list(session.execute(select(Suppression)).scalars())


def test_the_one_click_post_a_mail_client_sends_unsubscribes_from_marketing_only(app, web):
    token = customer_token(app)
    answer = web.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    [row] = suppressions(app)
    assert (row.email, row.scope, row.source) == ("ada@example.com", SuppressionScope.MARKETING, "unsubscribe link")


def test_opening_the_link_shows_a_page_and_changes_nothing_until_the_button(app, web):
    token = customer_token(app)
    page = web.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and 'id="unsubscribe"' in page.text and "still get emails about orders" in page.text
    assert suppressions(app) == []  # link scanners that only GET must not unsubscribe anybody


def test_unsubscribing_twice_is_harmless(app, web):
    token = customer_token(app)
    web.post(f"/unsubscribe/{token}")
    assert web.post(f"/unsubscribe/{token}").status_code == 200
    assert len(suppressions(app)) == 1


@pytest.mark.parametrize("token", ["abc", make_token(b"x" * 32, 1), ""])
def test_a_forged_or_broken_link_gets_a_clear_refusal(app, web, token):
    customer_token(app)
    for method in (web.get, web.post):
        answer = method(f"/unsubscribe/{token}")
        assert answer.status_code in (400, 404)
        if answer.status_code == 400:
            assert "not valid" in answer.text
    assert suppressions(app) == []
