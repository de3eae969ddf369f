"""Unsubscribe links name one customer and cannot be made up for another."""

from __future__ import annotations

import base64

from emails.unsubscribe import make_token, unsubscribe_url, verify_token

SECRET = b"k" * 32


def test_a_token_verifies_to_the_customer_it_was_made_for():
    assert verify_token(SECRET, make_token(SECRET, 42)) == 42


def test_a_token_made_with_another_secret_is_refused():
    assert verify_token(SECRET, make_token(b"other" * 8, 42)) is None


def test_changing_the_customer_inside_a_token_is_refused():
    token = make_token(SECRET, 42)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    forged = base64.urlsafe_b64encode(raw[:-2] + b"43").decode().rstrip("=")
    assert verify_token(SECRET, forged) is None


def test_a_token_for_another_purpose_is_refused():
    from emails.tokens import make_token as make_any

    assert verify_token(SECRET, make_any(SECRET, "track", "42")) is None


def test_garbage_is_refused_without_an_exception():
    for token in ("", "x", "!!!", "NDI", "NDIu", base64.urlsafe_b64encode(b"42.").decode()):
        assert verify_token(SECRET, token) is None


def test_the_link_lives_under_the_shops_public_url():
    url = unsubscribe_url("https://shop.example.com/trackmail/", SECRET, 7)
    assert url.startswith("https://shop.example.com/trackmail/unsubscribe/")
    assert verify_token(SECRET, url.rsplit("/", 1)[1]) == 7
