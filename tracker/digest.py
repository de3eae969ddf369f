"""The merchant's daily digest of parcels that need a person. Pure: it builds the email and sends nothing.

A quiet day sends nothing (`build_digest` returns None), so a digest in the inbox always means work.
Every value in it came from a customer, a marketplace or a courier: the HTML escapes all of it, links only
http(s) addresses, and the text part flattens line breaks so a name cannot forge a line of its own.
"""

from __future__ import annotations

import heapq
import html
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from tracker.estimates import human_span
from tracker.status import FINAL, ShipmentStatus

ProblemKind = Literal["exception", "failed_attempt", "delayed", "returned", "expired"]

# Most urgent first. An exception needs an action (customs papers, a damage claim) before the parcel moves
# again; after a failed attempt the customer may need a nudge before the parcel goes back; a delay calls
# for a word with the courier; returned and expired parcels are over: refund or reship, no clock running.
KINDS: tuple[ProblemKind, ...] = ("exception", "failed_attempt", "delayed", "returned", "expired")

HEADINGS: dict[str, str] = {
    "exception": "Exceptions: held, damaged, refused or stopped at customs",
    "failed_attempt": "Failed delivery attempts",
    "delayed": "Delayed: no courier news for longer than usual",
    "returned": "Returned to sender",
    "expired": "Expired: no courier news for so long that tracking stopped",
}
# (one, several), for the subject line: "3 parcels need attention: 1 exception, 2 delayed".
COUNT_WORDS: dict[str, tuple[str, str]] = {
    "exception": ("exception", "exceptions"),
    "failed_attempt": ("failed attempt", "failed attempts"),
    "delayed": ("delayed", "delayed"),
    "returned": ("returned", "returned"),
    "expired": ("expired", "expired"),
}
# A shipment's status → its problem; any other live status is a problem only once it is delayed.
PROBLEM_OF_STATUS: dict[ShipmentStatus, ProblemKind] = {
    ShipmentStatus.EXCEPTION: "exception",
    ShipmentStatus.FAILED_ATTEMPT: "failed_attempt",
    ShipmentStatus.RETURNED: "returned",
    ShipmentStatus.EXPIRED: "expired",
}
MAX_PER_KIND = 50  # a courier's bad day can strand hundreds: list the oldest, count the rest


def classify(status: ShipmentStatus | str, delayed: bool) -> ProblemKind | None:
    """The problem a shipment shows, or None. Its status wins over a delay: an exception is more urgent."""
    status = ShipmentStatus(status)
    kind = PROBLEM_OF_STATUS.get(status)
    if kind is None and delayed and status not in FINAL:
        kind = "delayed"
    return kind


@dataclass(frozen=True, slots=True)
class ProblemShipment:
    order_number: str
    customer_name: str
    tracking_number: str
    courier: str
    status: ShipmentStatus
    problem: ProblemKind
    since: datetime  # aware: when the problem began (the event that caused it, or the last news)
    detail: str  # the courier's description, or estimates.check_delay's reason
    tracking_url: str

    def __post_init__(self) -> None:
        if self.problem not in KINDS:  # a typo here would silently drop the parcel from the digest
            raise ValueError(f"unknown problem {self.problem!r}; expected one of {', '.join(KINDS)}")
        if self.since.tzinfo is None:
            raise ValueError(f"since must be an aware datetime, got {self.since!r}")
        object.__setattr__(self, "status", ShipmentStatus(self.status))


@dataclass(frozen=True, slots=True)
class Digest:
    subject: str
    text: str
    html: str


def build_digest(shop_name: str, problems: Iterable[ProblemShipment], now: datetime) -> Digest | None:
    """Group by problem, most urgent first; within a group the longest-waiting parcel first. Only the
    MAX_PER_KIND listed per group are kept while reading (the rest are counted), so a courier's very bad day
    costs no more memory than a normal one."""
    counts: dict[str, int] = dict.fromkeys(KINDS, 0)
    kept: dict[str, list[ProblemShipment]] = {kind: [] for kind in KINDS}
    for problem in problems:
        counts[problem.problem] += 1
        items = kept[problem.problem]
        items.append(problem)
        if len(items) >= 2 * MAX_PER_KIND:
            kept[problem.problem] = heapq.nsmallest(MAX_PER_KIND, items, key=_order)
    groups = {kind: Group(counts[kind], heapq.nsmallest(MAX_PER_KIND, items, key=_order))
              for kind, items in kept.items() if counts[kind]}
    if not groups:
        return None
    return Digest(_subject(shop_name, groups), _text(shop_name, groups, now), _html(shop_name, groups, now))


