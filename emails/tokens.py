"""Signed tokens for links in emails: each names one thing (a customer, a shipment, an email and a URL) for
one purpose, and cannot be made up or moved to another purpose without the install's secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_BYTES = 16


def _sign(secret: bytes, purpose: str, payload: bytes) -> bytes:
    return hmac.new(secret, purpose.encode() + b":" + payload, hashlib.sha256).digest()[:SIGNATURE_BYTES]


def make_token(secret: bytes, purpose: str, value: str) -> str:
    payload = value.encode()
    raw = _sign(secret, purpose, payload) + payload
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_token(secret: bytes, purpose: str, token: str) -> str | None:
    """The value the token was made for, or None if it was not made by us for this purpose."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    signature, payload = raw[:SIGNATURE_BYTES], raw[SIGNATURE_BYTES:]
    if len(signature) < SIGNATURE_BYTES or not hmac.compare_digest(signature, _sign(secret, purpose, payload)):
        return None
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return None


def read_id(secret: bytes, purpose: str, token: str) -> int | None:
    value = read_token(secret, purpose, token)
    return int(value) if value is not None and value.isdigit() else None
