"""Row factories for tests that need a few database rows without running the feeds."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session

from tracker.models import Customer, Order, OrderLine, Shipment

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def add_order(session: Session, *, number: str = "#1001", consent: bool = True, created: datetime = T0,
              email: str = "ada@example.com", notify: bool = True, shop: str = "demo",
              customer: Customer | None = None) -> Order:
    if customer is None:
        customer = Customer(marketplace="demo-shop", external_id=f"c-{number}", email=email, name="Ada Lovelace",
                            marketing_consent=consent)
        session.add(customer)
        session.flush()
    order = Order(marketplace="demo-shop", shop=shop, external_id=f"o-{number}", number=number,
                  customer_id=customer.id, created_at=created, updated_at=created, currency="EUR",
                  total=Decimal("49.80"), notify=notify)
    session.add(order)
    session.flush()
    session.add(OrderLine(order_id=order.id, line_key="1", title="Merino beanie", quantity=2,
                          unit_price=Decimal("24.90"), product_id="p-beanie"))
    session.flush()
    return order


def add_shipment(session: Session, order: Order, number: str = "SB0001", **fields) -> Shipment:
    shipment = Shipment(order_id=order.id, courier="sandbox", courier_name="sandbox", tracking_number=number,
                        shipped_at=order.created_at, first_seen_at=order.created_at,
                        tracking_url=f"https://track.example.com/sandbox/{number}", **fields)
    session.add(shipment)
    session.flush()
    return shipment
