"""The sandbox's geography and tracking numbers: a number names its parcel's destination, so the courier can
rebuild the parcel from the number alone and shares nothing with the shop.

Tracking numbers look like ``SB2901369252465DE``: ``SB``, the label time in minutes since the Unix epoch
(8 digits), the destination city's index (1 digit), a parcel serial (3 digits), a mod-11 check digit in the
style of UPU S10 numbers, and the destination country (ISO 3166-1 alpha-2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# ── Geography: shared literal data, so the courier can rebuild a destination from two characters ─────────


@dataclass(frozen=True, slots=True)
class City:
    name: str
    postcode: str  # pattern: '#' a digit, '@' a letter
    utc_offset: int  # hours; fixed, so local mornings need no tz database


@dataclass(frozen=True, slots=True)
class Country:
    code: str
    currency: str
    locale: str
    hub: str
    weight: int  # share of customers
    customs: bool  # outside the EU customs union, seen from the warehouse
    cities: tuple[City, ...]


COUNTRIES: dict[str, Country] = {c.code: c for c in (
    Country("DE", "EUR", "de", "Duisburg", 24, False, (
        City("Berlin", "10###", 1), City("Hamburg", "20###", 1), City("München", "80###", 1),
        City("Köln", "50###", 1), City("Leipzig", "04###", 1), City("Freiburg im Breisgau", "79###", 1),
        City("Dresden", "01###", 1), City("Stuttgart", "70###", 1))),
    Country("AT", "EUR", "de", "Linz", 8, False, (
        City("Wien", "1##0", 1), City("Graz", "80##", 1), City("Salzburg", "50##", 1),
        City("Innsbruck", "60##", 1))),
    Country("FR", "EUR", "fr", "Paris", 18, False, (
        City("Paris", "750##", 1), City("Lyon", "6900#", 1), City("Marseille", "130##", 1),
        City("Toulouse", "310##", 1), City("Nantes", "440##", 1), City("Bordeaux", "330##", 1),
        City("Lille", "590##", 1), City("Strasbourg", "670##", 1))),
    Country("BE", "EUR", "fr", "Bruxelles", 8, False, (
        City("Bruxelles", "10#0", 1), City("Liège", "40##", 1), City("Namur", "50##", 1),
        City("Charleroi", "60##", 1))),
    Country("GB", "GBP", "en", "Coventry", 14, True, (
        City("London", "SW# #@@", 0), City("Manchester", "M# #@@", 0), City("Bristol", "BS# #@@", 0),
        City("Leeds", "LS# #@@", 0), City("Edinburgh", "EH# #@@", 0), City("Cardiff", "CF1# #@@", 0))),
    Country("IE", "EUR", "en", "Dublin", 6, False, (
        City("Dublin", "D0# @#@#", 0), City("Cork", "T12 @#@#", 0), City("Galway", "H91 @#@#", 0),
        City("Limerick", "V94 @#@#", 0))),
    Country("US", "USD", "en", "Louisville", 14, True, (
        City("New York", "100##", -5), City("Chicago", "606##", -6), City("Austin", "787##", -6),
        City("Seattle", "981##", -8), City("Denver", "802##", -7), City("Boston", "021##", -5),
        City("Portland", "972##", -8), City("Atlanta", "303##", -5))),
)}


# ── Tracking numbers ──────────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Parcel:
    """What a tracking number tells the courier."""

    number: str
    label_at: datetime
    country: Country
    city: City


def _check_digit(digits: str) -> str:
    """UPU S10 style mod 11, so a mistyped number is rejected instead of tracked as someone else's."""
    weights = (8, 6, 4, 2, 3, 5, 9, 7)
    total = sum(int(d) * weights[i % len(weights)] for i, d in enumerate(digits))
    check = 11 - total % 11
    return "0" if check == 10 else "5" if check == 11 else str(check)


def make_tracking_number(label_at: datetime, country: str, city_index: int, serial: int) -> str:
    minutes = int(label_at.timestamp()) // 60
    digits = f"{minutes:08d}{city_index % 10}{serial % 1000:03d}"
    return f"SB{digits}{_check_digit(digits)}{country}"


def parse_tracking_number(number: str) -> Parcel | None:
    """The parcel a number describes, or None if it is not a sandbox number."""
    if len(number) != 17 or not number.startswith("SB"):
        return None
    digits, check, code = number[2:14], number[14], number[15:]
    if not (digits + check).isdigit() or _check_digit(digits) != check or code not in COUNTRIES:
        return None
    country = COUNTRIES[code]
    city_index = int(digits[8])
    if city_index >= len(country.cities):
        return None
    label_at = datetime.fromtimestamp(int(digits[:8]) * 60, UTC)
    return Parcel(number, label_at, country, country.cities[city_index])
