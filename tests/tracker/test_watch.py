"""Stuck detection and the digest's candidates, read a batch at a time (bench/memory.py: a million parcels)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlmodel import Session

from tests.factories import T0, add_order, add_shipment
from tracker import watch
from tracker.estimates import History
from tracker.models import Email, Shipment
from tracker.status import ShipmentStatus as S


def live(session: Session, count: int) -> list[Shipment]:
    order = add_order(session)
    return [add_shipment(session, order, f"SB{i:04d}", status=S.IN_TRANSIT, last_event_at=T0 - timedelta(hours=1),
                         next_poll_at=T0 + timedelta(hours=1)) for i in range(count)]


def test_every_live_parcel_is_estimated_and_a_stuck_one_flagged_once_across_batches(app, monkeypatch):
    monkeypatch.setattr(watch, "BATCH", 3)
    with Session(app.engine) as session:
        parcels = live(session, 7)
        parcels[4].last_event_at = T0 - timedelta(days=5)  # the default in-transit limit is 3 days
        session.add(parcels[4])
        session.commit()
        stuck_id = parcels[4].id
    report = watch.WatchReport()
    with Session(app.engine) as session:
        watch.flag_delays(app, session, History(), T0, report)
    assert (report.estimated, report.delayed) == (7, 1)
    with Session(app.engine) as session:
        rows = session.execute(select(Shipment.id, Shipment.estimated_delivery, Shipment.delayed_at)).all()
        assert all(row.estimated_delivery is not None for row in rows)
        assert [row.id for row in rows if row.delayed_at is not None] == [stuck_id]
        assert session.execute(select(Email.shipment_id).where(Email.kind == "delayed")).scalars().all() == [stuck_id]
    again = watch.WatchReport()
    with Session(app.engine) as session:
        watch.flag_delays(app, session, History(), T0, again)
    assert (again.estimated, again.delayed) == (0, 0)


def test_the_digest_reads_only_parcels_that_need_a_person(app):
    with Session(app.engine) as session:
        quiet, held, late, done = live(session, 4)
        held.status = S.EXCEPTION
        late.delayed_at, late.delay_reason = T0, "no courier news for 5 days"
        done.status, done.final_at = S.DELIVERED, T0
        session.add_all([held, late, done])
        session.commit()
        problems = list(watch._problems(session, "demo", T0 - timedelta(days=1)))
    assert sorted((p.tracking_number, p.problem) for p in problems) == [("SB0001", "exception"), ("SB0002", "delayed")]
    assert {p.detail for p in problems if p.problem == "delayed"} == {"no courier news for 5 days"}


def test_a_watch_run_that_fails_gives_its_hour_back_so_the_next_tick_tries_again(app, monkeypatch):
    calls = []

    def failing(*_args):
        calls.append("failed")
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(watch, "flag_delays", failing)
    with pytest.raises(RuntimeError):
        asyncio.run(watch.watch_shipments(app, T0))
    monkeypatch.setattr(watch, "flag_delays", lambda *_args: calls.append("ran"))
    asyncio.run(watch.watch_shipments(app, T0 + timedelta(minutes=5)))  # not an hour later
    assert calls == ["failed", "ran"]
