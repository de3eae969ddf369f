"""End to end on the embedded default: `simulate` drives every job and every email kind goes out, once."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from emails.kinds import EMAIL_KINDS
from tests.factories import REPO
from tests.outbox_check import duplicates, read_outbox
from tests.postgres import BACKENDS, database_for
from tracker.cli import main
from tracker.db import open_db
from tracker.models import Email, EmailState, Order, OrderState, Shipment
from tracker.simulate import simulate
from tracker.status import ShipmentStatus


@pytest.fixture(scope="module", params=BACKENDS)
def thirty_days(request, tmp_path_factory):
    """One 30-day simulation of the bundled config per database, shared by the assertions below."""
    from tracker.config import load

    folder = tmp_path_factory.mktemp("sim")
    config = load(REPO / "config.toml")
    with database_for(request.param, folder, "sim_") as url:
        summary = asyncio.run(simulate(config, 30, database_url=url, outbox_dir=folder / "outbox"))
        yield config, url, folder / "outbox", summary


def test_thirty_days_produce_every_email_kind(thirty_days):
    _config, _url, outbox, summary = thirty_days
    kinds = {mail.kind for mail in read_outbox(outbox)}
    assert kinds == set(EMAIL_KINDS)
    assert set(summary.emails_by_kind) == set(EMAIL_KINDS)
    assert summary.orders > 250  # ~12 a day


def test_no_customer_gets_the_same_email_twice(thirty_days):
    _config, _url, outbox, _summary = thirty_days
    mails = read_outbox(outbox)
    assert duplicates(mails) == {}
    assert all(mail.ref.startswith(mail.kind + ":") for mail in mails)


def test_every_sent_row_has_its_message_and_every_message_its_row(thirty_days):
    _config, url, outbox, summary = thirty_days
    engine = open_db(url)
    with Session(engine) as session:
        sent_refs = set(session.execute(select(Email.idempotency_key).where(Email.state == EmailState.SENT)).scalars())
    engine.dispose()
    assert sent_refs == {mail.ref for mail in read_outbox(outbox)}
    assert summary.sent_this_run == len(sent_refs)


def test_each_delivered_parcel_of_a_live_order_got_its_delivered_email(thirty_days):
    _config, url, _outbox, _summary = thirty_days
    engine = open_db(url)
    with Session(engine) as session:
        delivered = set(session.execute(
            select(Shipment.id).join(Order, Order.id == Shipment.order_id)
            .where(Shipment.status == ShipmentStatus.DELIVERED, Order.state == OrderState.OPEN, Shipment.notify)
        ).scalars())
        emailed = set(session.execute(
            select(Email.shipment_id).where(Email.kind == "delivered", Email.state == EmailState.SENT)
        ).scalars())
    engine.dispose()
    assert delivered and delivered == emailed


def test_running_again_on_the_same_database_sends_nothing_new(thirty_days):
    config, url, outbox, summary = thirty_days
    files_before = sorted(p.name for p in outbox.glob("*.eml"))
    again = asyncio.run(simulate(config, 30, database_url=url, outbox_dir=outbox))
    assert again.sent_this_run == 0
    assert again.emails_by_kind == summary.emails_by_kind
    assert sorted(p.name for p in outbox.glob("*.eml")) == files_before


def test_a_seed_always_tells_the_same_story_and_another_seed_another(tmp_path):
    def run(seed, name):
        assert main(["--config", str(REPO / "config.toml"), "simulate", "--days", "4", "--seed", str(seed),
                     "--database", str(tmp_path / f"{name}.db"), "--outbox", str(tmp_path / name), "--json"]) == 0

    outputs = []
    for seed, name in ((3, "a"), (3, "b"), (4, "c")):
        run(seed, name)
        outputs.append(sorted((m.ref, m.to, m.subject) for m in read_outbox(tmp_path / name)))
    assert outputs[0] == outputs[1]
    assert outputs[0] != outputs[2]


def test_simulate_prints_a_summary_for_people_and_json_for_machines(tmp_path, capsys):
    args = ["--config", str(REPO / "config.toml"), "simulate", "--days", "3", "--database",
            str(tmp_path / "s.db"), "--outbox", str(tmp_path / "out")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Orders:" in text and "Shipments by status:" in text and "order_confirmation" in text
    assert main(args + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["sent_this_run"] == 0 and data["orders"] > 20
    engine = open_db(f"sqlite:///{tmp_path / 's.db'}")
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(Order)).scalar_one() == data["orders"]
    engine.dispose()


def test_per_customer_shows_each_customers_emails_in_order_with_their_fate(tmp_path, capsys):
    args = ["--config", str(REPO / "config.toml"), "simulate", "--days", "25", "--database",
            str(tmp_path / "p.db"), "--outbox", str(tmp_path / "out")]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args + ["--per-customer", "--json"]) == 0
    customers = json.loads(capsys.readouterr().out)
    assert len(customers) > 100
    for emails in customers.values():
        times = [e["at"] for e in emails]
        assert times == sorted(times)
        for e in emails:
            assert e["state"] == "sent" or e["reason"] or e["state"] == "queued"
    flows = [e for emails in customers.values() for e in emails if e["flow"]]
    assert {e["flow"] for e in flows} == {"feedback", "coupon"}
    assert any(e["kind"] == "coupon_reminder" for e in flows)
