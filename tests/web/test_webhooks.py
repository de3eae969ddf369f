"""Incoming webhooks: Shopify, AfterShip and Postmark deliveries are authenticated before they are read,
processed once per delivery id, and every refusal is recorded with its reason.

The bodies are the providers' published samples (tests/fixtures/webhooks, byte for byte); no provider publishes a
body with its secret, so each test signs the sample with its own secret."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import Session
from starlette.testclient import TestClient

from carriers.base import FeedBatch, TransientError
from tests.factories import add_order, add_shipment
from tracker.clock import ManualClock
from tracker.config import AccountSettings, WebSettings
from tracker.models import Email, Shipment, Suppression, SuppressionScope, TrackingEvent, WebhookDelivery
from tracker.settings import Section
from tracker.status import ShipmentStatus
from tracker.web import webhooks
from tracker.web.app import create_app

FIXTURES = Path(__file__).parent.parent / "fixtures" / "webhooks"
SHOPIFY_SECRET = "shpss_0123456789abcdef"
AFTERSHIP_SECRET = "c2VjcmV0LWtleQ=="  # looks like base64 on purpose: the key is this text, not its decoding
POSTMARK = ("postmark-hooks", "s3cret-pass")
WEB = WebSettings(public_url="http://shop.test", shopify_secret=SHOPIFY_SECRET, aftership_secret=AFTERSHIP_SECRET,
                  postmark_user=POSTMARK[0], postmark_password=POSTMARK[1])
SNOWDEVIL = "snowdevil.myshopify.com"  # the shop of Shopify's published request head
AS_NUMBER = "0000000000000000"  # msg.tracking_number of AfterShip's published webhook


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def account(name: str, kind: str, **data) -> AccountSettings:
    return AccountSettings(name, kind, "demo", Section(Path("config.toml"), f"accounts.{name}", {"type": kind, **data}))


class RecordingFeed:
    """A Marketplace that remembers when it was asked for changes and has none."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name, self.error, self.calls = name, error, []

    async def changes(self, since: datetime) -> FeedBatch:
        self.calls.append(since)
        if self.error is not None:
            raise self.error
        return FeedBatch(orders=(), cursor=since)

    async def aclose(self) -> None:
        pass


def configure(app, web: WebSettings | None = WEB) -> None:
    """Two Shopify shops, an AfterShip courier account beside the bundled sandbox one, and [web] secrets."""
    marketplaces = {**app.config.marketplaces,
                    "snowdevil": account("snowdevil", "shopify", base_url=f"https://{SNOWDEVIL}"),
                    "other": account("other", "shopify", base_url="https://other-shop.myshopify.com")}
    couriers = {**app.config.couriers, "as-main": account("as-main", "aftership", api_key="k")}
    app.config = app.outbox.config = dataclasses.replace(app.config, web=web, marketplaces=marketplaces,
                                                         couriers=couriers)
    app.marketplaces.update(snowdevil=RecordingFeed("snowdevil"), other=RecordingFeed("other"))


@pytest.fixture
def client(app):
    configure(app)
    with TestClient(create_app(app)) as test_client:
        yield test_client


def deliveries(app, source: str) -> list[WebhookDelivery]:
    with Session(app.engine) as session:
        return list(session.execute(select(WebhookDelivery).where(WebhookDelivery.source == source)
                                    .order_by(WebhookDelivery.id)).scalars())


def count(app, model) -> int:
    with Session(app.engine) as session:
        return session.execute(select(func.count()).select_from(model)).scalar_one()


# ── Shopify ───────────────────────────────────────────────────────────────────────────────────────────────


