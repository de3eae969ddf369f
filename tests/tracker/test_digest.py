"""The merchant's daily digest: nothing on a quiet day, the most urgent problems first, and every value from a
customer, marketplace or courier escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.digest import HEADINGS, KINDS, MAX_PER_KIND, ProblemShipment, build_digest, classify
from tracker.status import FINAL, ShipmentStatus

S = ShipmentStatus
NOW = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
SHOP = "Demo Shop"
STATUS_OF = {"exception": S.EXCEPTION, "failed_attempt": S.FAILED_ATTEMPT, "delayed": S.IN_TRANSIT,
             "returned": S.RETURNED, "expired": S.EXPIRED}


def problem(kind: str, order: str = "#1001", *, name: str = "Ada Lovelace", days_ago: float = 1,
            url: str = "https://track.example.com/sandbox/SB1", detail: str = "Held by customs") -> ProblemShipment:
    return ProblemShipment(order_number=order, customer_name=name, tracking_number=f"SB{order.strip('#')}",
                           courier="sandbox", status=STATUS_OF[kind], problem=kind,  # type: ignore[arg-type]
                           since=NOW - timedelta(days=days_ago), detail=detail, tracking_url=url)


def test_a_quiet_day_sends_no_digest():
    assert build_digest(SHOP, [], NOW) is None
    assert build_digest(SHOP, iter(()), NOW) is None


def test_the_subject_counts_the_parcels_and_each_problem_most_urgent_first():
    digest = build_digest(SHOP, [problem("delayed", "#1"), problem("exception", "#2"), problem("delayed", "#3")], NOW)
    assert digest is not None
    assert digest.subject == "[Demo Shop] 3 parcels need attention: 1 exception, 2 delayed"


def test_one_parcel_reads_in_the_singular():
    digest = build_digest(SHOP, [problem("failed_attempt")], NOW)
    assert digest is not None
    assert digest.subject == "[Demo Shop] 1 parcel needs attention: 1 failed attempt"


def test_a_shop_name_cannot_break_the_subject_onto_a_second_header_line():
    digest = build_digest("Evil\r\nBcc: everyone@example.com", [problem("returned")], NOW)
    assert digest is not None
    assert "\n" not in digest.subject and "\r" not in digest.subject


def test_groups_appear_most_urgent_first_in_both_parts():
    problems = [problem(kind, f"#{i}") for i, kind in enumerate(reversed(KINDS))]
    digest = build_digest(SHOP, problems, NOW)
    assert digest is not None
    assert KINDS == ("exception", "failed_attempt", "delayed", "returned", "expired")
    for part in (digest.text, digest.html):
        positions = [part.index(HEADINGS[kind]) for kind in KINDS]
        assert positions == sorted(positions)
    assert digest.subject.endswith("1 exception, 1 failed attempt, 1 delayed, 1 returned, 1 expired")


def test_within_a_group_the_longest_waiting_parcel_comes_first():
    digest = build_digest(SHOP, [problem("delayed", "#new", days_ago=1), problem("delayed", "#old", days_ago=6),
                                 problem("delayed", "#mid", days_ago=3)], NOW)
    assert digest is not None
    for part in (digest.text, digest.html):
        assert part.index("#old") < part.index("#mid") < part.index("#new")


def test_each_parcel_shows_its_order_customer_parcel_status_age_detail_and_link():
    late = problem("delayed", "#1042", name="Jürgen Müller", days_ago=5,
                   detail="no courier news for 5 days (in transit); usually at most 36 hours on sandbox → DE")
    digest = build_digest(SHOP, [late], NOW)
    assert digest is not None
    assert ("- Order #1042 · Jürgen Müller · sandbox SB1042 · In transit since 2026-03-05 08:00 UTC (5 days ago)\n"
            "  no courier news for 5 days (in transit); usually at most 36 hours on sandbox → DE\n"
            "  https://track.example.com/sandbox/SB1\n") in digest.text
    assert '<a href="https://track.example.com/sandbox/SB1">sandbox SB1042</a>' in digest.html
    assert "Jürgen Müller" in digest.html


def test_the_merchant_sees_canonical_status_names_not_the_customers_wording():
    digest = build_digest(SHOP, [problem("exception")], NOW)  # customers read "Delayed" for an exception
    assert digest is not None
    assert "· Exception since" in digest.text and "Delayed" not in digest.text


def test_hostile_values_are_escaped_in_the_html():
    hostile = problem("exception", '"><img src=x onerror=alert(1)>', name="<script>alert('hi')</script>",
                      detail="Damaged & <b>held</b>", url="https://track.example.com/?a=1&b=<x>")
    digest = build_digest("Shop <i>", [hostile], NOW)
    assert digest is not None
    for raw in ("<script", "<img", "<b>", "<i>", "<x>"):
        assert raw not in digest.html
    assert "&lt;script&gt;alert(&#x27;hi&#x27;)&lt;/script&gt;" in digest.html
    assert "Damaged &amp; &lt;b&gt;held&lt;/b&gt;" in digest.html
    assert 'href="https://track.example.com/?a=1&amp;b=&lt;x&gt;"' in digest.html
    assert "<script>alert('hi')</script>" in digest.text  # plain text shows what the customer typed


@pytest.mark.parametrize("url", ["javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,<b>x</b>", "",
                                 "http://[::1"])
def test_only_http_links_become_links(url):
    digest = build_digest(SHOP, [problem("returned", url=url)], NOW)
    assert digest is not None
    assert "href" not in digest.html
    assert "sandbox SB1001" in digest.html


def test_a_name_with_line_breaks_cannot_forge_a_line_in_the_text():
    forged = problem("delayed", name="Ada\n- Order #666 · Mallory · all fine\n")
    digest = build_digest(SHOP, [forged], NOW)
    assert digest is not None
    assert not any(line.startswith("- Order #666") for line in digest.text.splitlines())
    assert "Ada - Order #666 · Mallory · all fine" in digest.text


def test_a_big_group_lists_the_oldest_and_counts_the_rest():
    many = [problem("delayed", f"#{i}", days_ago=1 + i / 100) for i in range(MAX_PER_KIND + 5)]
    digest = build_digest(SHOP, many, NOW)
    assert digest is not None
    assert digest.subject == f"[Demo Shop] {MAX_PER_KIND + 5} parcels need attention: {MAX_PER_KIND + 5} delayed"
    assert "…and 5 more" in digest.text and "…and 5 more" in digest.html
    assert digest.html.count("<tr><td") == MAX_PER_KIND
    assert f"#{MAX_PER_KIND + 4} " in digest.text and "- Order #0 " not in digest.text  # the oldest are listed


def test_an_unknown_problem_kind_or_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="unknown problem 'late'"):
        problem("delayed").__class__(**{**_fields(problem("delayed")), "problem": "late"})
    with pytest.raises(ValueError, match="aware"):
        problem("delayed").__class__(**{**_fields(problem("delayed")), "since": datetime(2026, 3, 9)})


def _fields(p: ProblemShipment) -> dict:
    return {name: getattr(p, name) for name in p.__slots__}


@pytest.mark.parametrize(("status", "delayed", "kind"), [
    (S.EXCEPTION, False, "exception"), (S.EXCEPTION, True, "exception"),  # the status is the more urgent fact
    (S.FAILED_ATTEMPT, False, "failed_attempt"), (S.RETURNED, False, "returned"), (S.EXPIRED, True, "expired"),
    (S.IN_TRANSIT, True, "delayed"), (S.PENDING, True, "delayed"), (S.OUT_FOR_DELIVERY, True, "delayed"),
    (S.IN_TRANSIT, False, None), (S.AVAILABLE_FOR_PICKUP, False, None), (S.DELIVERED, True, None),
    ("in_transit", True, "delayed"),
])
def test_classify_maps_a_shipment_to_its_problem(status, delayed, kind):
    assert classify(status, delayed) == kind


def test_every_final_status_but_delivered_is_a_problem():
    assert {s for s in FINAL if classify(s, False)} == FINAL - {S.DELIVERED}
