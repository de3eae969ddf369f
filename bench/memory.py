"""Peak memory of `trackmail run --once` on a database of 1,000,000 shipments, beside the same on an empty one.

    python -m bench.memory [--shipments 1000000] [--rebuild]

The database is built once (SQLAlchemy Core executemany in large transactions; ten minutes for a million
shipments) and kept in bench-data/ (not in git); each measurement runs on a fresh copy, so every run starts
from the same state. The mix is what a shop a few years in looks like: most parcels delivered long ago, a
fifth still moving (some due for polling, some delayed, some without an estimate yet), tracking events and
sent emails for many, a few hundred emails due, spread over six couriers. Only the sandbox courier is
configured, so polling talks to no network; the other couriers' parcels still count for stuck detection,
lane statistics and the digest. The shop's time zone is chosen so that its morning digest is due now.

The figure is the child's peak resident set (VmHWM, noted by the child as it exits), whole process:
interpreter, libraries and data.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.report import Figure, table
from tracker.status import ShipmentStatus

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench-data"
TARGET_MB = 300.0
CHUNK = 20_000  # rows per executemany

COURIERS = (("sandbox", 40), ("dhl", 15), ("ups", 15), ("fedex", 15), ("usps", 10), ("aftership", 5))
# (status, share in %, live?)
STATUSES = (("delivered", 72.0, False), ("returned", 2.0, False), ("expired", 1.0, False),
            ("in_transit", 15.0, True), ("out_for_delivery", 2.0, True), ("failed_attempt", 1.0, True),
            ("available_for_pickup", 1.0, True), ("exception", 1.0, True), ("info_received", 2.0, True),
            ("pending", 3.0, True))
DUE_SHARE = 0.003  # of live parcels due for polling now
QUEUED_DUE = 500  # emails due to be sent now


def config_text(database: Path, outbox: Path, now: datetime) -> str:
    """A config on `database` whose shop's local time is past 08:00, so the daily digest is due."""
    offset = next(k for k in range(-11, 15) if 9 <= (now.hour + k) % 24 <= 20)
    zone = f"Etc/GMT{-offset:+d}" if offset else "UTC"  # Etc/GMT-6 is UTC+6
    return f"""\
[trackmail]
database = "{database}"
lookback = "0d"

[emails]
transport = "outbox"
outbox_dir = "{outbox}"

[shops.demo]
name = "Northwind Goods"
sender = "Northwind Goods <hello@northwind.example.com>"
url = "https://northwind.example.com"
support_email = "support@northwind.example.com"
alerts_email = "ops@northwind.example.com"
footer = "Northwind Goods · 12 Harbour Street · Bristol"
review_url = "https://northwind.example.com/reviews"
timezone = "{zone}"

[marketplaces.demo-shop]
type = "sandbox"
shop = "demo"
seed = 7
orders_per_day = 12
lookback = "0d"

[couriers.sandbox]
type = "sandbox"
seed = 7
"""