def shopify_headers(body: bytes, topic: str = "fulfillments/create", secret: str = SHOPIFY_SECRET,
                    shop: str = SNOWDEVIL, webhook_id: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043") -> dict[str, str]:
    """Shopify's published request head, with our topic, shop, delivery id and signature."""
    lines = fixture("shopify-webhook-request-headers-example.txt").decode().splitlines()[1:]
    headers = dict(line.split(": ", 1) for line in lines if line.startswith("X-Shopify-"))
    headers.update({"X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": shop, "X-Shopify-Webhook-Id": webhook_id,
                    "X-Shopify-Hmac-Sha256": sign(body, secret), "Content-Type": "application/json"})
    return headers


def test_a_signed_fulfillment_webhook_syncs_the_shop_it_came_from(app, client):
    body = fixture("shopify-webhook-fulfillments-create.json")
    answer = client.post("/hooks/shopify", content=body, headers=shopify_headers(body))
    assert answer.status_code == 200
    assert len(app.marketplaces["snowdevil"].calls) == 1 and app.marketplaces["other"].calls == []
    (delivery,) = deliveries(app, "shopify")
    assert (delivery.delivery_id, delivery.topic, delivery.status) == (
        "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", "fulfillments/create", "processed")


def test_an_order_webhook_syncs_too_and_header_names_may_arrive_lower_case(app, client):
    body = b'{"id": 820982911946154508}'
    headers = {k.lower(): v for k, v in shopify_headers(body, topic="orders/updated", shop="Other-Shop.myshopify.com")
               .items()}
    assert client.post("/hooks/shopify", content=body, headers=headers).status_code == 200
    assert len(app.marketplaces["other"].calls) == 1 and app.marketplaces["snowdevil"].calls == []


@pytest.mark.parametrize("signature", ["wrong-secret", "tampered", None])
def test_a_forged_shopify_webhook_is_refused_and_recorded(app, client, signature):
    body = fixture("shopify-webhook-fulfillments-create.json")
    headers = shopify_headers(body, secret="not-the-secret" if signature == "wrong-secret" else SHOPIFY_SECRET)
    if signature is None:
        del headers["X-Shopify-Hmac-Sha256"]
    answer = client.post("/hooks/shopify", content=body + b" " if signature == "tampered" else body, headers=headers)
    assert answer.status_code == 401 and "X-Shopify-Hmac-Sha256" in answer.json()["error"]
    assert app.marketplaces["snowdevil"].calls == []
    (delivery,) = deliveries(app, "shopify")
    assert delivery.status == "refused" and "X-Shopify-Hmac-Sha256" in delivery.detail
    assert delivery.delivery_id != headers["X-Shopify-Webhook-Id"]  # a retry with a good signature still counts


def test_a_replayed_shopify_delivery_is_answered_but_syncs_once(app, client):
    body = fixture("shopify-webhook-fulfillments-create.json")
    first = client.post("/hooks/shopify", content=body, headers=shopify_headers(body))
    again = client.post("/hooks/shopify", content=body, headers=shopify_headers(body))
    assert (first.status_code, again.status_code) == (200, 200) and again.json() == {"status": "duplicate"}
    assert len(app.marketplaces["snowdevil"].calls) == 1 and len(deliveries(app, "shopify")) == 1


def test_a_malformed_shopify_body_with_a_good_signature_is_a_recorded_failure(app, client):
    body = b'{"id": 123456, "tracking_number": '
    answer = client.post("/hooks/shopify", content=body, headers=shopify_headers(body))
    assert answer.status_code == 400 and answer.json()["error"]
    assert app.marketplaces["snowdevil"].calls == []
    assert [d.status for d in deliveries(app, "shopify")] == ["failed"]


def test_a_topic_trackmail_does_not_use_is_recorded_and_ignored(app, client):
    body = b'{"id": 632910392, "title": "IPod Nano - 8GB"}'
    answer = client.post("/hooks/shopify", content=body, headers=shopify_headers(body, topic="products/update"))
    assert answer.status_code == 200
    assert app.marketplaces["snowdevil"].calls == [] and app.marketplaces["other"].calls == []
    (delivery,) = deliveries(app, "shopify")
    assert delivery.status == "processed" and delivery.detail.startswith("ignored")


def test_the_only_shopify_account_is_synced_whatever_domain_the_shop_uses(app, client):
    del app.marketplaces["other"]  # not built: only snowdevil remains a shopify account
    body = fixture("shopify-webhook-fulfillments-create.json")
    client.post("/hooks/shopify", content=body, headers=shopify_headers(body, shop="shop.example.com"))
    assert len(app.marketplaces["snowdevil"].calls) == 1


def test_a_failed_sync_still_answers_200_and_marks_the_delivery(app, client):
    app.marketplaces["snowdevil"] = RecordingFeed("snowdevil", TransientError("timed out", source="snowdevil"))
    body = fixture("shopify-webhook-fulfillments-create.json")
    assert client.post("/hooks/shopify", content=body, headers=shopify_headers(body)).status_code == 200
    (delivery,) = deliveries(app, "shopify")
    assert delivery.status == "failed" and "timed out" in delivery.detail


def test_a_burst_of_deliveries_during_a_sync_causes_one_more_sync_not_one_each(app):
    configure(app)
    started, release = asyncio.Event(), asyncio.Event()
    feed = app.marketplaces["snowdevil"]
    changes = feed.changes

    async def slow_changes(since: datetime) -> FeedBatch:
        started.set()
        await release.wait()
        return await changes(since)

    feed.changes = slow_changes

    async def burst() -> None:
        first = asyncio.create_task(webhooks.run_sync(app, "snowdevil", "d1"))
        await started.wait()
        for delivery_id in ("d2", "d3", "d4"):
            # returns at once while a sync runs (the timeout turns a regression into a failure, not a hang)
            await asyncio.wait_for(webhooks.run_sync(app, "snowdevil", delivery_id), timeout=1)
        release.set()
        await first

    asyncio.run(burst())
    assert len(feed.calls) == 2 and app.cache[webhooks.SYNCS] == {}


# ── AfterShip ─────────────────────────────────────────────────────────────────────────────────────────────


@pytest.fixture
def parcel(app):
    """An order shipped the day before AfterShip's published update (2021-01-14 00:52), the clock just after it:
    an AfterShip parcel with that number, and a parcel of another courier that happens to share it."""
    app.clock = ManualClock(datetime(2021, 1, 14, 6, 0, tzinfo=UTC))
    with Session(app.engine) as session:
        order = add_order(session, created=datetime(2021, 1, 13, 9, 0, tzinfo=UTC))
        ours = add_shipment(session, order, AS_NUMBER)
        ours.courier, ours.courier_name = "as-main", "USPS"
        theirs = add_shipment(session, add_order(session, number="#1002", created=order.created_at), AS_NUMBER)
        session.commit()
        return ours.id, theirs.id


def aftership_post(client, body: bytes, secret: str = AFTERSHIP_SECRET):
    headers = dict(line.split(": ", 1) for line in fixture("aftership-webhook-request-headers.txt").decode()
                   .splitlines())
    headers["Aftership-Hmac-Sha256"] = sign(body, secret)
    return client.post("/hooks/aftership", content=body, headers=headers)


def shipment(app, shipment_id: int) -> Shipment:
    with Session(app.engine) as session:
        return session.get_one(Shipment, shipment_id)


def emails(app) -> list[tuple[str, int]]:
    with Session(app.engine) as session:
        return [tuple(row) for row in session.execute(select(Email.kind, Email.shipment_id))]


def test_a_published_tracking_update_moves_the_aftership_parcel_and_plans_its_email(app, client, parcel):
    ours, theirs = parcel
    answer = aftership_post(client, fixture("aftership-webhook-tracking-update-trimmed.json"))
    assert answer.status_code == 200 and answer.json()["shipments"] == 1
    moved = shipment(app, ours)
    assert (moved.status, moved.status_code) == (ShipmentStatus.IN_TRANSIT, "InTransit_001")
    assert moved.last_event_at == datetime(2021, 1, 14, 0, 52, tzinfo=UTC)
    assert emails(app) == [("in_transit", ours)]
    assert shipment(app, theirs).status is ShipmentStatus.PENDING  # another courier's parcel is not AfterShip's
    (delivery,) = deliveries(app, "aftership")
    assert (delivery.delivery_id, delivery.topic, delivery.status) == (
        "94dadd60-ed26-46d0-aa52-3ced925a50ff", "tracking_update", "processed")
    assert "in_transit" in delivery.detail


def test_a_replayed_aftership_event_changes_nothing(app, client, parcel):
    body = fixture("aftership-webhook-tracking-update-trimmed.json")
    aftership_post(client, body)
    before = (count(app, TrackingEvent), emails(app))
    again = aftership_post(client, body)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert (count(app, TrackingEvent), emails(app)) == before
    assert len(deliveries(app, "aftership")) == 1


def test_the_same_update_under_a_new_event_id_plans_no_second_email(app, client, parcel):
    """AfterShip may send the tracking again in another event: the state machine dedupes its checkpoints."""
    payload = json.loads(fixture("aftership-webhook-tracking-update-trimmed.json"))
    aftership_post(client, fixture("aftership-webhook-tracking-update-trimmed.json"))
    payload["event_id"] = "5b0e9a1c-0c8e-4a53-9d0e-1f6d4f1bb0a2"
    assert aftership_post(client, json.dumps(payload).encode()).status_code == 200
    assert emails(app) == [("in_transit", parcel[0])] and count(app, TrackingEvent) == 1


def test_a_failure_while_applying_rolls_back_and_the_providers_retry_is_processed(app, client, parcel, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    body = fixture("aftership-webhook-tracking-update-trimmed.json")
    with monkeypatch.context() as patch:
        patch.setattr(webhooks, "apply_result", broken)
        answer = aftership_post(client, body)
    assert answer.status_code == 500 and answer.json()["error"]
    assert [d.status for d in deliveries(app, "aftership")] == ["failed"]
    assert aftership_post(client, body).json() == {"status": "processed", "shipments": 1}
    assert emails(app) == [("in_transit", parcel[0])]


@pytest.mark.parametrize("secret", ["another-secret", base64.b64decode(AFTERSHIP_SECRET).decode()])
def test_a_forged_aftership_webhook_is_refused_and_changes_nothing(app, client, parcel, secret):
    answer = aftership_post(client, fixture("aftership-webhook-tracking-update-trimmed.json"), secret)
    assert answer.status_code == 401 and "aftership-hmac-sha256" in answer.json()["error"]
    assert shipment(app, parcel[0]).status is ShipmentStatus.PENDING and emails(app) == []
    assert [d.status for d in deliveries(app, "aftership")] == ["refused"]


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"event": "tracking_update", "msg": {}}',
                                  b'{"event_id": "e1", "msg": {"tracking_number": "1", "checkpoints": "none"}}'])
