"""Follow-up flows: what to send after a trigger, how long after, on which conditions, and what follows.

```toml
[[flows]]
name = "coupon"
trigger = "delivered"          # the order's last parcel arrived; or "order_created"
delay = "14d"                  # or "10bd": business days of the shop's calendar
send_at = "10:00"              # optional: the customer's local time of day
kind = "resell_coupon"         # a built-in kind, or your own template name (kind.mjml + kind.txt)
conditions = ["all_delivered", "not_refunded", "no_reorder"]
[flows.then]                   # optional next step, timed from when this one was sent
delay = "7d"
kind = "coupon_reminder"
conditions = ["coupon_unused", "no_reorder"]
```

Conditions are checked when the email falls due, not when it is planned: a customer who returns the parcel
or reorders in between gets nothing. Marketing flows also need consent, room under the frequency cap and the
customer's daytime (emails/policy.py). Without `[[flows]]` the built-in feedback request and coupon (with a
reminder) run, timed by `[emails] feedback_after` and `coupon_after`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time, timedelta

from tracker.calendar import Delay, parse_business_days
from tracker.settings import Section, parse_duration

TRIGGERS = ("delivered", "order_created")
CONDITIONS = {
    "all_delivered": "every parcel of the order was delivered (none returned, lost or stuck in an exception)",
    "not_refunded": "the order was not refunded",
    "no_reorder": "the customer has not ordered again since the trigger",
    "coupon_unused": "the coupon of the previous step has not been redeemed",
    "no_click": "no link in the previous step's email was clicked",
    "clicked": "a link in the previous step's email was clicked",
    "no_recent": "no_recent:<kind>:<duration>: the customer got no <kind> email within <duration>",
}


@dataclass(frozen=True)
class Condition:
    name: str
    kind: str = ""  # for no_recent
    within: timedelta = timedelta(0)

    def __str__(self) -> str:
        return f"no_recent:{self.kind}:{self.within}" if self.name == "no_recent" else self.name


@dataclass(frozen=True)
class Step:
    kind: str
    delay: Delay
    conditions: tuple[Condition, ...] = ()
    send_at: time | None = None


@dataclass(frozen=True)
class Flow:
    name: str
    trigger: str
    steps: tuple[Step, ...]
    marketing: bool = True


def parse_condition(section: Section, text: str) -> Condition:
    name, _, rest = text.partition(":")
    if name not in CONDITIONS:
        known = "; ".join(f"{k}: {v}" for k, v in CONDITIONS.items())
        raise section.error("conditions", f"unknown condition {text!r}; known: {known}")
    if name != "no_recent":
        if rest:
            raise section.error("conditions", f"{name} takes no argument")
        return Condition(name)
    kind, _, within = rest.partition(":")
    try:
        return Condition(name, kind, parse_duration(within))
    except ValueError:
        raise section.error("conditions", f"{text!r}: write no_recent:<kind>:<duration>, e.g. "
                                          "no_recent:feedback_request:30d") from None


def parse_delay(section: Section, key: str = "delay") -> Delay:
    value = section.data.get(key, "0d")
    business = parse_business_days(value) if isinstance(value, str) else None
    if business is not None:
        return Delay(business_days=business)
    return Delay(calendar=section.duration(key, "0d"))


def _send_at(section: Section) -> time | None:
    if "send_at" not in section.data:
        return None
    text = section.str("send_at")
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise section.error("send_at", f"{text!r} is not a time of day like '10:00'") from None


def _step(section: Section, known_kinds: set[str]) -> list[Step]:
    section.check_keys({"name", "trigger", "marketing", "delay", "send_at", "kind", "conditions", "then"})
    kind = section.str("kind")
    if kind not in known_kinds:
        raise section.error("kind", f"no template for {kind!r}: use a built-in kind or add {kind}.mjml and "
                                    f"{kind}.txt to the shop's templates_dir")
    conditions = tuple(parse_condition(section, c) for c in section.strings("conditions", []))
    steps = [Step(kind, parse_delay(section), conditions, _send_at(section))]
    if "then" in section.data:
        steps += _step(section.table("then"), known_kinds)
    return steps


def parse_flows(file: object, entries: list, known_kinds: set[str]) -> tuple[Flow, ...]:
    flows, names = [], set()
    for index, entry in enumerate(entries):
        section = Section(file, f"flows[{index}]", entry if isinstance(entry, dict) else {})
        name = section.str("name")
        if name in names:
            raise section.error("name", f"two flows are named {name!r}")
        names.add(name)
        trigger = section.str("trigger")
        if trigger not in TRIGGERS:
            raise section.error("trigger", f"unknown trigger {trigger!r}; known: {', '.join(TRIGGERS)}")
        flows.append(Flow(name, trigger, tuple(_step(section, known_kinds)), section.bool("marketing", True)))
    return tuple(flows)


def builtin_flows(feedback_after: timedelta, coupon_after: timedelta) -> tuple[Flow, ...]:
    """The follow-ups every shop gets unless it writes its own [[flows]]."""
    morning = time(10)
    return (
        Flow("feedback", "delivered", (
            Step("feedback_request", Delay(calendar=feedback_after),
                 (Condition("all_delivered"), Condition("not_refunded"),
                  Condition("no_recent", "feedback_request", timedelta(days=30))), morning),)),
        Flow("coupon", "delivered", (
            Step("resell_coupon", Delay(calendar=coupon_after),
                 (Condition("all_delivered"), Condition("not_refunded"), Condition("no_reorder")), morning),
            Step("coupon_reminder", Delay(calendar=timedelta(days=7)),
                 (Condition("coupon_unused"), Condition("no_reorder")), morning),
        )),
    )
