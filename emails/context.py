"""The variables a template sees, built from database rows (for sending) or from sample data (for previews).

The names here are the contract with merchants' templates: emails/templates/README.md lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from tracker.config import ShopSettings
from tracker.models import Coupon, Customer, Order, OrderLine, Shipment, TrackingEvent
from tracker.status import LABELS, ShipmentStatus


def shop_context(shop: ShopSettings) -> dict[str, Any]:
    sender_name = shop.sender.split("<")[0].strip().strip('"') or shop.name
    return {
        "name": shop.name,
        "url": shop.url,
        "logo_url": shop.logo_url,
        "primary_color": shop.primary_color,
        "accent_color": shop.accent_color,
        "text_color": shop.text_color,
        "background_color": shop.background_color,
        "font_family": shop.font_family,
        "support_email": shop.support_email,
        "footer": shop.footer,
        "sender_name": sender_name,
        "social": [{"name": network.title(), "url": url} for network, url in shop.social],
    }


def _event(event: TrackingEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "description": event.description,
        "location": event.location,
        "status_label": LABELS[event.status],
    }


def shipment_context(shipment: Shipment, courier_label: str, events: Sequence[TrackingEvent]) -> dict[str, Any]:
    newest_first = sorted(events, key=lambda e: e.at, reverse=True)
    return {
        "tracking_number": shipment.tracking_number,
        "courier_name": courier_label,
        "tracking_url": shipment.tracking_url,
        "status": str(shipment.status),
        "status_label": LABELS[shipment.status],
        "estimated_delivery": shipment.estimated_delivery,
        "delivered_at": shipment.delivered_at,
        "last_event": _event(newest_first[0]) if newest_first else None,
        "events": [_event(e) for e in newest_first],
    }


def order_context(order: Order, lines: Sequence[OrderLine]) -> dict[str, Any]:
    return {
        "number": order.number,
        "created_at": order.created_at,
        "currency": order.currency,
        "total": order.total,
        "lines": [
            {
                "title": line.title,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "total": line.unit_price * line.quantity,
                "image_url": line.image_url,
                "product_url": line.product_url,
            }
            for line in lines
        ],
    }


def customer_context(customer: Customer) -> dict[str, Any]:
    first = customer.name.split()[0] if customer.name.split() else ""
    return {"name": customer.name, "first_name": first, "email": customer.email}


def feedback_context(shop: ShopSettings, order: Order) -> dict[str, Any]:
    base = shop.review_url or shop.url

    def link(**params: Any) -> str:
        query = urlencode({"order": order.number, **params})
        return f"{base}{'&' if '?' in base else '?'}{query}"

    return {"url": link(), "ratings": [{"stars": n, "url": link(rating=n)} for n in range(1, 6)]}


def coupon_context(shop: ShopSettings, coupon: Coupon) -> dict[str, Any]:
    return {"code": coupon.code, "discount": coupon.discount, "expires_at": coupon.expires_at, "url": shop.url}


def assemble(
    shop: ShopSettings,
    customer: dict[str, Any],
    order: dict[str, Any],
    shipment: dict[str, Any] | None = None,
    feedback: dict[str, Any] | None = None,
    coupon: dict[str, Any] | None = None,
    related_products: list[dict[str, Any]] | None = None,
    unsubscribe_url: str | None = None,
) -> dict[str, Any]:
    return {
        "shop": shop_context(shop),
        "customer": customer,
        "order": order,
        "shipment": shipment,
        "feedback": feedback,
        "coupon": coupon,
        "related_products": related_products or [],
        "unsubscribe_url": unsubscribe_url,
    }


SAMPLE_STATUS = {
    "shipment_confirmation": ShipmentStatus.INFO_RECEIVED,
    "in_transit": ShipmentStatus.IN_TRANSIT,
    "out_for_delivery": ShipmentStatus.OUT_FOR_DELIVERY,
    "failed_attempt": ShipmentStatus.FAILED_ATTEMPT,
    "available_for_pickup": ShipmentStatus.AVAILABLE_FOR_PICKUP,
    "exception": ShipmentStatus.EXCEPTION,
    "returned": ShipmentStatus.RETURNED,
    "delivered": ShipmentStatus.DELIVERED,
    "feedback_request": ShipmentStatus.DELIVERED,
    "resell_coupon": ShipmentStatus.DELIVERED,
    "coupon_reminder": ShipmentStatus.DELIVERED,
    "delayed": ShipmentStatus.IN_TRANSIT,
}


def sample_context(kind: str, shop: ShopSettings, now: datetime | None = None) -> dict[str, Any]:
    """Realistic data for `trackmail preview` and `trackmail check`: every variable a kind may use is set."""
    now = now or datetime(2026, 11, 23, 14, 5, tzinfo=UTC)
    placed = now - timedelta(days=3)
    order = Order(marketplace="sample", shop=shop.key, external_id="1", number="#1042", customer_id=1,
                  created_at=placed, updated_at=placed, currency="EUR", total=Decimal("84.80"))
    lines = [
        OrderLine(order_id=1, line_key="1", title="Merino wool beanie", quantity=2, unit_price=Decimal("24.90"),
                  sku="BEANIE-GRY", image_url="https://shop.example.com/images/beanie.jpg",
                  product_url="https://shop.example.com/products/beanie"),
        OrderLine(order_id=1, line_key="2", title="Waxed canvas tote", quantity=1, unit_price=Decimal("35.00"),
                  sku="TOTE-OLV", image_url="https://shop.example.com/images/tote.jpg",
                  product_url="https://shop.example.com/products/tote"),
    ]
    customer = Customer(marketplace="sample", external_id="1", email="ada@example.com", name="Ada Lovelace")
    context = assemble(shop, customer_context(customer), order_context(order, lines))
    status = SAMPLE_STATUS.get(kind)
    if status is not None:
        shipment = Shipment(order_id=1, courier="sandbox", courier_name="Sandbox Express",
                            tracking_number="SB2901369252465DE", shipped_at=placed + timedelta(hours=6),
                            first_seen_at=placed, status=status, estimated_delivery=date(2026, 11, 25),
                            tracking_url="https://track.example.com/sandbox/SB2901369252465DE",
                            delivered_at=now if status is ShipmentStatus.DELIVERED else None)
        events = [
            TrackingEvent(shipment_id=1, at=placed + timedelta(hours=7), status=ShipmentStatus.INFO_RECEIVED,
                          code="LC", description="Shipping label created", location="Leipzig, DE",
                          recorded_at=now),
            TrackingEvent(shipment_id=1, at=now - timedelta(hours=1), status=status, code="XX",
                          description=f"{LABELS[status]} (sample event)", location="Lyon, FR", recorded_at=now),
        ]
        context["shipment"] = shipment_context(shipment, "Sandbox Express", events)
    if kind == "feedback_request":
        context["feedback"] = feedback_context(shop, order)
        context["unsubscribe_url"] = f"{shop.public_url or shop.url}/unsubscribe/sample-token"
    if kind in ("resell_coupon", "coupon_reminder"):
        coupon = Coupon(code="THANKS-7KQ2-M9XD", email_id=1, customer_id=1, discount="10%", created_at=now,
                        expires_at=now + timedelta(days=30))
        context["coupon"] = coupon_context(shop, coupon)
        context["related_products"] = [
            {"title": "Cashmere scarf", "url": "https://shop.example.com/products/scarf",
             "image_url": "https://shop.example.com/images/scarf.jpg", "price": Decimal("49.00"), "currency": "EUR"},
        ]
        context["unsubscribe_url"] = f"{shop.public_url or shop.url}/unsubscribe/sample-token"
    return context