def test_a_malformed_aftership_body_with_a_good_signature_is_a_recorded_failure(app, client, parcel, body):
    answer = aftership_post(client, body)
    assert answer.status_code == 400 and answer.json()["error"]
    assert [d.status for d in deliveries(app, "aftership")] == ["failed"]
    assert shipment(app, parcel[0]).status is ShipmentStatus.PENDING


# ── Postmark ──────────────────────────────────────────────────────────────────────────────────────────────


def suppressions(app) -> list[tuple[str, SuppressionScope, str]]:
    with Session(app.engine) as session:
        return [(s.email, s.scope, s.reason) for s in session.execute(select(Suppression)).scalars()]


@pytest.mark.parametrize(("sample", "address", "reason"), [
    ("postmark-webhook-bounce.json", "john@example.com", "hard bounce"),
    ("postmark-webhook-spam-complaint.json", "john@example.com", "spam complaint"),
    ("postmark-webhook-subscription-change.json", "bounced-address@wildbit.com", "hard bounce"),
])
def test_published_postmark_records_stop_all_email_to_the_address(app, client, sample, address, reason):
    answer = client.post("/hooks/postmark", content=fixture(sample), auth=POSTMARK)
    assert answer.status_code == 200
    assert suppressions(app) == [(address, SuppressionScope.ALL, reason)]


