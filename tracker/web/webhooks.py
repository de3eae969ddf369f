"""Incoming webhooks: Shopify (orders or fulfillments changed), AfterShip (tracking updates) and Postmark
(bounces, spam complaints, subscription changes).

Every call is authenticated before its body is parsed: Shopify and AfterShip sign the raw bytes with
HMAC-SHA256, Postmark (unsigned) sends HTTP Basic credentials; all compared in constant time. A webhook whose
secret is not configured is off (404). Deliveries are deduplicated on the provider's id by the unique
(source, delivery_id) of WebhookDelivery. Only a delivery that was processed claims its provider id: refusals
and failures are recorded with their reason under a generated id, so a provider's retry after one of our
failures is processed normally. Answers are short JSON bodies; nothing logs a secret or a customer's address.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

from sqlalchemy import select, update
from sqlmodel import Session
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from carriers.aftership import parse_webhook
from carriers.base import ResponseError
from emails.outbox import suppress
from tracker.app import App
from tracker.apply import apply_result
from tracker.db import insert_ignore
from tracker.models import Shipment, SuppressionScope, WebhookDelivery
from tracker.sync import SyncReport, sync_account

log = logging.getLogger("trackmail.webhooks")
MAX_BODY = 5 * 1024 * 1024  # far above any real delivery; a bigger body is refused before it is read whole
DETAIL_LENGTH, ID_LENGTH = 500, 200  # stored lengths; a provider id is far shorter
SHOPIFY_TOPICS = ("orders/", "fulfillments/")
SYNCS = "webhook_syncs"  # app.cache key: Shopify accounts being synced because of a webhook
POSTMARK_REASONS = {"HardBounce": "hard bounce", "SpamComplaint": "spam complaint",
                    "ManualSuppression": "manual suppression"}
Handler = Callable[[App, Headers, bytes], Response]


# ── Shared steps ──────────────────────────────────────────────────────────────────────────────────────────


def _answer(status_code: int = 200, **body: Any) -> JSONResponse:
    return JSONResponse(body or {"status": "processed"}, status_code)


def _record(app: App, source: str, delivery_id: str, topic: str, status: str, detail: str) -> bool:
    """Store one delivery; False if this (source, delivery_id) was already there."""
    now = app.now()
    with Session(app.engine) as session:
        new = insert_ignore(session, WebhookDelivery, source=source, delivery_id=delivery_id[:ID_LENGTH],
                            topic=topic[:ID_LENGTH], status=status, detail=detail[:DETAIL_LENGTH], received_at=now)
        session.commit()
    return new


def _seen(app: App, source: str, delivery_id: str) -> bool:
    with Session(app.engine) as session:
        found = session.execute(select(WebhookDelivery.id).where(
            WebhookDelivery.source == source, WebhookDelivery.delivery_id == delivery_id[:ID_LENGTH])).first()
    return found is not None


def _refuse(app: App, source: str, status_code: int, why: str, topic: str = "",
            headers: dict[str, str] | None = None) -> JSONResponse:
    """Record a refused (401/413) or failed (400/500) call under a generated id and say why, briefly."""
    status = "refused" if status_code in (401, 413) else "failed"
    log.warning("%s webhook %s (%d): %s", source, status, status_code, why)
    _record(app, source, f"{status}-{uuid4().hex}", topic, status, why)
    return JSONResponse({"error": why}, status_code, headers=headers)


def _off() -> JSONResponse:
    """A webhook whose secret is not configured does not exist: nothing to record."""
    return JSONResponse({"error": "not found"}, 404)


def _signed(body: bytes, secret: str, signature: str | None) -> bool:
    """base64(HMAC-SHA256(raw body, secret as UTF-8)), the scheme Shopify and AfterShip share."""
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return signature is not None and hmac.compare_digest(expected, signature.strip().encode())


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object; integers stay exact (Python's json never goes through float for them)."""
    try:
        payload = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    return payload if isinstance(payload, dict) else None


def _clause(error: Exception) -> str:
    """An error's first clause: what went wrong, without the payload excerpt that may hold customer data."""
    return str(error).split(";")[0]


def _web(app: App, name: str) -> str:
    return getattr(app.config.web, name, "") if app.config.web is not None else ""


# ── Shopify: "something changed", the feed reads the truth ────────────────────────────────────────────────


def _shopify_account(app: App, shop_domain: str) -> str | None:
    """The shopify account whose base_url host is the delivering shop, else the only shopify account."""
    accounts = [name for name, account in app.config.marketplaces.items()
                if account.type == "shopify" and name in app.marketplaces]
    for name in accounts:
        host = urlsplit(app.config.marketplaces[name].section.str("base_url", "")).hostname
        if host and host == shop_domain.strip().lower():
            return name
    return accounts[0] if len(accounts) == 1 else None


