"""DHL's literal tables, kept apart from the parser in carriers/dhl.py so a new code or phrase is a data edit.

Sources: the Shipment Tracking – Unified API reference (developer.dhl.com, ``statusCode``), DHL Paket's event
texts as seen in shared/carrier-samples (section 1), and IANA's zone.tab for the countries with one zone.
"""

from __future__ import annotations

from tracker.status import ShipmentStatus

S = ShipmentStatus

# ── DHL's own codes (status.statusCode and events[].statusCode) → canonical status ───────────────────────────

STATUS_CODES: dict[str, ShipmentStatus] = {
    "pre-transit": S.INFO_RECEIVED,  # announced electronically / label created, not yet handed over
    "transit": S.IN_TRANSIT,  # moving, incl. out for delivery, held, customs (refined by TEXT_REFINEMENTS)
    "delivered": S.DELIVERED,  # delivered
    "failure": S.EXCEPTION,  # delivery failed / returned / exception (refined by TEXT_REFINEMENTS)
    "unknown": S.UNKNOWN,  # DHL itself cannot say
}

# ── Event texts that say more than `transit` / `failure` → canonical status ──────────────────────────────────
# Matched case-insensitively as substrings of the event's `description` and `status`; the first phrase that
# matches wins. Only texts that leave no doubt: a parcel "brought to" or "on its way to" a Filiale/Packstation,
# or posted by the sender at a Filiale, is NOT ready for pickup and stays in transit.

REFINED_CODES = frozenset({"transit", "failure"})
TEXT_REFINEMENTS: dict[str, ShipmentStatus] = {
    # "Die Sendung liegt in der Filiale / Packstation … zur Abholung bereit."
    "zur abholung bereit": S.AVAILABLE_FOR_PICKUP,
    # "The shipment is ready for pick-up at the PACKSTATION / retail outlet …"
    "ready for pick-up at": S.AVAILABLE_FOR_PICKUP,
    "ready for pickup at": S.AVAILABLE_FOR_PICKUP,
    # "The shipment is available for pick-up from …"
    "available for pick-up": S.AVAILABLE_FOR_PICKUP,
    "available for pickup": S.AVAILABLE_FOR_PICKUP,
    # "Die Sendung wurde in das Zustellfahrzeug geladen. Die Zustellung erfolgt voraussichtlich heute." (sample)
    "in das zustellfahrzeug geladen": S.OUT_FOR_DELIVERY,
    # the same DHL Paket event in English: "The shipment has been loaded onto the delivery vehicle"
    "loaded onto the delivery vehicle": S.OUT_FOR_DELIVERY,
    "out for delivery": S.OUT_FOR_DELIVERY,
}

# ── Countries with exactly one time zone (IANA zone.tab; DE's Busingen keeps Berlin's offsets) ─────────────────
# Offset-less DHL times in these countries are read as local time there; anywhere else as UTC.

COUNTRY_ZONES: dict[str, str] = {
    "AT": "Europe/Vienna", "BE": "Europe/Brussels", "BG": "Europe/Sofia", "CH": "Europe/Zurich",
    "CZ": "Europe/Prague", "DE": "Europe/Berlin", "DK": "Europe/Copenhagen", "EE": "Europe/Tallinn",
    "FI": "Europe/Helsinki", "FR": "Europe/Paris", "GB": "Europe/London", "GR": "Europe/Athens",
    "HR": "Europe/Zagreb", "HU": "Europe/Budapest", "IE": "Europe/Dublin", "IT": "Europe/Rome",
    "LI": "Europe/Vaduz", "LT": "Europe/Vilnius", "LU": "Europe/Luxembourg", "LV": "Europe/Riga",
    "NL": "Europe/Amsterdam", "NO": "Europe/Oslo", "PL": "Europe/Warsaw", "RO": "Europe/Bucharest",
    "SE": "Europe/Stockholm", "SI": "Europe/Ljubljana", "SK": "Europe/Bratislava", "TR": "Europe/Istanbul",
    "AE": "Asia/Dubai", "HK": "Asia/Hong_Kong", "IL": "Asia/Jerusalem", "IN": "Asia/Kolkata",
    "JP": "Asia/Tokyo", "KR": "Asia/Seoul", "SG": "Asia/Singapore",
}
