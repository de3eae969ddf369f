"""A coupon's discount as the config writes it: "10%" or an amount like "5.00". Pure, so the config can
check it without loading the outbox."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

_DISCOUNT = re.compile(r"^(\d+(?:\.\d+)?)\s*(%?)$")


@dataclass(frozen=True)
class Discount:
    percent: bool  # True: `value` percent off; False: `value` off in the shop's currency
    value: Decimal

    @property
    def text(self) -> str:
        return f"{self.value:f}"


def parse_discount(text: str) -> Discount:
    """'10%' (more than 0, at most 100) or '5.00' (more than 0); ValueError saying what is wrong."""
    match = _DISCOUNT.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"discount {text!r} is neither a percentage like '10%' nor an amount like '5.00'")
    value, percent = Decimal(match.group(1)), bool(match.group(2))
    if value <= 0 or (percent and value > 100):
        raise ValueError(f"discount {text!r} must be more than 0" + (" and at most 100%" if percent else ""))
    return Discount(percent, value)
