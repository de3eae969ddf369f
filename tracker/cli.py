"""The `trackmail` command. Everything but argparse is imported inside the command that needs it (even json
and logging), so `--help` costs little more than starting Python (bench/cli_start.py measures it)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path  # already loaded by the interpreter's start-up; used for argument types
from typing import TYPE_CHECKING

from tracker.cli_output import EXIT_CONFIG, EXIT_PROBLEM

if TYPE_CHECKING:
    from collections.abc import Sequence


def _load(args: argparse.Namespace):
    from tracker.config import load

    return load(args.config)


def cmd_track(args: argparse.Namespace) -> int:
    from tracker.cli_track import track

    return track(_load(args), args.courier, args.numbers, args.json)


def cmd_sync(args: argparse.Namespace) -> int:
    from tracker.cli_admin import sync

    return sync(_load(args), args.json)


def cmd_suppress(args: argparse.Namespace) -> int:
    from tracker.cli_admin import suppress_command

    return suppress_command(_load(args), args)


def cmd_run(args: argparse.Namespace) -> int:
    from tracker.daemon import run

    config = _load(args)
    run(config, once=args.once)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from tracker.db import make_engine
    from tracker.schema import upgrade

    config = _load(args)
    engine = make_engine(config.database_url)
    try:
        result = upgrade(engine)
    finally:
        engine.dispose()
    print(f"{make_url(config.database_url).render_as_string(hide_password=True)}: {result.describe()}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from tracker.simulate import simulate

    config = _load(args)
    base = config.path.parent
    database = args.database or base / "simulate.db"
    outbox = args.outbox or base / "outbox-simulate"
    summary = asyncio.run(simulate(config, args.days, seed=args.seed, database_url=f"sqlite:///{database}",
                                   outbox_dir=Path(outbox)))
    if args.per_customer:
        from tracker.simulate import emails_per_customer

        customers = emails_per_customer(f"sqlite:///{database}")
        if args.json:
            print(json.dumps(customers, indent=2))
            return 0
        for customer, emails in customers.items():
            print(customer)
            for e in emails:
                why = f"  ({e['reason']})" if e["reason"] else ""
                flow = f" [{e['flow']}]" if e["flow"] else ""
                print(f"  {e['at'][:16].replace('T', ' ')}  {e['order']:<8} {e['kind']:<22} {e['state']:<9}{flow}{why}")
        return 0
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
    from tracker.cli_output import print_rows
    from tracker.queries import list_shipments

    rows = list_shipments(_load(args), status=args.status, limit=args.limit)
    print_rows(rows, ["id", "order", "courier", "tracking_number", "status", "last_event_at", "estimated_delivery",
                       "emails"], args.json)
    return 0


def cmd_emails(args: argparse.Namespace) -> int:
    from tracker.cli_output import print_rows
    from tracker.queries import list_emails

    config = _load(args)
    if args.emails_command == "retry":
        from tracker.cli_admin import retry_email

        return retry_email(config, args.id)
    state = "dead" if args.failed else args.state
    rows = list_emails(config, kind=args.kind, state=state, limit=args.limit)
    columns = ["id", "kind", "state", "to", "order", "tracking_number", "due_at", "sent_at", "attempts", "error"]
    print_rows(rows, columns, args.json)
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from tracker.app import App
    from tracker.clock import system_clock
    from tracker.web.serve import serve_web

    config = _load(args)
    if config.web is None:
        print(f"trackmail: {config.path} has no [web] table; add one (see README) to serve the pages",
              file=sys.stderr)
        return EXIT_PROBLEM

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        app = App.create(config, system_clock)
        try:
            await serve_web(app, stop)
        finally:
            await app.aclose()

    asyncio.run(serve())
    return 0


def cmd_coupons(args: argparse.Namespace) -> int:
    import json

    from tracker.cli_output import print_rows
    from tracker.queries import list_coupons

    rows, summary = list_coupons(_load(args), limit=args.limit)
    if args.json:
        print(json.dumps({"summary": summary, "coupons": rows}, indent=2, default=str))
        return 0
    print_rows(rows, ["id", "code", "source", "discount", "customer", "issued_at", "redeemed_by_order", "revenue",
                      "currency"], False)
    revenue = ", ".join(f"{amount} {currency}" for currency, amount in summary["revenue"].items()) or "nothing yet"
    print(f"\n{summary['issued']} issued, {summary['redeemed']} redeemed; revenue from redeeming orders: {revenue}")
    return 0


def cmd_preview(args: argparse.Namespace) -> int:
    from emails.context import sample_context
    from emails.kinds import EMAIL_KINDS
    from emails.render import Renderer

    config = _load(args)
    if args.kind not in EMAIL_KINDS:
        print(f"trackmail: unknown kind {args.kind!r}; kinds: {', '.join(EMAIL_KINDS)}", file=sys.stderr)
        return EXIT_PROBLEM
    shop = config.shops[args.shop] if args.shop else next(iter(config.shops.values()))
    renderer = Renderer(shop.templates_dir)
    rendered = renderer.render(args.kind, sample_context(args.kind, shop), locale=args.locale)
    if args.out:
        Path(args.out).write_text(rendered.html, encoding="utf-8")
        used = renderer.locale_used(args.kind, args.locale)
        print(f"{args.kind} ({used}): {rendered.subject!r} written to {args.out}")
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


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser("run", help="run the daemon: sync orders, poll couriers, send emails")
    run.add_argument("--once", action="store_true", help="run each job once, then exit")
    run.set_defaults(func=cmd_run)


def _add_migrate(commands: argparse._SubParsersAction) -> None:
    migrate = commands.add_parser("migrate", help="upgrade the database's schema to this version's (back it up first)")
    migrate.set_defaults(func=cmd_migrate)


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    sim = commands.add_parser("simulate", help="run the jobs on a virtual clock against the sandbox accounts")
    sim.add_argument("--days", type=float, required=True)
    sim.add_argument("--seed", type=int, default=None, help="overrides the sandbox accounts' seed")
    sim.add_argument("--database", type=Path, help="SQLite file (default: simulate.db beside the config)")
    sim.add_argument("--outbox", type=Path, help="email folder (default: outbox-simulate beside the config)")
    sim.add_argument("--per-customer", action="store_true", help="list each customer's emails and their fate")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(func=cmd_simulate)


def _add_shipments(commands: argparse._SubParsersAction) -> None:
    shipments = commands.add_parser("shipments", help="list shipments")
    shipments.add_argument("--status")
    shipments.add_argument("--limit", type=int, default=50)
    shipments.add_argument("--json", action="store_true")
    shipments.set_defaults(func=cmd_shipments)


def _add_emails(commands: argparse._SubParsersAction) -> None:
    emails = commands.add_parser("emails", help="list emails; 'emails retry ID' re-queues a failed one")
    emails.add_argument("--kind")
    emails.add_argument("--state", help="queued, sent, skipped, cancelled, held or dead")
    emails.add_argument("--failed", action="store_true", help="only dead-lettered emails, with the reason")
    emails.add_argument("--limit", type=int, default=50)
    emails.add_argument("--json", action="store_true")
    emails.set_defaults(func=cmd_emails, emails_command=None)
    retry = emails.add_subparsers(dest="emails_command", metavar="retry").add_parser(
        "retry", help="re-queue a dead, held or skipped email")
    retry.add_argument("id", type=int)


def _add_web(commands: argparse._SubParsersAction) -> None:
    web = commands.add_parser("web", help="serve only the web pages ([web] in config; run serves them too)")
    web.set_defaults(func=cmd_web)


def _add_coupons(commands: argparse._SubParsersAction) -> None:
    coupons = commands.add_parser("coupons", help="coupons issued and what their redemptions earned")
    coupons.add_argument("--limit", type=int, default=50)
    coupons.add_argument("--json", action="store_true")
    coupons.set_defaults(func=cmd_coupons)


def _add_sync(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser("sync", help="read every order feed once and print what changed")
    sync.add_argument("--json", action="store_true")
    sync.set_defaults(func=cmd_sync)


def _add_suppress(commands: argparse._SubParsersAction) -> None:
    suppress = commands.add_parser("suppress", help="the list of addresses not to email")
    suppress_actions = suppress.add_subparsers(dest="action", required=True, metavar="add|remove|list")
    add = suppress_actions.add_parser("add", help="stop marketing emails to an address (--all: every email)")
    add.add_argument("address")
    add.add_argument("--all", action="store_true", help="also tracking emails (a dead or hostile address)")
    add.add_argument("--reason", default="")
    suppress_actions.add_parser("remove", help="email the address again").add_argument("address")
    suppress_actions.add_parser("list", help="show the list").add_argument("--json", action="store_true")
    suppress.set_defaults(func=cmd_suppress)


def _add_preview(commands: argparse._SubParsersAction) -> None:
    preview = commands.add_parser("preview", help="render one email kind with sample data")
    preview.add_argument("kind")
    preview.add_argument("--shop")
    preview.add_argument("--locale", help="e.g. de or fr-CA; falls back to English where no template exists")
    preview.add_argument("--out", help="write the HTML here instead of printing it")
    preview.set_defaults(func=cmd_preview)


def _add_track(commands: argparse._SubParsersAction) -> None:
    track = commands.add_parser("track", help="ask a courier account about tracking numbers, now")
    track.add_argument("--courier", required=True, metavar="ACCOUNT", help="a [couriers.<name>] account")
    track.add_argument("numbers", nargs="+", metavar="NUMBER")
    track.add_argument("--json", action="store_true")
    track.set_defaults(func=cmd_track)


def _add_check(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check", help="validate the config and render every template")
    check.set_defaults(func=cmd_check)


# In this order in `trackmail --help`.
_SUBCOMMANDS = (_add_run, _add_migrate, _add_simulate, _add_shipments, _add_emails, _add_web, _add_coupons, _add_sync,
                _add_suppress, _add_preview, _add_track, _add_check)


def parser() -> argparse.ArgumentParser:
    default_config = os.environ.get("TRACKMAIL_CONFIG", "config.toml")
    top = argparse.ArgumentParser(prog="trackmail", description="Shipment tracking emails for online shops.")
    top.add_argument("--config", default=default_config, help=f"config file (default: {default_config})")
    top.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import logging

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:
        for noisy in ("apscheduler", "httpx", "alembic"):
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
        from tracker.db import DatabaseError
        from tracker.schema import SchemaError, SchemaOutdated, migrate_command

        if isinstance(exc, DatabaseError):
            print(f"trackmail: database error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if isinstance(exc, TemplateError):
            print(f"trackmail: template error: {exc}", file=sys.stderr)
            return EXIT_PROBLEM
        if isinstance(exc, SchemaError):
            message = str(exc)
            if isinstance(exc, SchemaOutdated) and args.command == "simulate":  # `migrate` upgrades the real one
                message = (f"{exc.describe()}. The simulation database holds only simulated data: delete it, or "
                           f"pass --database to start another")
            elif isinstance(exc, SchemaOutdated):
                message = exc.explain(migrate_command(args.config))
            print(f"trackmail: database error: {message}", file=sys.stderr)
            return EXIT_CONFIG
        raise


if __name__ == "__main__":
    sys.exit(main())
