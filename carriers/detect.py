"""Which courier carries a parcel, from what a marketplace tells us: a free-text courier name, a number.

Marketplaces write courier names by hand or from their own lists ("UPS", "fedex ground", "Deutsche Post
DHL", "DHL Intraship (DE)") and sometimes write none. So there are two steps, each answering with a reason a
merchant can read:

1. the name, normalised (accents and punctuation dropped, lower case, spaces squeezed), looked up in
   `ALIASES`, a literal table a reviewer can read line by line;
2. only when the name is missing, generic ("Other") or unknown: the number's format, from `FORMATS`.

A number that fits the formats of several couriers is *ambiguous* and gets no courier: a wrong guess would
poll the wrong API for weeks and tell the customer nothing, a missing one shows up as a problem to fix.

Names of couriers we have no adapter for (GLS, Royal Mail, ...) map to their own type, so their numbers are
never misread as another courier's (a 12-digit GLS number fits FedEx's format) and an aggregator account
can take them (see `carriers.explain_courier`).

Number formats and where they are published (check digits verified against the sources' sample numbers):

- UPS: ``1Z`` + 6 shipper + 2 service + 7 package + 1 check character; check = mod 10 of the 15 characters
  after ``1Z``, letters as ``(ord(c) - 3) % 10``, every second one doubled (jkeen/tracking_number_data
  couriers/ups.json and CHECKSUM_ALGORITHMS.md; paketda.de "Prüfziffer UPS"). Other UPS formats (Mail
  Innovations, freight) are not detected.
- FedEx (jkeen/tracking_number_data couriers/fedex.json, after FedEx's label specifications): Express 12
  digits, weights 3,1,7 repeated, sum mod 11 mod 10; Ground 15 digits, mod 10 with every second digit
  tripled; Ground "96" 22 digits, the same mod 10 over the last 14 data digits; Ground Economy (SmartPost)
  20 digits, the USPS mod 10 of the number with ``92`` in front (it is an IMpb without its prefix). Its
  22-digit ``92…`` form is a USPS IMpb and is detected as USPS, which tracks it too.
- USPS: IMpb 20–22 digits starting 92, 93, 94 or 95, GS1 mod 10 (rightmost data digit ×3, then ×1
  alternating; USPS Publication 199, "MOD 10 check digit"); UPU S10 ``AA123456789US`` with the S10 mod 11
  check (weights 8,6,4,2,3,5,9,7; UPU standard S10).
- DHL: Express 10 digits, check = first 9 digits mod 7 (jkeen couriers/dhl.json; paketda.de "Prüfziffer
  DHL Express 10-stellig"); Paket 12 digits (Identcode), mod 10 with weights 4,9 alternating (activebarcode
  "Identcode"; checks paketda.de's example 201298452277); Paket 20 digits, the NVE = GS1 SSCC with its
  application identifier ``00`` in front, GS1 mod 10 (paketda.de "20-stellige DHL-Paketnummern");
  ``JJD…`` and ``JVGL…`` piece numbers (dhl.com "tracking ID labels"; no check digit); UPU S10 numbers
  issued by Deutsche Post (``…DE``), which DHL's tracking API answers for as well.
- sandbox: ``SB…`` numbers that `carriers.sandbox_numbers.parse_tracking_number` accepts.

Known collision: 12 digits can pass both the FedEx and the DHL Paket check (paketda.de's own DHL example
does), and then only a courier name decides.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from carriers.sandbox_numbers import parse_tracking_number


@dataclass(frozen=True, slots=True)
class Detection:
    """A courier type, or None with the reason why not (shown to the merchant, so it says what to fix)."""

    courier_type: str | None
    reason: str


# ── Names ─────────────────────────────────────────────────────────────────────────────────────────────────
# Courier type → the names marketplaces write for it, already normalised (see `normalize_name`). Sources:
# Shopify's supported `tracking_company` list (FulfillmentTrackingInfo.company), the WooCommerce Shipment
# Tracking extension's provider list (names and their slugs: "DHL Intraship (DE)" / "dhl-intraship-de"),
# and the product names shops paste ("USPS Priority Mail", "FedEx Home Delivery").
NAMES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "dhl": (
        "dhl", "dhl express", "dhl express worldwide", "dhl ecommerce", "dhl e commerce", "dhl ecommerce asia",
        "dhl ecommerce solutions", "dhl global mail", "dhl parcel", "dhl parcel uk", "dhl parcel nl",
        "dhl paket", "dhl paket international", "dhl warenpost", "dhl germany", "dhl de", "dhl intraship de",
        "dhl at", "dhl cz", "dhl se", "dhl us", "deutsche post", "deutsche post de", "deutsche post en",
        "deutsche post dhl", "deutsche post dhl group",
    ),
    "ups": (
        "ups", "united parcel service", "ups ground", "ups ground saver", "ups standard", "ups express",
        "ups express saver", "ups worldwide express", "ups worldwide saver", "ups worldwide expedited",
        "ups next day air", "ups next day air saver", "ups 2nd day air", "ups 3 day select", "ups surepost",
        "ups mail innovations", "ups germany", "ups netherlands", "ups se",
    ),
    "fedex": (
        "fedex", "fed ex", "federal express", "fedex ground", "fedex home delivery", "fedex express",
        "fedex express saver", "fedex 2day", "fedex first overnight", "fedex priority overnight",
        "fedex standard overnight", "fedex international priority", "fedex international economy",
        "fedex smartpost", "fedex ground economy",
    ),
    "usps": (
        "usps", "u s p s", "united states postal service", "us postal service", "u s postal service",
        "usps priority mail", "usps priority mail express", "usps priority mail international",
        "usps first class mail", "usps first class package", "usps first class package international",
        "usps ground advantage", "usps parcel select", "usps media mail", "stamps com", "stamps com usps",
    ),
    "sandbox": ("sandbox", "sandbox express"),
    # Couriers without an adapter: their own type keeps their numbers from being read as someone else's.
    "amazon": ("amazon", "amazon logistics", "amazon logistics us", "amazon logistics uk", "amazon shipping"),
    "australia-post": ("australia post", "auspost"),
    "canada-post": ("canada post", "postes canada"),
    "dpd": ("dpd", "dpd de", "dpd uk", "dpd co uk", "dpd local", "dpd at", "dpd cz", "dpd ie", "dpd nl",
            "dpd pl", "dpd romania", "interlink"),
    "evri": ("evri", "myhermes", "myhermes uk", "hermes uk"),
    "fedex-sameday": ("fedex sameday",),  # FedEx SameDay City has its own tracking, not FedEx's Track API
    "gls": ("gls", "gls de", "gls us"),
    "hermes": ("hermes", "hermes de", "hermesworld"),
    "la-poste": ("la poste", "colissimo"),
    "ontrac": ("ontrac",),
    "postnl": ("postnl",),
    "purolator": ("purolator",),
    "royal-mail": ("royal mail", "parcelforce", "parcelforce worldwide"),
    "tnt": ("tnt", "tnt express"),
}

ALIASES: dict[str, str] = {alias: kind for kind, names in NAMES_BY_TYPE.items() for alias in names}

# Names that say nothing about the courier: treated as no name at all.
GENERIC_NAMES = frozenset({"", "other", "others", "custom", "custom carrier", "unknown", "none", "n a", "null"})


def normalize_name(name: str | None) -> str:
    """'Deutsche Post (DHL)', 'deutsche-post-dhl' and 'Deutsche  Post DHL®' all become 'deutsche post dhl'."""
    flat = unicodedata.normalize("NFKD", name or "")
    ascii_only = "".join(c for c in flat if not unicodedata.combining(c)).lower()
    return " ".join(re.split(r"[^a-z0-9]+", ascii_only)).strip()


def courier_from_name(name: str | None) -> Detection:
    spoken = normalize_name(name)
    if spoken in GENERIC_NAMES:
        return Detection(None, "no courier name given" if not spoken else f"courier name {name!r} names no courier")
    kind = ALIASES.get(spoken)
    if kind is None:
        return Detection(None, f"courier name {name!r} is not a known courier name")
    return Detection(kind, f"courier name {name!r} means {kind}")


# ── Numbers ───────────────────────────────────────────────────────────────────────────────────────────────


def _mod10(data: str, even: int, odd: int) -> int:
    """The mod-10 check digit with weights by position from the left (0-based even / odd)."""
    total = 0
    for i, c in enumerate(data):
        value = int(c) if c.isdigit() else (ord(c) - 3) % 10
        total += value * (odd if i % 2 else even)
    return (10 - total % 10) % 10


def _gs1(number: str) -> bool:
    """GS1 / USPS mod 10: from the right, data digits weigh 3, 1, 3, ..."""
    data = number[:-1]
    first = 3 if len(data) % 2 else 1
    return _mod10(data, first, 4 - first) == int(number[-1])


def _ups(number: str) -> bool:
    return _mod10(number[2:17], 1, 2) == int(number[17]) if number[17].isdigit() else False


def _fedex_express(number: str) -> bool:
    weights = (3, 1, 7, 3, 1, 7, 3, 1, 7, 3, 1)
    return sum(int(c) * w for c, w in zip(number[:11], weights, strict=True)) % 11 % 10 == int(number[11])


def _fedex_ground(number: str) -> bool:
    return _mod10(number[-15:-1], 1, 3) == int(number[-1])


def _dhl_express(number: str) -> bool:
    return int(number[:9]) % 7 == int(number[9])


def _dhl_identcode(number: str) -> bool:
    return _mod10(number[:11], 4, 9) == int(number[11])


def _s10(number: str) -> bool:
    total = sum(int(c) * w for c, w in zip(number[2:10], (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    return {10: 0, 11: 5}.get(check, check) == int(number[10])


def _any(_number: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class NumberFormat:
    courier_type: str
    label: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool]  # the check digit, or `_any` where the format has none


FORMATS: tuple[NumberFormat, ...] = (
    NumberFormat("ups", "UPS 1Z number", re.compile(r"1Z[0-9A-Z]{16}"), _ups),
    NumberFormat("fedex", "FedEx Express 12 digits", re.compile(r"\d{12}"), _fedex_express),
    NumberFormat("fedex", "FedEx Ground 15 digits", re.compile(r"\d{15}"), _fedex_ground),
    NumberFormat("fedex", "FedEx Ground 96 (22 digits)", re.compile(r"96\d{20}"), _fedex_ground),
    NumberFormat("fedex", "FedEx Ground Economy 20 digits", re.compile(r"\d{20}"), lambda n: _gs1("92" + n)),
    NumberFormat("usps", "USPS IMpb", re.compile(r"9[2-5]\d{18,20}"), _gs1),
    NumberFormat("usps", "UPU S10 number of USPS", re.compile(r"[A-Z]{2}\d{9}US"), _s10),
    NumberFormat("dhl", "DHL Express 10 digits", re.compile(r"\d{10}"), _dhl_express),
    NumberFormat("dhl", "DHL Paket 12 digits", re.compile(r"\d{12}"), _dhl_identcode),
    NumberFormat("dhl", "DHL Paket 20 digits (SSCC)", re.compile(r"00\d{18}"), _gs1),
    NumberFormat("dhl", "DHL JJD piece number", re.compile(r"JJD\d{9,21}"), _any),
    NumberFormat("dhl", "DHL JVGL piece number", re.compile(r"JVGL\d{9,21}"), _any),
    NumberFormat("dhl", "UPU S10 number of Deutsche Post", re.compile(r"[A-Z]{2}\d{9}DE"), _s10),
    NumberFormat("sandbox", "sandbox number", re.compile(r"SB\d{13}[A-Z]{2}"),
                 lambda n: parse_tracking_number(n) is not None),
)


def _labels(formats: list[NumberFormat]) -> str:
    return " or ".join(f"{f.label} ({f.courier_type})" for f in formats)


def courier_from_number(number: str) -> Detection:
    """The one courier whose format and check digit fit the number; None if none or several do."""
    plain = "".join(number.split()).upper()
    shaped = [f for f in FORMATS if f.pattern.fullmatch(plain)]
    fitting = [f for f in shaped if f.check(plain)]
    kinds = sorted({f.courier_type for f in fitting})
    if len(kinds) == 1:
        return Detection(kinds[0], f"number {number!r} fits {_labels(fitting)}")
    if kinds:
        return Detection(None, f"number {number!r} is ambiguous: it fits {_labels(fitting)}; "
                               "give the courier name to decide")
    if shaped:
        return Detection(None, f"number {number!r} looks like {_labels(shaped)} but its check digit does not "
                               "fit: mistyped?")
    return Detection(None, f"number {number!r} fits no known tracking number format")


def detect_courier(name: str | None, number: str) -> Detection:
    """By the courier name first (the marketplace knows what it shipped with), else by the number."""
    by_name = courier_from_name(name)
    if by_name.courier_type is not None:
        return by_name
    by_number = courier_from_number(number)
    return Detection(by_number.courier_type, f"{by_name.reason}; {by_number.reason}")
