"""Products to suggest in a coupon email, from the merchant's own order history.

First what other customers bought together with what this customer bought (co-purchases), then the shop's
best sellers, then the products listed in config; never something the customer already has.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from tracker.config import ShopSettings
from tracker.models import Order, OrderLine

LIMIT = 3
_COLUMNS = (func.max(OrderLine.title), func.max(OrderLine.unit_price), func.max(OrderLine.image_url),
            func.max(OrderLine.product_url))


def _owned(customer_id: int):
    return (select(OrderLine.product_id).join(Order, Order.id == OrderLine.order_id)
            .where(Order.customer_id == customer_id))


def co_purchased(session: Session, order: Order, limit: int = LIMIT) -> list[tuple]:
    """Products most often in the same orders as this customer's products, by how many orders."""
    theirs = aliased(OrderLine)
    shared_orders = (select(theirs.order_id).where(theirs.product_id.in_(_owned(order.customer_id)),
                                                   theirs.order_id.not_in(select(Order.id).where(
                                                       Order.customer_id == order.customer_id))))
    query = (
        select(OrderLine.product_id, *_COLUMNS, func.count(func.distinct(OrderLine.order_id)))
        .join(Order, Order.id == OrderLine.order_id)
        .where(OrderLine.order_id.in_(shared_orders), OrderLine.product_id != "",
               OrderLine.product_id.not_in(_owned(order.customer_id)), Order.shop == order.shop,
               Order.currency == order.currency)
        .group_by(OrderLine.product_id)
        .order_by(func.count(func.distinct(OrderLine.order_id)).desc(), OrderLine.product_id)
        .limit(limit)
    )
    return list(session.execute(query))


def best_sellers(session: Session, order: Order, limit: int = LIMIT) -> list[tuple]:
    query = (
        select(OrderLine.product_id, *_COLUMNS, func.count())
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.shop == order.shop, OrderLine.product_id != "",
               OrderLine.product_id.not_in(_owned(order.customer_id)), Order.currency == order.currency)
        .group_by(OrderLine.product_id)
        .order_by(func.count().desc(), OrderLine.product_id)
        .limit(limit)
    )
    return list(session.execute(query))


def related_products(session: Session, shop: ShopSettings, order: Order, limit: int = LIMIT) -> list[dict[str, Any]]:
    picked: dict[str, dict[str, Any]] = {}
    for product_id, title, price, image, url, _count in [*co_purchased(session, order, limit),
                                                           *best_sellers(session, order, limit)]:
        picked.setdefault(product_id, {"title": title, "price": price, "image_url": image, "url": url,
                                       "currency": order.currency})
    for product in shop.related_products:
        if len(picked) >= limit:
            break
        picked.setdefault(f"config:{product['url']}", {**product, "currency": order.currency})
    return list(picked.values())[:limit]
