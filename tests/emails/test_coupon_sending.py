"""Coupons through the outbox: minted before rendering, never sent without a code, held when the pool is
empty and released once the merchant adds codes."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlmodel import Session

from emails.coupons import PoolCoupons
from emails.outbox import enqueue, release_held
from tests.factories import T0, add_order, add_shipment
from tracker.models import Coupon, Email, EmailState

NOON = T0.replace(hour=12)


def plan_coupons(app, count: int) -> None:
    with Session(app.engine) as session:
        for n in range(count):
            order = add_order(session, number=f"#{n}", email=f"c{n}@example.com")
            enqueue(session, app.config, "resell_coupon", order, now=NOON, shipment=add_shipment(session, order,
                                                                                                 f"SB{n}"))
        session.commit()


def states(app) -> list[EmailState]:
    with Session(app.engine) as session:
        return [e.state for e in session.execute(select(Email).order_by(Email.id)).scalars()]


def test_an_empty_pool_holds_the_email_and_new_codes_release_it(app, tmp_path):
    pool = tmp_path / "codes.txt"
    pool.write_text("code\nSPRING-A1\nSPRING-B2\n")
    app.outbox.coupons = PoolCoupons(pool, app.engine)
    plan_coupons(app, 3)
    report = asyncio.run(app.outbox.send_due(app.engine, NOON))
    assert report.sent == 2 and report.held == 1
    assert states(app) == [EmailState.SENT, EmailState.SENT, EmailState.HELD]
    with Session(app.engine) as session:
        held = session.execute(select(Email).where(Email.state == EmailState.HELD)).scalar_one()
        codes = sorted(c.code for c in session.execute(select(Coupon)).scalars())
    assert "codes.txt" in held.last_error and codes == ["SPRING-A1", "SPRING-B2"]
    pool.write_text("code\nSPRING-A1\nSPRING-B2\nSPRING-C3\n")
    assert release_held(app.engine) == 1
    assert asyncio.run(app.outbox.send_due(app.engine, NOON)).sent == 1
    eml = sorted(app.config.emails.outbox_dir.glob("*resell_coupon.eml"))[-1].read_text()
    assert "SPRING-C3" in eml


def test_each_customer_gets_a_code_of_their_own(app):
    plan_coupons(app, 5)
    asyncio.run(app.outbox.send_due(app.engine, NOON))
    with Session(app.engine) as session:
        codes = [c.code for c in session.execute(select(Coupon)).scalars()]
    assert len(codes) == len(set(codes)) == 5
