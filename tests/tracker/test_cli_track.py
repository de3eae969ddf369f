"""`trackmail track`: ask one courier account about some numbers right now and show what it says."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

import carriers
from carriers import sandbox
from carriers.base import CarrierEvent, ResponseError, TrackingResult, TransientError
from tests.factories import REPO
from tracker.cli import main
from tracker.config import load
from tracker.status import ShipmentStatus as S

CONFIG = REPO / "config.toml"
SEED = sandbox.settings_from_section(load(CONFIG).couriers["sandbox"].section).seed
LABELLED = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)  # long past: every journey from then has finished


def number_with(scenario: str) -> str:
    """The first sandbox number labelled at LABELLED whose journey follows `scenario`."""
    for serial in range(1000):
        number = sandbox.make_tracking_number(LABELLED, "DE", 0, serial)
        if sandbox.journey(SEED, number).scenario == scenario:
            return number
    raise AssertionError(scenario)


DELIVERED = number_with("delivered")
LOST = number_with("lost")
NOT_YET = sandbox.make_tracking_number(datetime(2099, 1, 1, tzinfo=UTC), "DE", 0, 1)  # label in the future


def track(capsys, *args: str, config=CONFIG) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(config), "track", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_gives_each_number_its_status_dates_and_events_newest_first(capsys):
    code, out, _ = track(capsys, "--courier", "sandbox", DELIVERED, LOST, "--json")
    assert code == 0
    delivered, lost = json.loads(out)
    assert set(delivered) == {"tracking_number", "courier", "status", "estimated_delivery", "delivered_at", "events"}
    planned = sandbox.journey(SEED, DELIVERED)
    assert delivered["tracking_number"] == DELIVERED and delivered["courier"] == "sandbox"
    assert delivered["status"] == "delivered"
    assert delivered["delivered_at"] == planned.events[-1].at.isoformat() == delivered["events"][0]["at"]
    assert delivered["estimated_delivery"] == planned.estimates[-1][1].isoformat()
    assert delivered["events"] == [
        {"at": e.at.isoformat(), "status": e.status.value, "code": e.code, "description": e.description,
         "location": e.location} for e in reversed(planned.events)]
    assert datetime.fromisoformat(delivered["events"][0]["at"]).utcoffset() == timedelta(0)
    assert lost["status"] == sandbox.journey(SEED, LOST).events[-1].status.value == "in_transit"
    assert lost["delivered_at"] is None


def test_a_number_the_courier_does_not_know_yet_is_pending_not_an_error(capsys):
    code, out, _ = track(capsys, "--courier", "sandbox", NOT_YET, "1Z999AA10123456784", "--json")
    assert code == 0
    for row in json.loads(out):
        assert row["status"] == "pending" and row["events"] == [] and "error" not in row
        assert row["estimated_delivery"] is None and row["delivered_at"] is None


def test_the_text_view_shows_the_facts_and_a_table_of_events_newest_first(capsys):
    code, out, _ = track(capsys, "--courier", "sandbox", DELIVERED, NOT_YET)
    assert code == 0
    first, second = out.strip().split("\n\n")
    lines = first.splitlines()
    assert lines[0] == f"{DELIVERED}  (sandbox)"
    assert lines[1].split() == ["status:", "delivered"]
    assert lines[2].startswith("  estimated delivery:") and lines[4].split() == ["signed", "by:", "-"]
    delivered_at = sandbox.journey(SEED, DELIVERED).events[-1].at
    assert lines[3].split(":", 1)[1].strip() == f"{delivered_at:%Y-%m-%d %H:%M:%S} UTC"
    assert lines[5].split() == ["time", "(UTC)", "status", "code", "description", "location"]
    times = [line.split()[0] + " " + line.split()[1] for line in lines[6:]]
    assert len(times) == len(sandbox.journey(SEED, DELIVERED).events) and times == sorted(times, reverse=True)
    assert " DL " in lines[6] and " LC " in lines[-1]
    assert second.splitlines()[1].split() == ["status:", "pending"] and "(no events yet)" in second


def test_an_unknown_account_is_refused_naming_the_configured_ones(capsys):
    code, out, err = track(capsys, "--courier", "ups", "1Z999AA10123456784")
    assert code == 1 and out == ""
    assert "'ups'" in err and "configured: sandbox" in err


def test_the_command_is_listed_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    assert "--courier ACCOUNT" in capsys.readouterr().out


# ── Errors, with a courier that fails on purpose ─────────────────────────────────────────────────────────

CET = timezone(timedelta(hours=1))


class FlakyCourier:
    """Answers OK*, gives BAD a per-number error, and fails the whole request for any batch holding DOWN."""

    batch_size = 2
    concurrency = 1

    def __init__(self, name: str) -> None:
        self.name = name
        self.asked: list[list[str]] = []
        self.closed = False

    async def track(self, numbers):
        self.asked.append(list(numbers))
        if "BOOM" in numbers:
            raise RuntimeError("a bug, not a courier error")
        if "DOWN" in numbers:
            raise TransientError("the service is busy", source=self.name, status_code=503)
        return [self._result(n) for n in numbers]

    def _result(self, number: str) -> TrackingResult:
        if number == "BAD":
            return TrackingResult(number, found=False,
                                  error=ResponseError("malformed entry", source=self.name, tracking_number=number))
        events = (  # out of order, one local time, and a newest event whose code we cannot map
            CarrierEvent(datetime(2026, 3, 2, 9, 0, tzinfo=UTC), S.IN_TRANSIT, "AR", "Arrived", "Hub, DE"),
            CarrierEvent(datetime(2026, 3, 3, 12, 0, tzinfo=CET), S.DELIVERED, "DL", "Delivered", "Berlin, DE"),
            CarrierEvent(datetime(2026, 3, 3, 13, 0, tzinfo=UTC), S.UNKNOWN, "ZZ", "Survey sent", ""),
        )
        return TrackingResult(number, events, estimated_delivery=date(2026, 3, 3), signed_by="J. DOE")

    def tracking_url(self, number: str) -> str:
        return f"https://flaky.example.com/{number}"

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def flaky(tmp_path, monkeypatch):
    """A config with a `flaky` courier account (no sandbox clock speed-up: it is not a sandbox account)."""
    text = CONFIG.read_text().replace("clock_speed = 28800\n", "")
    (tmp_path / "config.toml").write_text(text + '\n[couriers.flaky]\ntype = "flaky"\n')
    made: list[FlakyCourier] = []
    monkeypatch.setitem(carriers.COURIERS, "flaky", lambda name, section, clock: made.append(FlakyCourier(name))
                        or made[-1])
    return tmp_path / "config.toml", made


def test_failures_are_reported_per_number_and_make_the_command_fail(capsys, flaky):
    config, made = flaky
    code, out, _ = track(capsys, "--courier", "flaky", "OK1", "BAD", "DOWN", "OK2", "--json", config=config)
    assert code == 1
    rows = {row["tracking_number"]: row for row in json.loads(out)}
    assert list(rows) == ["OK1", "BAD", "DOWN", "OK2"]
    assert made[0].asked == [["OK1", "BAD"], ["DOWN", "OK2"]] and made[0].closed
    assert "error" not in rows["OK1"] and rows["OK1"]["status"] == "delivered"
    assert "malformed entry" in rows["BAD"]["error"] and rows["BAD"]["status"] == "pending"
    assert all("HTTP 503" in rows[n]["error"] and rows[n]["events"] == [] for n in ("DOWN", "OK2"))


def test_status_is_the_newest_known_event_and_times_are_shown_in_utc(capsys, flaky):
    config, _ = flaky
    code, out, _ = track(capsys, "--courier", "flaky", "OK1", "--json", config=config)
    (row,) = json.loads(out)
    assert code == 0
    assert row["status"] == "delivered" and row["delivered_at"] == "2026-03-03T11:00:00+00:00"
    assert [e["code"] for e in row["events"]] == ["ZZ", "DL", "AR"]
    assert row["events"][0] == {"at": "2026-03-03T13:00:00+00:00", "status": "unknown", "code": "ZZ",
                                "description": "Survey sent", "location": ""}


def test_the_text_view_prints_each_error_and_the_signature(capsys, flaky):
    config, _ = flaky
    code, out, _ = track(capsys, "--courier", "flaky", "OK1", "BAD", config=config)
    assert code == 1
    ok, bad = out.strip().split("\n\n")
    assert "signed by:          J. DOE" in ok and "delivered at:       2026-03-03 11:00:00 UTC" in ok
    assert bad.splitlines()[1] == "  error: flaky: malformed entry; tracking number BAD"


def test_the_courier_is_closed_even_when_it_crashes(capsys, flaky):
    config, made = flaky
    with pytest.raises(RuntimeError):
        track(capsys, "--courier", "flaky", "BOOM", config=config)
    assert made[0].closed
