"""The real daemon process: killed mid-run it loses nothing and doubles nothing; signalled it stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from tests.factories import REPO
from tests.outbox_check import duplicates, read_outbox
from tests.postgres import with_database
from tracker.daemon import CLOCK_KEY
from tracker.db import open_db
from tracker.models import Email, EmailState, Order, OrderState, Setting, Shipment
from tracker.status import ShipmentStatus

WAIT = 90  # seconds; generous for a loaded CI machine, the loops end as soon as the condition holds
PG_LEASE = 2  # real seconds: on PostgreSQL a killed daemon's leases are taken over only once they run out


def start(folder: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "tracker.cli", "--config", str(folder / "config.toml"), "run",
                             *args], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def count_mails(folder: Path) -> int:
    outbox = folder / "outbox"
    return len(list(outbox.glob("*.eml"))) if outbox.exists() else 0


def kill_right_after_a_send(proc: subprocess.Popen, folder: Path, at_least: int) -> int:
    """SIGKILL the moment a new message lands once `at_least` exist: most likely inside a send batch."""
    deadline = time.monotonic() + WAIT
    seen = count_mails(folder)
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        now = count_mails(folder)
        if now >= at_least and now > seen:
            proc.kill()
            proc.communicate()
            return now
        seen = now
        time.sleep(0.002)
    proc.kill()
    proc.communicate()
    raise AssertionError(f"the daemon wrote only {count_mails(folder)} emails in {WAIT}s")


def copy_config(folder: Path, database_url: str) -> None:
    """The bundled config on the test's database, its web pages on a free port so tests never fight over 8080."""
    text = (REPO / "config.toml").read_text().replace('listen = "127.0.0.1:8080"', 'listen = "127.0.0.1:0"')
    if database_url.startswith("postgresql"):  # no lock file there: leases alone hand a dead daemon's work on
        text = re.sub(r"^\[schedule\].*$", f'\\g<0>\nlease = "{PG_LEASE}s"', text, count=1, flags=re.M)
    (folder / "config.toml").write_text(with_database(text, database_url))


def test_sigkill_mid_run_then_restart_loses_no_email_and_sends_none_twice(tmp_path, database_url):
    copy_config(tmp_path, database_url)
    killed_at = []
    for round_ in range(5):  # five crashes at different moments
        killed_at.append(kill_right_after_a_send(start(tmp_path), tmp_path, at_least=20 * (round_ + 1)))
    survivor = start(tmp_path)
    deadline = time.monotonic() + WAIT
    while count_mails(tmp_path) < killed_at[-1] + 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    survivor.send_signal(signal.SIGTERM)
    output, _ = survivor.communicate(timeout=WAIT)
    assert survivor.returncode == 0, output
    assert "stopped cleanly" in output
    if database_url.startswith("postgresql"):
        time.sleep(PG_LEASE + 1)  # the last killed daemon's leases run out: a restart on SQLite drops them at once
    drain = start(tmp_path, "--once")  # whatever was due when it stopped goes now
    output, _ = drain.communicate(timeout=WAIT)
    assert drain.returncode == 0, output

    mails = read_outbox(tmp_path / "outbox")
    assert len(mails) > killed_at[-1]
    assert duplicates(mails) == {}, "a customer got the same email twice"
    assert all(mail.message_id and mail.ref for mail in mails), "a half-written message must never look sent"

    engine = open_db(database_url)
    with Session(engine) as session:
        clock = datetime.fromisoformat(session.get_one(Setting, CLOCK_KEY).value)
        rows = list(session.execute(select(Email)).scalars())
        live_orders = set(session.execute(
            select(Order.id).where(Order.state == OrderState.OPEN, Order.notify)).scalars())
        delivered = set(session.execute(
            select(Shipment.id).join(Order, Order.id == Shipment.order_id)
            .where(Shipment.status == ShipmentStatus.DELIVERED, Shipment.notify, Order.state == OrderState.OPEN)
        ).scalars())
    engine.dispose()
    sent = {row.idempotency_key for row in rows if row.state is EmailState.SENT}
    assert sent == {mail.ref for mail in mails}, "every sent row has its message and every message its row"
    overdue = [row for row in rows if row.state is EmailState.QUEUED and row.due_at <= clock]
    assert overdue == [], "nothing that was due is left behind"
    confirmed = {row.order_id for row in rows if row.kind == "order_confirmation"}
    assert live_orders <= confirmed, "every order that arrived got its confirmation"
    delivered_mail = {row.shipment_id for row in rows if row.kind == "delivered" and row.state is EmailState.SENT}
    assert delivered and delivered <= delivered_mail


def test_once_runs_each_job_once_and_exits(tmp_path, database_url):
    copy_config(tmp_path, database_url)
    proc = start(tmp_path, "--once")
    output, _ = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, output
    for job in ("sync_orders", "poll_shipments", "plan_followups", "send_emails"):
        assert f"{job}:" in output


def test_a_bad_config_stops_the_daemon_with_exit_code_2_and_the_key(tmp_path):
    text = (REPO / "config.toml").read_text().replace('expire_after = "30d"', 'expire_after = "soon"')
    (tmp_path / "config.toml").write_text(text)
    proc = start(tmp_path)
    output, _ = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2
    assert "config.toml: trackmail.expire_after:" in output