async def run_sync(app: App, account: str, delivery_id: str) -> None:
    """Sync one account after a webhook; a burst of deliveries (Shopify sends several per merchant action)
    causes one more run after the current one, not one run each. Errors are logged and marked on the
    delivery: the scheduled sync tries again anyway."""
    running: dict[str, bool] = app.cache.setdefault(SYNCS, {})
    if account in running:
        running[account] = True
        return
    running[account] = False
    try:
        while True:
            await _sync_once(app, account, delivery_id)
            if not running[account]:
                break
            running[account] = False
    finally:
        del running[account]


async def _sync_once(app: App, account: str, delivery_id: str) -> None:
    try:
        await sync_account(app, account, app.marketplaces[account], app.now(), SyncReport())
    except Exception as exc:  # a background task has nobody to raise to
        log.exception("shopify webhook: sync of %s failed; the scheduled sync will try again", account)
        with Session(app.engine) as session:
            session.execute(update(WebhookDelivery).where(
                WebhookDelivery.source == "shopify", WebhookDelivery.delivery_id == delivery_id,
            ).values(status="failed", detail=f"sync of {account} failed: {_clause(exc)}"[:DETAIL_LENGTH]))
            session.commit()


def receive_shopify(app: App, headers: Headers, body: bytes) -> Response:
    """The sync runs as a Starlette BackgroundTask: after the answer is sent (Shopify wants one within 5 s),
    inside the request's lifetime, so uvicorn's graceful shutdown waits for it instead of cancelling it as it
    would a bare asyncio task, and tests see it finished when the call returns."""
    secret = _web(app, "shopify_secret")
    if not secret:
        return _off()
    topic = headers.get("x-shopify-topic", "")
    if not _signed(body, secret, headers.get("x-shopify-hmac-sha256")):
        return _refuse(app, "shopify", 401, "bad or missing X-Shopify-Hmac-Sha256", topic)
    delivery_id = headers.get("x-shopify-webhook-id", "").strip()
    if not delivery_id:
        return _refuse(app, "shopify", 400, "no X-Shopify-Webhook-Id", topic)
    if _json_object(body) is None:
        return _refuse(app, "shopify", 400, "the body is not a JSON object", topic)
    shop = headers.get("x-shopify-shop-domain", "")
    account = _shopify_account(app, shop) if topic.startswith(SHOPIFY_TOPICS) else None
    if account is None:
        why = f"no shopify account for {shop!r}" if topic.startswith(SHOPIFY_TOPICS) else "topic not used"
        new = _record(app, "shopify", delivery_id, topic, "processed", f"ignored: {why}")
        return _answer(status="processed" if new else "duplicate")
    if not _record(app, "shopify", delivery_id, topic, "processed", f"sync of {account} started"):
        return _answer(status="duplicate")
    return JSONResponse({"status": "processed"}, background=BackgroundTask(run_sync, app, account, delivery_id))


# ── AfterShip: a tracking update, applied exactly as a poll would ─────────────────────────────────────────


def receive_aftership(app: App, headers: Headers, body: bytes) -> Response:
    secret = _web(app, "aftership_secret")
    if not secret:
        return _off()
    if not _signed(body, secret, headers.get("aftership-hmac-sha256")):
        return _refuse(app, "aftership", 401, "bad or missing aftership-hmac-sha256")
    payload = _json_object(body)
    if payload is None:
        return _refuse(app, "aftership", 400, "the body is not a JSON object")
    event_id, topic = payload.get("event_id"), str(payload.get("event", ""))
    if not isinstance(event_id, str) or not event_id.strip():
        return _refuse(app, "aftership", 400, "no event_id", topic)
    try:
        result = parse_webhook(payload)
    except ResponseError as exc:
        return _refuse(app, "aftership", 400, _clause(exc), topic)
    couriers = [name for name, account in app.config.couriers.items() if account.type == "aftership"]
    now = app.now()
    with Session(app.engine) as session:  # the claim, the status changes and their emails commit together
        if not insert_ignore(session, WebhookDelivery, source="aftership", delivery_id=event_id[:ID_LENGTH],
                             topic=topic[:ID_LENGTH], status="processed", received_at=now):
            return _answer(status="duplicate")
        shipments = session.execute(select(Shipment).where(
            Shipment.tracking_number == result.tracking_number, Shipment.courier.in_(couriers))).scalars().all()
        planned = [kind for shipment in shipments if (kind := apply_result(app, session, shipment, result, now))]
        detail = f"{len(shipments)} shipment(s) updated, emails planned: {', '.join(planned) or 'none'}"
        session.execute(update(WebhookDelivery).where(WebhookDelivery.source == "aftership",
                                                      WebhookDelivery.delivery_id == event_id[:ID_LENGTH])
                        .values(detail=detail))
        session.commit()
    return _answer(status="processed", shipments=len(shipments))