def test_a_bounce_id_beyond_2_53_stays_exact_in_the_delivery_key(app, client):
    client.post("/hooks/postmark", content=fixture("postmark-webhook-bounce.json"), auth=POSTMARK)
    (delivery,) = deliveries(app, "postmark")
    assert delivery.delivery_id == "883953f4-6105-42a2-a16a-77a8eac79483:Bounce:4323372036854775807"
    assert delivery.topic == "Bounce" and delivery.status == "processed"


def test_a_replayed_postmark_record_is_processed_once(app, client):
    body = fixture("postmark-webhook-bounce.json")
    first = client.post("/hooks/postmark", content=body, auth=POSTMARK)
    again = client.post("/hooks/postmark", content=body, auth=POSTMARK)
    assert first.json() == {"status": "processed"} and again.json() == {"status": "duplicate"}
    assert len(deliveries(app, "postmark")) == 1 and len(suppressions(app)) == 1


def test_a_late_retry_does_not_suppress_an_address_the_operator_reactivated(app, client):
    body = fixture("postmark-webhook-bounce.json")
    client.post("/hooks/postmark", content=body, auth=POSTMARK)
    with Session(app.engine) as session:
        session.delete(session.execute(select(Suppression)).scalar_one())
        session.commit()
    assert client.post("/hooks/postmark", content=body, auth=POSTMARK).json() == {"status": "duplicate"}
    assert suppressions(app) == []


