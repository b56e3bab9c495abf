"""An API over a store holding the hand-made jurisdictions of tests/store/citydata.py,
with one account per role and a few incidents, driven by an explicit clock."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rescity.store.testing import make_test_store
from tests.respond.conftest import CELLS, T0
from tests.store.citydata import jurisdictions

PASSWORD = "correct horse battery"

ACCOUNTS = {
    "chief": {"role": "commander"},
    "d1": {"role": "district_officer", "jurisdictions": ["D1"]},
    "d2": {"role": "district_officer", "jurisdictions": ["D2"]},
    "gasop": {"role": "operator", "networks": ["gas"], "unit": "gas-company"},
    "waterop": {"role": "operator", "networks": ["water"], "unit": "water-company"},
    "grid": {"role": "grid_worker", "jurisdictions": ["D1-S1"]},
    "li": {"role": "citizen"},
    "wang": {"role": "citizen"},
    "audit": {"role": "auditor"},
}


class Clock:
    def __init__(self, t: int) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, ms: int) -> None:
        self.t += ms


def make_api(tmp_path, backend="sqlite"):
    from rescity.api.app import create_app
    from rescity.model import City
    from rescity.respond.access import SYSTEM

    store = make_test_store(backend, tmp_path)
    city = City(name="Test city", name_zh="测试市", center=(24.94, 60.17), admin_code="320600")
    for j in jurisdictions():
        city.add_jurisdiction(j)
    store.save_city(city)
    clock = Clock(T0)
    app = create_app(store.url, clock=clock)
    svc = app.state.response
    for name, spec in ACCOUNTS.items():
        svc.add_user(SYSTEM, username=name, password=PASSWORD, ts_ms=T0, **spec)
    client = TestClient(app)
    tokens = {}
    for name in ACCOUNTS:
        r = client.post("/api/token", data={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        tokens[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return app, client, tokens, clock, store


@pytest.fixture
def api(tmp_path, monkeypatch):
    monkeypatch.setenv("RESCITY_SECRET", "test-secret")
    app, client, tokens, clock, store = make_api(tmp_path)
    yield app, client, tokens, clock
    store.close()


__all__ = ["CELLS", "T0"]