def build(path: Path, shipments: int, now: datetime, seed: int = 1) -> None:
    """Write a database of `shipments` parcels to `path` (replaced if it exists)."""
    from sqlalchemy import insert

    from carriers.sandbox_numbers import COUNTRIES, make_tracking_number
    from tracker.db import open_db
    from tracker.models import Customer, Email, EmailState, Order, OrderState, Shipment, TrackingEvent

    path.unlink(missing_ok=True)
    engine = open_db(f"sqlite:///{path}")
    rng = random.Random(seed)
    countries = list(COUNTRIES.values())
    courier_pick = [name for name, share in COURIERS for _ in range(share)]
    status_pick = [(s, live) for s, share, live in STATUSES for _ in range(int(share * 10))]
    customers = max(1, shipments * 3 // 10)
    rows: dict[type, list[dict]] = {Customer: [], Order: [], Shipment: [], TrackingEvent: [], Email: []}

    def flush(conn, force: bool = False) -> None:
        for model, batch in rows.items():  # in dependency order
            if batch and (force or len(batch) >= CHUNK):
                conn.execute(insert(model), batch)
                batch.clear()

    with engine.begin() as conn:
        for c in range(1, customers + 1):
            rows[Customer].append({"id": c, "marketplace": "demo-shop", "external_id": f"bench-c{c}",
                                   "email": f"customer{c}@example.com", "name": f"Customer {c}", "locale": "en",
                                   "marketing_consent": c % 3 != 0})
            flush(conn)
        flush(conn, force=True)
    order_id = email_id = event_id = queued = 0
    with engine.begin() as conn:
        for sid in range(1, shipments + 1):
            if sid % 11 != 0 or order_id == 0:  # every eleventh parcel is an order's second one
                order_id += 1
                country = rng.choice(countries)
                created = now - timedelta(days=rng.uniform(0, 400))
                customer_id = rng.randint(1, customers)
                rows[Order].append({
                    "id": order_id, "marketplace": "demo-shop", "shop": "demo", "external_id": f"bench-{order_id}",
                    "number": f"#B{order_id}", "customer_id": customer_id, "created_at": created,
                    "updated_at": created, "currency": country.currency, "total": rng.randint(500, 20000) / 100,
                    "state": OrderState.OPEN, "refunded": False, "notify": True, "country": country.code,
                    "postcode": "10115"})
            rows[Shipment].append(_shipment(rng, sid, order_id, country, created, now, courier_pick, status_pick,
                                            make_tracking_number))
            shipment = rows[Shipment][-1]
            if sid % 4 == 0:
                for at, status in _events(shipment):
                    event_id += 1
                    rows[TrackingEvent].append({
                        "id": event_id, "shipment_id": sid, "at": at, "status": ShipmentStatus(status),
                        "code": status.upper(),
                        "description": status.replace("_", " "), "location": country.code, "recorded_at": at,
                        "applied": True, "note": ""})
            if sid % 2 == 0 or (shipment["courier"] == "sandbox" and shipment["next_poll_at"] is not None
                                and queued < QUEUED_DUE):
                email_id += 1
                due_now = sid % 2 != 0
                queued += due_now
                rows[Email].append({
                    "id": email_id, "idempotency_key": f"shipment_confirmation:shipment:{sid}",
                    "message_id": f"<bench-{sid}@trackmail.invalid>", "kind": "shipment_confirmation",
                    "shop": "demo", "order_id": order_id, "shipment_id": sid,
                    "customer_id": customer_id,
                    "to_address": "customer@example.com", "state": EmailState.QUEUED if due_now else EmailState.SENT,
                    "created_at": shipment["shipped_at"], "due_at": now - timedelta(minutes=5) if due_now
                    else shipment["shipped_at"], "claimed_until": None, "attempts": 0, "first_failed_at": None,
                    "sent_at": None if due_now else shipment["shipped_at"], "provider_id": "", "last_error": "",
                    "marketing": False, "flow": "", "step": 0, "followed_up": False})
            if sid % CHUNK == 0:
                flush(conn, force=True)  # parents before children: the foreign keys are enforced
        flush(conn, force=True)
    engine.dispose()


# A live parcel's last news is recent for its status (at most a third of the default silence allowed), so
# only the parcels given a delayed_at are stuck: a real shop's stuck parcels are a few in a hundred.
RECENT_NEWS = {"pending": 0.5, "info_received": 1.0, "in_transit": 1.0, "out_for_delivery": 0.15,
               "failed_attempt": 0.5, "available_for_pickup": 2.0, "exception": 1.0}  # days


def _shipment(rng, sid, order_id, country, created, now, courier_pick, status_pick, make_number) -> dict:
    status, live = rng.choice(status_pick)
    courier = rng.choice(courier_pick)
    if live:
        last_event = now - timedelta(days=rng.uniform(0, RECENT_NEWS[status]))
        shipped = last_event - timedelta(days=rng.uniform(0.1, 3)) if status != "pending" else last_event
        last_event = None if status == "pending" else last_event
        final_at = None
    else:
        shipped = min(created + timedelta(hours=rng.uniform(2, 48)), now - timedelta(days=10))
        final_at = last_event = shipped + timedelta(days=rng.uniform(1, 9))
    if courier == "sandbox":
        number = make_number(shipped, country.code, rng.randrange(len(country.cities)), sid)
    else:
        number = f"{courier[:2].upper()}{sid:012d}"
    due = live and rng.random() < DUE_SHARE
    return {
        "id": sid, "order_id": order_id, "courier": courier, "courier_name": courier.upper(),
        "tracking_number": number, "tracking_url": f"https://track.example.com/{number}",
        "shipped_at": shipped, "first_seen_at": shipped, "status": ShipmentStatus(status),
        "status_code": status.upper(), "status_description": status.replace("_", " "),
        "last_event_at": last_event, "delivered_at": final_at if status == "delivered" else None,
        "estimated_delivery": (shipped + timedelta(days=4)).date() if live and rng.random() < 0.8 else None,
        "signed_by": "", "next_poll_at": (now - timedelta(minutes=1) if due else now + timedelta(hours=rng.uniform(
            1, 12))) if live else None,
        "claimed_until": None, "poll_failures": 0, "last_error": "",
        "followups_planned": not live and rng.random() < 0.999, "notify": rng.random() < 0.97,
        "delayed_at": now - timedelta(hours=3) if live and rng.random() < 0.01 else None,
        "delay_reason": "", "final_at": final_at,
    }


def _events(shipment: dict) -> list[tuple[datetime, str]]:
    """A short history ending in the parcel's status: label, a transit scan, the status itself."""
    start = shipment["shipped_at"]
    status = shipment["status"].value
    end = shipment["last_event_at"] or start + timedelta(hours=2)
    steps = [("info_received", min(start + timedelta(hours=2 + sid_hours(shipment["id"])), end))]
    if end - steps[0][1] > timedelta(hours=3):
        steps.append(("in_transit", steps[0][1] + (end - steps[0][1]) / 2))
    if status not in ("pending", "info_received"):
        steps.append((status, end))
    return [(at, status) for status, at in steps]


def sid_hours(sid: int) -> int:
    """How long the first scan took, 0-23 hours, varied by parcel."""
    return sid * 7919 % 24


def cached_database(shipments: int, rebuild: bool) -> Path:
    """The built database for `shipments` parcels, building it when missing (or asked)."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"memory-{shipments}.db"
    if rebuild or not path.exists():
        start = time.perf_counter()
        partial = path.with_suffix(".building")
        build(partial, shipments, datetime.now(UTC))
        partial.replace(path)
        print(f"built {path.name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    else:  # built by an older version: upgrade it as `trackmail migrate` would, rather than build it again
        from tracker.db import make_engine
        from tracker.schema import upgrade

        engine = make_engine(f"sqlite:///{path}")
        try:
            upgrade(engine)
        finally:
            engine.dispose()
    return path


def run_once(database: Path | None, label: str) -> tuple[float, float]:
    """Peak RSS (MB) and wall time (s) of `trackmail run --once` on a copy of `database` (None: empty)."""
    work = DATA / f"run-{label}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "trackmail.db"
    if database is not None:
        shutil.copyfile(database, db)
    config = work / "config.toml"
    config.write_text(config_text(db, work / "outbox", datetime.now(UTC)), encoding="utf-8")
    peak = work / "peak"
    start = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", CHILD, str(peak), "--config", str(config), "run", "--once"],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"trackmail run --once on {label} exited {child.returncode}:\n{child.stdout[-3000:]}")
    (work / "run.log").write_text(child.stdout, encoding="utf-8")
    shutil.rmtree(work / "outbox", ignore_errors=True)
    (work / "trackmail.db").unlink(missing_ok=True)
    return int(peak.read_text()) / 1024, elapsed


# The child notes its own high-water mark as it exits. Not ru_maxrss from wait4: Linux carries the parent's
# peak over into a forked child's maxrss across exec, so a child of a big bench.run process would report
# the parent's size. VmHWM belongs to the address space the child got at exec.
CHILD = """
import atexit, re, sys
out = sys.argv.pop(1)
def note():
    status = open("/proc/self/status").read()
    open(out, "w").write(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
atexit.register(note)
from tracker.cli import main
sys.exit(main(sys.argv[1:]))
"""


def measure(args: argparse.Namespace) -> list[Figure]:
    shipments = getattr(args, "shipments", 1_000_000)
    database = cached_database(shipments, getattr(args, "rebuild", False))
    empty_mb, empty_s = run_once(None, "empty")
    full_mb, full_s = run_once(database, f"{shipments}")
    return [
        Figure("memory", f"run --once peak RSS, {shipments:,} shipments", full_mb, "MB",
               reference_name="same on an empty database", reference=empty_mb, target=f"< {TARGET_MB:g} MB",
               met=full_mb < TARGET_MB),
        Figure("memory", f"run --once wall time, {shipments:,} shipments", full_s, "s",
               reference_name="same on an empty database", reference=empty_s),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=1_000_000)
    parser.add_argument("--rebuild", action="store_true", help="build the database again")
    print(table(measure(parser.parse_args())))


if __name__ == "__main__":
    main()
