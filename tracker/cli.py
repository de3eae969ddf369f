"""The `trackmail` command. Heavy modules are imported inside each command so `--help` answers at once."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_CONFIG = 2
EXIT_PROBLEM = 1


def _load(args: argparse.Namespace):
    from tracker.config import load

    return load(args.config)


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _print_rows(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(_table(rows, columns))


def cmd_run(args: argparse.Namespace) -> int:
    from tracker.daemon import run

    config = _load(args)
    run(config, once=args.once)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio

    from tracker.simulate import simulate

    config = _load(args)
    base = config.path.parent
    database = args.database or base / "simulate.db"
    outbox = args.outbox or base / "outbox-simulate"
    summary = asyncio.run(simulate(config, args.days, seed=args.seed, database_url=f"sqlite:///{database}",
                                   outbox_dir=Path(outbox)))
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
        return 0
    print(f"Simulated {args.days:g} days from {summary.start:%Y-%m-%d %H:%M} UTC (seed {summary.seed}) "
          f"in {summary.steps} steps; database {database}, emails in {outbox}/")
    print(f"Orders: {summary.orders}")
    print("Shipments by status: " + ", ".join(f"{k} {v}" for k, v in summary.shipments_by_status.items()))
    print("Emails sent by kind:")
    for kind, count in summary.emails_by_kind.items():
        print(f"  {kind:<24}{count:>6}")
    print("Emails by state: " + ", ".join(f"{k} {v}" for k, v in summary.emails_by_state.items()))
    print(f"Sent in this run: {summary.sent_this_run}")
    for error in summary.errors:
        print(f"error: {error}")
    return 0


def cmd_shipments(args: argparse.Namespace) -> int:
    from tracker.queries import list_shipments

    rows = list_shipments(_load(args), status=args.status, limit=args.limit)
    _print_rows(rows, ["id", "order", "courier", "tracking_number", "status", "last_event_at", "estimated_delivery",
                       "emails"], args.json)
    return 0


def cmd_emails(args: argparse.Namespace) -> int:
    from tracker.queries import list_emails

    rows = list_emails(_load(args), kind=args.kind, state=args.state, limit=args.limit)
    columns = ["id", "kind", "state", "to", "order", "tracking_number", "due_at", "sent_at", "error"]
    _print_rows(rows, columns, args.json)
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from emails.context import sample_context
    from emails.render import Renderer
    from tracker.config import EMAIL_KINDS

    config = _load(args)
    if args.kind not in EMAIL_KINDS:
        print(f"trackmail: unknown kind {args.kind!r}; kinds: {', '.join(EMAIL_KINDS)}", file=sys.stderr)
        return EXIT_PROBLEM
    shop = config.shops[args.shop] if args.shop else next(iter(config.shops.values()))
    rendered = Renderer(shop.templates_dir).render(args.kind, sample_context(args.kind, shop))
    if args.out:
        Path(args.out).write_text(rendered.html, encoding="utf-8")
        print(f"{args.kind}: {rendered.subject!r} written to {args.out}")
    else:
        print(rendered.html)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from tracker.checks import check

    problems, notes = check(_load(args))
    for note in notes:
        print(f"ok: {note}")
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    return EXIT_PROBLEM if problems else 0


TRACK_FIELDS = ("tracking_number", "courier", "status", "estimated_delivery", "delivered_at", "events")


def _tracked(number: str, courier: str, result: Any = None, error: str | None = None) -> dict[str, Any]:
    """One number's answer as plain data, times in UTC. The status is the courier's word, not the state
    machine's: that of the newest event with a known status; `pending` while the courier knows nothing,
    `unknown` if it only sent codes we cannot map."""
    from datetime import UTC

    from tracker.status import ShipmentStatus

    events = sorted(result.events, key=lambda e: e.at, reverse=True) if result is not None else []
    known = [e for e in events if e.status is not ShipmentStatus.UNKNOWN]
    status = known[0].status.value if known else "unknown" if events else "pending"
    delivered = known[0].at if known and known[0].status is ShipmentStatus.DELIVERED else None
    estimate = result.estimated_delivery if result is not None else None
    if result is not None and result.error is not None:
        error = error or str(result.error)
    return {
        "tracking_number": number,
        "courier": courier,
        "status": status,
        "estimated_delivery": estimate.isoformat() if estimate else None,
        "delivered_at": delivered.astimezone(UTC).isoformat() if delivered else None,
        "events": [{"at": e.at.astimezone(UTC).isoformat(), "status": e.status.value, "code": e.code,
                    "description": e.description, "location": e.location} for e in events],
        "signed_by": result.signed_by if result is not None else None,
        "error": error,
    }


async def _track_numbers(courier: Any, numbers: Sequence[str]) -> list[dict[str, Any]]:
    """Ask in batches the courier takes; a failed batch marks its numbers failed, the others still answer."""
    from carriers.base import CarrierError

    rows: list[dict[str, Any]] = []
    size = max(1, courier.batch_size)
    try:
        for start in range(0, len(numbers), size):
            batch = list(numbers[start:start + size])
            try:
                results = await courier.track(batch)
            except CarrierError as exc:
                rows += [_tracked(n, courier.name, error=str(exc)) for n in batch]
                continue
            if len(results) != len(batch):
                problem = f"{courier.name}: answered {len(results)} results for {len(batch)} numbers"
                rows += [_tracked(n, courier.name, error=problem) for n in batch]
                continue
            rows += [_tracked(n, courier.name, r) for n, r in zip(batch, results, strict=True)]
    finally:
        await courier.aclose()
    return rows


def _utc_text(iso: str | None) -> str | None:
    return iso[:19].replace("T", " ") + " UTC" if iso else None


def _print_tracked(row: dict[str, Any]) -> None:
    print(f"{row['tracking_number']}  ({row['courier']})")
    if row["error"]:
        print(f"  error: {row['error']}")
    facts = (("status", row["status"]), ("estimated delivery", row["estimated_delivery"]),
             ("delivered at", _utc_text(row["delivered_at"])), ("signed by", row["signed_by"]))
    for label, value in facts:
        print(f"  {label + ':':<20}{value or '-'}")
    events = [{"time (UTC)": e["at"][:19].replace("T", " "), "status": e["status"], "code": e["code"],
               "description": e["description"], "location": e["location"]} for e in row["events"]]
    if events:
        table = _table(events, ["time (UTC)", "status", "code", "description", "location"])
        print("\n".join("  " + line for line in table.splitlines()))
    else:
        print("  (no events yet)")
    print()


def cmd_track(args: argparse.Namespace) -> int:
    import asyncio

    from carriers import build_courier
    from tracker.clock import system_clock

    config = _load(args)
    account = config.couriers.get(args.courier)
    if account is None:
        known = ", ".join(sorted(config.couriers)) or "none"
        print(f"trackmail: no courier account {args.courier!r} in {config.path}; configured: {known}",
              file=sys.stderr)
        return EXIT_PROBLEM
    rows = asyncio.run(_track_numbers(build_courier(account, system_clock), args.numbers))
    if args.json:
        data = [{k: r[k] for k in TRACK_FIELDS} | ({"error": r["error"]} if r["error"] else {}) for r in rows]
        print(json.dumps(data, indent=2))
    else:
        for row in rows:
            _print_tracked(row)
    return EXIT_PROBLEM if any(r["error"] for r in rows) else 0


def parser() -> argparse.ArgumentParser:
    default_config = os.environ.get("TRACKMAIL_CONFIG", "config.toml")
    top = argparse.ArgumentParser(prog="trackmail", description="Shipment tracking emails for online shops.")
    top.add_argument("--config", default=default_config, help=f"config file (default: {default_config})")
    top.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon: sync orders, poll couriers, send emails")
    run.add_argument("--once", action="store_true", help="run each job once, then exit")
    run.set_defaults(func=cmd_run)

    sim = commands.add_parser("simulate", help="run the jobs on a virtual clock against the sandbox accounts")
    sim.add_argument("--days", type=float, required=True)
    sim.add_argument("--seed", type=int, default=None, help="overrides the sandbox accounts' seed")
    sim.add_argument("--database", type=Path, help="SQLite file (default: simulate.db beside the config)")
    sim.add_argument("--outbox", type=Path, help="email folder (default: outbox-simulate beside the config)")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(func=cmd_simulate)

    shipments = commands.add_parser("shipments", help="list shipments")
    shipments.add_argument("--status")
    shipments.add_argument("--limit", type=int, default=50)
    shipments.add_argument("--json", action="store_true")
    shipments.set_defaults(func=cmd_shipments)

    emails = commands.add_parser("emails", help="list emails")
    emails.add_argument("--kind")
    emails.add_argument("--state")
    emails.add_argument("--limit", type=int, default=50)
    emails.add_argument("--json", action="store_true")
    emails.set_defaults(func=cmd_emails)

    preview = commands.add_parser("preview", help="render one email kind with sample data")
    preview.add_argument("kind")
    preview.add_argument("--shop")
    preview.add_argument("--out", help="write the HTML here instead of printing it")
    preview.set_defaults(func=cmd_preview)

    track = commands.add_parser("track", help="ask a courier account about tracking numbers, now")
    track.add_argument("--courier", required=True, metavar="ACCOUNT", help="a [couriers.<name>] account")
    track.add_argument("numbers", nargs="+", metavar="NUMBER")
    track.add_argument("--json", action="store_true")
    track.set_defaults(func=cmd_track)

    check = commands.add_parser("check", help="validate the config and render every template")
    check.set_defaults(func=cmd_check)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:
        for noisy in ("apscheduler", "httpx"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    from tracker.settings import ConfigError

    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"trackmail: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from emails.render import TemplateError

        if isinstance(exc, TemplateError):
            print(f"trackmail: template error: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
        raise


if __name__ == "__main__":
    sys.exit(main())