@pytest.mark.parametrize("auth", [("postmark-hooks", "wrong"), ("someone", POSTMARK[1]), None])
def test_wrong_or_missing_postmark_credentials_are_refused_and_recorded(app, client, auth):
    answer = client.post("/hooks/postmark", content=fixture("postmark-webhook-bounce.json"), auth=auth)
    assert answer.status_code == 401 and answer.json()["error"]
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert suppressions(app) == []
    assert [d.status for d in deliveries(app, "postmark")] == ["refused"]


@pytest.mark.parametrize("body", [b"<html>", b'"Bounce"', b'{"RecordType": "Bounce", "Type": "HardBounce"}',
                                  b'{"RecordType": "Bounce", "MessageID": "m1", "Type": "HardBounce"}'])
def test_a_malformed_postmark_record_is_a_recorded_failure(app, client, body):
    answer = client.post("/hooks/postmark", content=body, auth=POSTMARK)
    assert answer.status_code == 400 and answer.json()["error"]
    assert suppressions(app) == [] and [d.status for d in deliveries(app, "postmark")] == ["failed"]


@pytest.mark.parametrize("record", [
    {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "outbound", "Recipient": "john@example.com",
     "DeliveredAt": "2019-11-05T16:33:54.9070259Z", "Details": "Test delivery webhook details"},
    {"RecordType": "Open", "FirstOpen": True, "Recipient": "john@example.com",
     "ReceivedAt": "2019-11-05T16:33:54.9070259Z"},
    {"RecordType": "Bounce", "ID": 42, "Type": "SoftBounce", "TypeCode": 4096, "Email": "john@example.com",
     "Inactive": False},
    {"RecordType": "SubscriptionChange", "Recipient": "john@example.com", "SuppressSending": False,
     "ChangedAt": "2020-02-01T10:53:34.416071Z"},
])
def test_deliveries_opens_soft_bounces_and_reactivations_are_recorded_only(app, client, record):
    body = json.dumps({**record, "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483"}).encode()
    assert client.post("/hooks/postmark", content=body, auth=POSTMARK).status_code == 200
    assert suppressions(app) == []
    assert [(d.topic, d.status) for d in deliveries(app, "postmark")] == [(record["RecordType"], "processed")]


def test_a_soft_bounce_postmark_made_inactive_stops_all_email(app, client):
    payload = json.loads(fixture("postmark-webhook-bounce.json"))
    payload.update(Type="SoftBounce", TypeCode=4096)
    client.post("/hooks/postmark", content=json.dumps(payload).encode(), auth=POSTMARK)
    assert suppressions(app) == [("john@example.com", SuppressionScope.ALL, "inactive at postmark (SoftBounce)")]


# ── Every webhook ─────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("path", ["/hooks/shopify", "/hooks/aftership", "/hooks/postmark"])
def test_a_webhook_without_its_secret_is_off(app, path):
    configure(app, WebSettings(public_url="http://shop.test"))
    with TestClient(create_app(app)) as client:
        answer = client.post(path, content=b"{}", auth=POSTMARK)
    assert answer.status_code == 404 and answer.json() == {"error": "not found"}
    assert count(app, WebhookDelivery) == 0


def test_a_body_too_large_is_refused_before_it_is_read_whole(app, client, monkeypatch):
    monkeypatch.setattr(webhooks, "MAX_BODY", 1000)
    body = fixture("shopify-webhook-fulfillments-create.json")
    answer = client.post("/hooks/shopify", content=body, headers=shopify_headers(body))
    assert answer.status_code == 413 and app.marketplaces["snowdevil"].calls == []
    assert [d.status for d in deliveries(app, "shopify")] == ["refused"]
