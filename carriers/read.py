"""Strict readers for decoded JSON (or CSV) payloads, shared by every adapter.

A courier or a shop answers with whatever it answers: every value an adapter takes out of a payload goes
through one of these, so a wrong type or an unreadable time is a `Malformed` naming the field (never a
KeyError or a TypeError deep in a parser), and each adapter keeps only its own quirks. Each adapter turns
`Malformed` into its own seam error (a ResponseError naming the number, an order the feed reports).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

DUMP_CHARS = 2000


class Malformed(ValueError):
    """A payload value not in its documented shape. `problem` says which and why; `fragment` is the part of
    the payload it was found in, for the error's excerpt."""

    def __init__(self, problem: str, fragment: Any = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fragment = fragment


def dump(fragment: Any, limit: int = DUMP_CHARS) -> str:
    """A payload fragment as JSON text for an error's excerpt (repr for what JSON cannot hold)."""
    try:
        return json.dumps(fragment, ensure_ascii=False, default=str)[:limit]
    except (TypeError, ValueError):
        return repr(fragment)[:limit]


def kind_of(value: Any) -> str:
    return type(value).__name__


def text(value: Any, what: str = "value", *, strict: bool = True, numbers: tuple[type, ...] = ()) -> str:
    """A string, stripped; None is "". A number of one of `numbers` (never a bool) is written out. Anything
    else is Malformed, or "" when not `strict` (fields an adapter only shows, never relies on)."""
    if isinstance(value, str):
        return value.strip()
    if value is None:
        return ""
    if numbers and isinstance(value, numbers) and not isinstance(value, bool):
        return str(value)
    if strict:
        raise Malformed(f"{what} is {kind_of(value)}, expected text", value)
    return ""


def loose_text(value: Any) -> str:
    """A string, stripped; anything else is "". For fields read on every event that are only shown, where
    `text(value, strict=False)`'s extra checks cost a measurable share of a parse."""
    return value.strip() if isinstance(value, str) else ""


def obj(value: Any, what: str = "value", *, optional: bool = False, strict: bool = True) -> Mapping[str, Any]:
    """A JSON object. `optional`: a missing one (None, or PHP's empty array []) is {}. Not `strict`: any
    non-object is {}."""
    if type(value) is dict or isinstance(value, Mapping):  # decoded JSON is a dict: the cheap test first
        return value
    if (optional and (value is None or (isinstance(value, list) and not value))) or not strict:
        return {}
    raise Malformed(f"{what} is {kind_of(value)}, expected an object", value)


def items(value: Any, what: str = "value", *, optional: bool = False, strict: bool = True) -> list[Any]:
    """A JSON array. `optional`: a missing one (None) is []. Not `strict`: any non-array is []."""
    if type(value) is list or isinstance(value, list):
        return value
    if (optional and value is None) or not strict:
        return []
    raise Malformed(f"{what} is {kind_of(value)}, expected a list", value)


def field(node: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str, *,
          required: bool = False) -> Any:
    """`node[key]` if it is of `kind` (a bool never counts as a number); None when absent and not required."""
    value = node.get(key)
    if value is None:
        if required:
            raise Malformed(f"{what}.{key} is missing", node)
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Malformed(f"{what}.{key} has the wrong type ({kind_of(value)})", node)
    return value


def money(value: Any, what: str = "amount") -> Decimal:
    """A finite decimal amount from a string or a JSON number (a float keeps the digits the JSON had)."""
    if value is None or value == "":
        raise Malformed(f"{what} is missing", value)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Malformed(f"{what} {value!r} is not an amount", value)
    written = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        amount = Decimal(written)
    except InvalidOperation:
        raise Malformed(f"{what} {value!r} is not an amount", value) from None
    if not amount.is_finite():
        raise Malformed(f"{what} {value!r} is not an amount", value)
    return amount


def iso_time(value: Any, what: str = "time") -> datetime:
    """An ISO 8601 time as written: aware when it carries an offset, naive when not (for couriers that say the
    zone elsewhere; `aware_utc` is what most adapters want)."""
    written = value.strip() if isinstance(value, str) else None
    if written:
        try:
            return datetime.fromisoformat(written)
        except ValueError:
            raise Malformed(f"{what} {value!r} is not an ISO 8601 time", value) from None
    if isinstance(value, datetime):
        return value
    raise Malformed(f"{what} is missing" if value in (None, "") or written == "" else
                    f"{what} {value!r} is not a time", value)


def aware_utc(value: Any, what: str = "time", *, naive: tzinfo = UTC) -> datetime:
    """An ISO 8601 time (text, or a datetime) as aware UTC; one without an offset is read in `naive`'s zone."""
    try:  # the common case first, with no stripping or checks: this runs for every event of every parse
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        moment = iso_time(value, what)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=naive)
    return moment.astimezone(UTC)