# ── Postmark: addresses we must stop emailing ─────────────────────────────────────────────────────────────


def _basic_ok(header: str | None, user: str, password: str) -> bool:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, f"{user}:{password}".encode())


def postmark_key(payload: dict[str, Any]) -> str:
    """MessageID + RecordType, and what tells two records of one message apart: the bounce ID (an int64, kept
    exact), else the record's own time (a second open, a re-subscription after a suppression)."""
    extra = next((payload[k] for k in ("ID", "ChangedAt", "ReceivedAt", "DeliveredAt") if payload.get(k) is not None),
                 "")
    return f"{payload.get('MessageID')}:{payload.get('RecordType')}:{extra}"


def postmark_reason(payload: dict[str, Any]) -> str | None:
    """Why this record means "never email this address again", or None when it is only worth recording."""
    kind = payload.get("RecordType")
    if kind == "Bounce" and payload.get("Type") == "HardBounce":
        return "hard bounce"
    if kind == "Bounce" and payload.get("Inactive") is True:
        return f"inactive at postmark ({payload.get('Type')})"
    if kind == "SpamComplaint":
        return "spam complaint"
    if kind == "SubscriptionChange" and payload.get("SuppressSending") is True:
        reason = str(payload.get("SuppressionReason") or "suppressed")
        return POSTMARK_REASONS.get(reason, reason)
    return None


def receive_postmark(app: App, headers: Headers, body: bytes) -> Response:
    user, password = _web(app, "postmark_user"), _web(app, "postmark_password")
    if not (user and password):
        return _off()
    if not _basic_ok(headers.get("authorization"), user, password):
        return _refuse(app, "postmark", 401, "bad or missing HTTP Basic credentials",
                       headers={"WWW-Authenticate": 'Basic realm="trackmail webhooks"'})
    payload = _json_object(body)
    if payload is None:
        return _refuse(app, "postmark", 400, "the body is not a JSON object")
    topic = str(payload.get("RecordType", ""))
    if not topic or not isinstance(payload.get("MessageID"), str):
        return _refuse(app, "postmark", 400, "no RecordType or MessageID", topic)
    key, reason = postmark_key(payload), postmark_reason(payload)
    address = payload.get("Email") or payload.get("Recipient")
    if reason is not None and not (isinstance(address, str) and "@" in address):
        return _refuse(app, "postmark", 400, f"{topic} without an address", topic)
    if _seen(app, "postmark", key):
        return _answer(status="duplicate")
    detail = "recorded"
    if reason is not None:  # suppress() is idempotent: the effect may come before the claim, never the reverse
        changed = suppress(app.engine, address, SuppressionScope.ALL, reason, "postmark webhook", app.now())
        detail = f"address suppressed: {reason}" if changed else f"address already suppressed ({reason})"
    new = _record(app, "postmark", key, topic, "processed", detail)
    return _answer(status="processed" if new else "duplicate")


# ── Routes ────────────────────────────────────────────────────────────────────────────────────────────────


async def _read_body(request: Request) -> bytes | None:
    """The raw bytes, exactly as signed; None once they pass MAX_BODY."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _endpoint(source: str, secrets: tuple[str, ...], handle: Handler) -> Callable[[Request], Any]:
    """Read the body in the event loop, then verify and touch the database in a worker thread. The webhook is
    off (404, nothing recorded) unless every one of its `secrets` is set in [web]."""

    async def endpoint(request: Request) -> Response:
        app: App = request.app.state.app
        if not all(_web(app, name) for name in secrets):
            return _off()
        body = await _read_body(request)
        if body is None:
            return await run_in_threadpool(_refuse, app, source, 413, "body too large")
        try:
            return await run_in_threadpool(handle, app, request.headers, body)
        except Exception:
            log.exception("%s webhook failed; the provider will retry", source)
            with contextlib.suppress(Exception):  # the database itself may be what failed
                await run_in_threadpool(_refuse, app, source, 500, "internal error, please retry")
            return JSONResponse({"error": "internal error, please retry"}, 500)

    return endpoint


def routes() -> list[Route]:
    return [
        Route("/hooks/shopify", _endpoint("shopify", ("shopify_secret",), receive_shopify), methods=["POST"]),
        Route("/hooks/aftership", _endpoint("aftership", ("aftership_secret",), receive_aftership), methods=["POST"]),
        Route("/hooks/postmark", _endpoint("postmark", ("postmark_user", "postmark_password"), receive_postmark),
              methods=["POST"]),
    ]
