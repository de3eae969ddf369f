"""Signed unsubscribe tokens: a link that names a customer and cannot be forged for another one."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, b"unsubscribe:" + payload, hashlib.sha256).digest()[:16]


def make_token(secret: bytes, customer_id: int) -> str:
    payload = str(customer_id).encode()
    raw = payload + b"." + _sign(secret, payload)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verify_token(secret: bytes, token: str) -> int | None:
    """The customer id the token was made for, or None if it was not made with this secret."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    payload, dot, signature = raw.partition(b".")
    if not dot or not payload.isdigit() or not hmac.compare_digest(signature, _sign(secret, payload)):
        return None
    return int(payload)


def unsubscribe_url(base_url: str, secret: bytes, customer_id: int) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{make_token(secret, customer_id)}"
