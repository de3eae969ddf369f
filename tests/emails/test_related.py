"""Suggestions in coupon emails: bought together first, then best sellers, then the config's list."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from sqlalchemy import delete
from sqlmodel import Session

from emails.related import related_products
from tests.factories import add_order
from tracker.models import OrderLine


def buy(session: Session, number: str, *products: str, customer=None):
    order = add_order(session, number=number, customer=customer)
    session.execute(delete(OrderLine).where(OrderLine.order_id == order.id))
    for product in products:
        session.add(OrderLine(order_id=order.id, line_key=product, title=product.title(), quantity=1,
                              unit_price=Decimal("10.00"), product_id=product, product_url=f"https://s/{product}"))
    session.flush()
    return order


def titles(items) -> list[str]:
    return [item["title"] for item in items]


def test_products_bought_together_come_first_then_best_sellers_never_what_the_customer_has(app):
    shop = app.config.shops["demo"]
    with Session(app.engine) as session:
        mine = buy(session, "#mine", "scarf")
        for n in range(3):
            buy(session, f"#y{n}", "scarf", "gloves")
        buy(session, "#z", "scarf", "hat")
        for n in range(5):
            buy(session, f"#w{n}", "mug")
        assert titles(related_products(session, shop, mine)) == ["Gloves", "Hat", "Mug"]


def test_a_shop_without_history_suggests_the_products_in_config(app):
    listed = ({"title": "Gift card", "url": "https://s/gift", "image_url": "", "price": Decimal("25.00")},)
    shop = dataclasses.replace(app.config.shops["demo"], related_products=listed)
    with Session(app.engine) as session:
        first = buy(session, "#1", "scarf")
        [item] = related_products(session, shop, first)
    assert item["title"] == "Gift card" and item["currency"] == "EUR"
