"""Which courier carries a parcel: by the name a marketplace wrote, else by the number's published format,
and never by a guess. Sample numbers are the published examples the check digits were verified against."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from carriers import ALIASES, explain_courier, resolve_courier
from carriers.detect import (
    FORMATS,
    GENERIC_NAMES,
    NAMES_BY_TYPE,
    Detection,
    courier_from_name,
    courier_from_number,
    detect_courier,
    normalize_name,
)
from carriers.sandbox_numbers import make_tracking_number
from tracker.config import AccountSettings
from tracker.settings import Section

ADAPTER_TYPES = {"dhl", "ups", "fedex", "usps", "sandbox"}


# ── Names ─────────────────────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(("name", "kind"), [
    # as marketplaces write them (the brief's examples, Shopify tracking_company, WooCommerce providers/slugs)
    ("UPS", "ups"), ("DHL Express", "dhl"), ("fedex ground", "fedex"), ("Deutsche Post DHL", "dhl"),
    ("USPS Priority Mail", "usps"), ("United States Postal Service", "usps"), ("FedEx Home Delivery", "fedex"),
    ("DHL Paket", "dhl"), ("DHL eCommerce", "dhl"), ("DHL Intraship (DE)", "dhl"), ("dhl-intraship-de", "dhl"),
    ("Deutsche Post (DHL)", "dhl"), ("Fedex", "fedex"), ("UPS Germany", "ups"), ("DHL US", "dhl"),
    ("dhl.at", "dhl"), ("U.S.P.S.", "usps"), ("  FedEx®   Ground ", "fedex"), ("sandbox", "sandbox"),
    # couriers without an adapter keep their own type
    ("GLS", "gls"), ("Royal Mail", "royal-mail"), ("DPD.de", "dpd"), ("Colissimo", "la-poste"),
])
def test_a_courier_name_is_normalised_and_looked_up(name, kind):
    found = courier_from_name(name)
    assert found == Detection(kind, found.reason)
    assert repr(name) in found.reason and kind in found.reason


def test_normalising_drops_case_accents_punctuation_and_extra_spaces():
    assert normalize_name("Deutsche  Post (DHL)®") == "deutsche post dhl"
    assert normalize_name("Česká_pošta") == "ceska posta"
    assert normalize_name(None) == normalize_name("  ") == ""


def test_the_alias_table_is_literal_normalised_and_unambiguous():
    assert len(ALIASES) == sum(len(names) for names in NAMES_BY_TYPE.values()) >= 100, "an alias names 2 types"
    assert all(normalize_name(alias) == alias for alias in ALIASES), "write aliases already normalised"
    assert ADAPTER_TYPES <= set(ALIASES.values())
    assert not GENERIC_NAMES & set(ALIASES)


def test_aftership_is_an_aggregator_not_a_courier_name():
    assert "aftership" not in ALIASES and "aftership" not in ALIASES.values()
    assert courier_from_name("AfterShip").courier_type is None


@pytest.mark.parametrize("name", [None, "", "Other", "custom", "N/A"])
def test_a_missing_or_generic_name_leaves_the_decision_to_the_number(name):
    assert courier_from_name(name).courier_type is None
    assert detect_courier(name, "1Z999AA10123456784").courier_type == "ups"


# ── Numbers ───────────────────────────────────────────────────────────────────────────────────────────────

SANDBOX_NUMBER = make_tracking_number(datetime(2025, 1, 6, 10, 0, tzinfo=UTC), "DE", 0, 1)


@pytest.mark.parametrize(("number", "kind"), [
    ("1Z5R89390357567127", "ups"), ("1Z879E930346834440", "ups"), ("1Z410E7W0392751591", "ups"),
    ("1Z999AA10123456784", "ups"),
    ("986578788855", "fedex"), ("477179081230", "fedex"), ("790535312317", "fedex"),  # Express 12
    ("041441760228964", "fedex"), ("568283610012734", "fedex"),  # Ground 15
    ("9611020987654312345672", "fedex"),  # Ground 96, 22 digits
    ("61299998820821171811", "fedex"),  # Ground Economy (SmartPost), 20 digits
    ("9400111202555842332669", "usps"), ("9505511069605048600624", "usps"), ("9361289878700317633795", "usps"),
    ("9261292700768711948021", "usps"),  # a SmartPost label's IMpb: USPS tracks it
    ("RB123456785US", "usps"),  # UPU S10
    ("3318810025", "dhl"), ("8487135506", "dhl"),  # Express 10
    ("00340433836442636597", "dhl"),  # Paket 20 (SSCC)
    ("JJD0099999999", "dhl"), ("JJD1410302937991", "dhl"), ("JVGL0999999990", "dhl"),
    ("RR123456785DE", "dhl"),  # S10 of Deutsche Post
    (SANDBOX_NUMBER, "sandbox"),
])
def test_published_numbers_are_detected_by_format_and_check_digit(number, kind):
    found = courier_from_number(number)
    assert found.courier_type == kind, found.reason
    assert repr(number) in found.reason


def test_spaces_and_lower_case_in_a_number_do_not_matter():
    assert courier_from_number("1z 999 aa1 01 2345 678 4").courier_type == "ups"
    assert courier_from_number("9400 1112 0255 5842 3326 69").courier_type == "usps"


@pytest.mark.parametrize("number", [
    "1Z5R89390357567128", "1Z1234512345123456", "996578788855", "568283610012732", "9400111202555842332660",
    "3318810010", "RB123456786US", "SB2893596000018DE",
])
def test_a_number_shaped_like_a_format_whose_check_digit_fails_is_not_assigned(number):
    found = courier_from_number(number)
    assert found.courier_type is None
    assert "check digit" in found.reason


def test_a_number_that_fits_two_couriers_is_reported_ambiguous_not_guessed():
    found = courier_from_number("201298452277")  # DHL's published Paket example; FedEx's check fits too
    assert found.courier_type is None
    assert "ambiguous" in found.reason and "(fedex)" in found.reason and "(dhl)" in found.reason


def test_a_name_breaks_the_tie_an_ambiguous_number_leaves():
    assert detect_courier("DHL Paket", "201298452277").courier_type == "dhl"
    assert detect_courier("FedEx", "201298452277").courier_type == "fedex"
    assert detect_courier("", "201298452277").courier_type is None


def test_twenty_digit_numbers_are_never_ambiguous():
    """USPS (92–95…), DHL (00…) and FedEx Ground Economy (92 + number) checks exclude one another."""
    rng = random.Random(20)
    numbers = [p + "".join(rng.choice("0123456789") for _ in range(18)) for p in ("00", "92", "94", "61")
               for _ in range(500)]
    assert not [n for n in numbers if "ambiguous" in courier_from_number(n).reason]


def test_an_unknown_format_says_so():
    assert courier_from_number("XYZ123") == Detection(None, "number 'XYZ123' fits no known tracking number format")


def test_every_format_names_a_courier_type_and_matches_whole_numbers_only():
    assert {f.courier_type for f in FORMATS} == ADAPTER_TYPES
    assert courier_from_number("x1Z999AA10123456784").courier_type is None


# ── Name and number together ──────────────────────────────────────────────────────────────────────────────


def test_the_marketplace_name_wins_over_the_number():
    """Shopify's own sample fulfillment says USPS with a 1Z number: the merchant's word is kept."""
    assert detect_courier("USPS", "1Z1234512345123456").courier_type == "usps"
    assert detect_courier("GLS", "201298452277").courier_type == "gls"  # not read as FedEx or DHL


def test_an_unknown_name_falls_back_to_the_number_and_explains_both():
    found = detect_courier("Acme Logistics", "1Z999AA10123456784")
    assert found.courier_type == "ups"
    assert "'Acme Logistics' is not a known courier name" in found.reason and "UPS 1Z" in found.reason


# ── Choosing an account: resolve_courier / explain_courier ────────────────────────────────────────────────


def accounts(**types: str) -> dict[str, AccountSettings]:
    return {name.replace("_", "-"): AccountSettings(name.replace("_", "-"), kind, "demo",
                                                   Section(Path("config.toml"), f"couriers.{name}", {"type": kind}))
            for name, kind in types.items()}


def test_a_name_that_is_an_account_name_picks_that_account():
    config = accounts(sandbox="sandbox", ups_main="ups")
    assert explain_courier("Sandbox", "anything", config) == ("sandbox", "courier name 'Sandbox' is the account "
                                                                         "'sandbox'")
    assert resolve_courier("ups-main", "201298452277", config) == "ups-main"


def test_an_alias_or_a_number_picks_the_single_account_of_that_type():
    config = accounts(ups_main="ups", dhl_de="dhl")
    assert resolve_courier("UPS Ground", "", config) == "ups-main"
    assert resolve_courier("", "1Z999AA10123456784", config) == "ups-main"
    assert resolve_courier("Other", "00340433836442636597", config) == "dhl-de"
    account, reason = explain_courier("DHL Express", "3318810025", config)
    assert account == "dhl-de" and "'dhl-de' is the dhl account" in reason


def test_two_accounts_of_the_type_are_not_chosen_between():
    account, reason = explain_courier("DHL", "3318810025", accounts(dhl_de="dhl", dhl_express="dhl"))
    assert account is None and "dhl-de, dhl-express" in reason


def test_a_courier_without_an_account_goes_to_the_aggregator_account():
    config = accounts(ups_main="ups", tracking="aftership")
    assert resolve_courier("FedEx", "986578788855", config) == "tracking"
    assert resolve_courier("", "986578788855", config) == "tracking"
    account, reason = explain_courier("GLS", "12345678901", config)
    assert account == "tracking" and "no gls account" in reason
    assert resolve_courier("UPS", "1Z999AA10123456784", config) == "ups-main"  # its own account first


def test_nothing_is_guessed_when_the_courier_is_unknown_or_has_no_account():
    with_aggregator = accounts(ups_main="ups", tracking="aftership")
    assert explain_courier("Pigeon Post", "XYZ123", with_aggregator) == (
        None, "courier name 'Pigeon Post' is not a known courier name; number 'XYZ123' fits no known tracking "
              "number format")
    assert resolve_courier("", "201298452277", with_aggregator) is None  # ambiguous stays ambiguous
    assert resolve_courier("sandbox express", SANDBOX_NUMBER, with_aggregator) is None  # no aggregator knows it
    account, reason = explain_courier("FedEx", "986578788855", accounts(ups_main="ups"))
    assert account is None and "no fedex account under [couriers]" in reason
    two = accounts(a="aftership", b="aftership")
    assert explain_courier("FedEx", "", two)[0] is None and "several aftership" in explain_courier("FedEx", "", two)[1]
