"""Every registered adapter keeps the same promises, checked over the registry so a new one is covered
the moment it is registered."""

from __future__ import annotations

import importlib
import inspect

import pytest

import carriers
from carriers.base import Courier, Marketplace
from tracker.status import ShipmentStatus

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


def test_the_registries_name_every_adapter_by_its_config_type():
    assert set(carriers.COURIERS) >= {"sandbox"}
    assert set(carriers.MARKETPLACES) >= {"sandbox"}
    assert Courier and Marketplace  # the protocols the adapters follow live in carriers.base
