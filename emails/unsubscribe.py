"""Signed unsubscribe tokens: a link that names a customer and cannot be forged for another one."""

from __future__ import annotations

from emails.tokens import make_token as _make
from emails.tokens import read_id

PURPOSE = "unsubscribe"


def make_token(secret: bytes, customer_id: int) -> str:
    return _make(secret, PURPOSE, str(customer_id))


def verify_token(secret: bytes, token: str) -> int | None:
    """The customer id the token was made for, or None if it was not made with this secret."""
    return read_id(secret, PURPOSE, token)


def unsubscribe_url(base_url: str, secret: bytes, customer_id: int) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{make_token(secret, customer_id)}"
