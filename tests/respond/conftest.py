"""Response tests run on both backends (the ``store`` fixture of the plugin module), over
the hand-made jurisdictions of tests/store/citydata.py: 3 districts D1..D3, each with
streets D<i>-S1 (south) and D<i>-S2 (north), each with grid cells -G1 (west), -G2 (east)."""

from __future__ import annotations

import pytest

from rescity.respond.access import Role, User
from rescity.service.respond import ResponseService
from rescity.store.testing import store, store_backend
from tests.store.citydata import jurisdictions, metres_to_lonlat

__all__ = ["store", "store_backend"]

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

# a point in each grid cell: (lon, lat) in the middle of D<i>-S<j>-G<k>
CELLS = {}
for i, (w, e) in enumerate(((24.90, 24.94), (24.94, 24.98))):
    for j, (s, n) in enumerate(((60.15, 60.17), (60.17, 60.19))):
        mid = (w + e) / 2
        for k, (gw, ge) in enumerate(((w, mid), (mid, e))):
            CELLS[f"D{i + 1}-S{j + 1}-G{k + 1}"] = ((gw + ge) / 2, (s + n) / 2)


@pytest.fixture
def svc(store):
    store.add_jurisdictions(jurisdictions())
    return ResponseService(store)


COMMANDER = User("chief", Role.COMMANDER)
D1 = User("d1-officer", Role.DISTRICT_OFFICER, jurisdictions=("D1",))
D2 = User("d2-officer", Role.DISTRICT_OFFICER, jurisdictions=("D2",))
GAS_OP = User("gas-op", Role.OPERATOR, networks=("gas",), unit="gas-company")
WATER_OP = User("water-op", Role.OPERATOR, networks=("water",), unit="water-company")
GRID = User("grid-d1s1", Role.GRID_WORKER, jurisdictions=("D1-S1",))
CITIZEN = User("citizen-li", Role.CITIZEN)
CITIZEN2 = User("citizen-wang", Role.CITIZEN)
AUDITOR = User("auditor", Role.AUDITOR)

_ = metres_to_lonlat
