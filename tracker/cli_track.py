"""`trackmail track`: ask one courier account about tracking numbers, now, and show its answer."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from tracker.cli_output import EXIT_PROBLEM, table
from tracker.config import Config

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
        lines = table(events, ["time (UTC)", "status", "code", "description", "location"]).splitlines()
        print("\n".join("  " + line for line in lines))
    else:
        print("  (no events yet)")
    print()


def track(config: Config, courier_name: str, numbers: Sequence[str], as_json: bool) -> int:
    from carriers import build_courier
    from tracker.clock import system_clock

    account = config.couriers.get(courier_name)
    if account is None:
        known = ", ".join(sorted(config.couriers)) or "none"
        print(f"trackmail: no courier account {courier_name!r} in {config.path}; configured: {known}",
              file=sys.stderr)
        return EXIT_PROBLEM
    rows = asyncio.run(_track_numbers(build_courier(account, system_clock), numbers))
    if as_json:
        data = [{k: r[k] for k in TRACK_FIELDS} | ({"error": r["error"]} if r["error"] else {}) for r in rows]
        print(json.dumps(data, indent=2))
    else:
        for row in rows:
            _print_tracked(row)
    return EXIT_PROBLEM if any(r["error"] for r in rows) else 0
