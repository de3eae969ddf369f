"""Every registered adapter keeps the same promises, checked over the registry so a new one is covered
the moment it is registered."""

from __future__ import annotations

import importlib
import inspect
import json
from datetime import UTC
from pathlib import Path

import pytest

import carriers
from carriers.base import CouponIssuer
from tracker.status import ShipmentStatus

FIXTURES = Path(__file__).parent.parent / "fixtures"
# Each real courier's published "delivered" example (tests/fixtures/<type>/, sources in their tests) and the
# tracking number it answers for. A courier registered without one fails test_each_courier_has_a_sample.
DELIVERED_SAMPLES = {
    "dhl": ("dhl-unified-parcel-de-delivered.json", "470800204932"),
    "ups": ("ups-track-v1-delivered-12-events.json", "1ZR760R60332160282"),
    "fedex": ("fedex-track-v1-delivered-ground-17-events.json", "738488882438"),
    "usps": ("usps-v3-tracking-detail-delivered.json", "9400109104250532908587"),
    "aftership": ("aftership-v4-get-tracking-delivered.json", "111111111111"),
}
SIMULATED = {"sandbox"}  # answers from the number alone: no payload to parse

COURIER_MODULES = sorted({inspect.getmodule(f).__name__ for f in carriers.COURIERS.values()})
MARKETPLACE_MODULES = sorted({inspect.getmodule(f).__name__ for f in carriers.MARKETPLACES.values()})


@pytest.mark.parametrize("module_name", COURIER_MODULES)
def test_each_courier_has_a_literal_status_table_of_canonical_statuses(module_name):
    module = importlib.import_module(module_name)
    table = module.STATUS_CODES
    assert isinstance(table, dict) and table, f"{module_name} needs a STATUS_CODES table"
    assert all(isinstance(code, str) and code for code in table)
    assert all(isinstance(status, ShipmentStatus) for status in table.values())
    moving = {s for s in table.values() if s is not ShipmentStatus.UNKNOWN}
    assert moving, "a table must map some codes to statuses that move a shipment"


@pytest.mark.parametrize("module_name", COURIER_MODULES)
def test_each_courier_follows_the_protocol(module_name):
    module = importlib.import_module(module_name)
    classes = [c for _n, c in inspect.getmembers(module, inspect.isclass)
               if c.__module__ == module_name and c.__name__.endswith("Courier")]
    assert classes, f"{module_name} has no *Courier class"
    for cls in classes:
        for member in ("track", "tracking_url", "aclose"):
            assert callable(getattr(cls, member, None)), f"{cls.__name__}.{member}"
        assert inspect.iscoroutinefunction(cls.track) and inspect.iscoroutinefunction(cls.aclose)


@pytest.mark.parametrize("module_name", MARKETPLACE_MODULES)
def test_each_marketplace_follows_the_protocol(module_name):
    module = importlib.import_module(module_name)
    classes = [c for _n, c in inspect.getmembers(module, inspect.isclass)
               if c.__module__ == module_name and c.__name__.endswith("Marketplace")]
    assert classes, f"{module_name} has no *Marketplace class"
    for cls in classes:
        assert inspect.iscoroutinefunction(cls.changes) and inspect.iscoroutinefunction(cls.aclose)


def test_each_courier_has_a_sample():
    assert set(carriers.COURIERS) - SIMULATED == set(DELIVERED_SAMPLES)


@pytest.mark.parametrize("courier_type", sorted(DELIVERED_SAMPLES))
def test_each_courier_reads_its_published_delivered_example(courier_type):
    """Through the module's pure `parse_tracking(payload, number, source)`: delivered, every time aware UTC."""
    name, number = DELIVERED_SAMPLES[courier_type]
    payload = json.loads((FIXTURES / courier_type / name).read_text(encoding="utf-8"))
    module = inspect.getmodule(carriers.COURIERS[courier_type])
    result = module.parse_tracking(payload, number, courier_type)
    assert result.tracking_number == number and result.found and result.error is None
    assert result.events, f"{courier_type}: no events read from {name}"
    latest = max(result.events, key=lambda event: event.at)
    assert latest.status is ShipmentStatus.DELIVERED, f"{courier_type}: latest event is {latest}"
    assert all(event.at.utcoffset() is not None and event.at.tzinfo is UTC for event in result.events)


def test_each_factory_takes_the_accounts_name_section_and_clock():
    """Adapters never see the config: the registry hands each one its name, its own table and a clock."""
    for factory in [*carriers.COURIERS.values(), *carriers.MARKETPLACES.values()]:
        assert list(inspect.signature(factory).parameters) == ["name", "section", "clock"], factory.__module__


@pytest.mark.parametrize("marketplace_type", carriers.COUPON_ISSUERS)
def test_shops_that_issue_coupons_create_codes(marketplace_type):
    module = inspect.getmodule(carriers.MARKETPLACES[marketplace_type])
    classes = [c for _n, c in inspect.getmembers(module, inspect.isclass)
               if c.__module__ == module.__name__ and c.__name__.endswith("Marketplace")]
    assert classes and all(inspect.iscoroutinefunction(getattr(c, "create_code", None)) for c in classes)
    for cls in classes:  # everything carriers.base.CouponIssuer asks for
        assert {"create_code", "aclose"} <= {n for n in dir(cls) if n in dir(CouponIssuer)}