def _order(problem: ProblemShipment) -> tuple[datetime, str, str]:
    return (problem.since, problem.order_number, problem.tracking_number)


@dataclass(frozen=True, slots=True)
class Group:
    count: int  # every parcel with this problem
    listed: list[ProblemShipment]  # the MAX_PER_KIND longest waiting, longest first


def _line(value: str) -> str:
    """One line of plain text: newlines and runs of whitespace collapse to single spaces."""
    return " ".join(value.split())


def _headline(groups: dict[str, Group]) -> str:
    total = sum(group.count for group in groups.values())
    parcels = "1 parcel needs" if total == 1 else f"{total} parcels need"
    counts = ", ".join(f"{group.count} {COUNT_WORDS[kind][group.count != 1]}" for kind, group in groups.items())
    return f"{parcels} attention: {counts}"


def _subject(shop_name: str, groups: dict[str, Group]) -> str:
    return f"[{_line(shop_name)}] {_headline(groups)}"


def _status(problem: ProblemShipment) -> str:
    """The canonical name ("Exception", "In transit"): status.LABELS is the customer's wording, where an
    exception reads "Delayed" and would blur the merchant's groups."""
    return problem.status.value.replace("_", " ").capitalize()


def _when(problem: ProblemShipment, now: datetime) -> str:
    return f"{problem.since.astimezone(UTC):%Y-%m-%d %H:%M} UTC ({human_span(now - problem.since)} ago)"


def _text(shop_name: str, groups: dict[str, Group], now: datetime) -> str:
    out = [f"{_line(shop_name)}: {_headline(groups)}", f"Daily digest, {now.astimezone(UTC):%Y-%m-%d}", ""]
    for kind, group in groups.items():
        out += [f"{HEADINGS[kind]} ({group.count})", ""]
        for p in group.listed:
            out.append(f"- Order {_line(p.order_number)} · {_line(p.customer_name)} · {_line(p.courier)} "
                       f"{_line(p.tracking_number)} · {_status(p)} since {_when(p, now)}")
            out += [f"  {_line(text)}" for text in (p.detail, p.tracking_url) if _line(text)]
        if group.count > len(group.listed):
            out.append(f"…and {group.count - len(group.listed)} more")
        out.append("")
    out.append("Sent once a day by trackmail; a day with nothing to report sends nothing.")
    return "\n".join(out) + "\n"


def _safe_url(url: str) -> str:
    """The address if it is http(s), else "" (no javascript: or data: links in the merchant's inbox)."""
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return ""
    return url.strip() if scheme in ("http", "https") else ""


def _row(p: ProblemShipment, now: datetime) -> str:
    e = html.escape
    parcel = e(f"{p.courier} {p.tracking_number}")
    url = _safe_url(p.tracking_url)
    if url:
        parcel = f'<a href="{e(url)}">{parcel}</a>'
    cells = (e(p.order_number), e(p.customer_name), parcel, e(f"{_status(p)} since {_when(p, now)}"),
             e(p.detail))
    return "<tr>" + "".join(f'<td style="{CELL}">{cell}</td>' for cell in cells) + "</tr>"


CELL = "padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top;text-align:left"


def _html(shop_name: str, groups: dict[str, Group], now: datetime) -> str:
    e = html.escape
    out = ['<!doctype html><html><body style="font-family:Arial,sans-serif;font-size:14px;color:#222">',
           f"<h1 style=\"font-size:20px\">{e(shop_name)}: {e(_headline(groups))}</h1>",
           f"<p>Daily digest, {now.astimezone(UTC):%Y-%m-%d}</p>"]
    head = "".join(f'<th style="{CELL}">{name}</th>' for name in ("Order", "Customer", "Parcel", "Status", "Detail"))
    for kind, group in groups.items():
        out.append(f'<h2 style="font-size:16px">{e(HEADINGS[kind])} ({group.count})</h2>')
        out.append(f'<table style="border-collapse:collapse"><tr>{head}</tr>')
        out += [_row(p, now) for p in group.listed]
        out.append("</table>")
        if group.count > len(group.listed):
            out.append(f"<p>…and {group.count - len(group.listed)} more</p>")
    out.append("<p style=\"color:#777\">Sent once a day by trackmail; a day with nothing to report sends nothing."
               "</p></body></html>")
    return "\n".join(out) + "\n"
