"""The demo city: built from the real networks, saved to both stores, served by the API."""

from __future__ import annotations

import json

import pytest
import wntr
from typer.testing import CliRunner

from rescity.cli import app
from rescity.demo.city import build_demo_city
from rescity.model import DependencyKind, JurisdictionLevel, NetworkType
from rescity.store.testing import make_test_store

pytestmark = pytest.mark.xdist_group("demo")


@pytest.fixture(scope="module")
def city():
    return build_demo_city()


def test_demo_city_meets_the_issue_floor(city):
    s = city.summary()
    assert len(s["networks"]) >= 5
    assert s["assets"] >= 2000
    assert sum(s["sensors"].values()) >= 500
    assert len(s["interdependencies"]) >= 3
    assert set(s["jurisdictions"]) == {"district", "street", "grid"}
    assert {"hospital", "school", "shelter", "pumping_station", "substation", "treatment_plant"} <= set(s["facilities"])


def test_every_network_type_is_present(city):
    types = {n.type for n in city.networks.values()}
    assert types == set(NetworkType)


def test_networks_overlap_the_street_frame(city):
    """Fitted models lie on the streets: their extents overlap the roads' extent."""
    rx0, ry0, rx1, ry1 = city.networks["roads"].bounds()
    for name in ("water", "drainage", "power", "gas"):
        x0, y0, x1, y1 = city.networks[name].bounds()
        assert x0 < rx1 and x1 > rx0 and y0 < ry1 and y1 > ry0, name


def test_hierarchy_nests_and_population_adds_up(city):
    districts = city.level(JurisdictionLevel.DISTRICT)
    assert len(districts) == 3
    for d in districts:
        streets = city.children(d.code)
        assert streets and sum(s.population for s in streets) == pytest.approx(d.population, abs=len(streets))
        for s in streets:
            cells = city.children(s.code)
            assert cells and all(c.level == JurisdictionLevel.GRID for c in cells)
            assert s.geometry.buffer(1e-9).contains(cells[0].geometry.centroid)
    assert city.attrs["total_population"] > 10_000


def test_interdependencies_cover_pumps_facilities_and_gas(city):
    by_kind: dict[DependencyKind, list] = {}
    for d in city.interdependencies:
        by_kind.setdefault(d.kind, []).append(d)
    pumps = {city.networks["water"].uid(lk.id) for lk in city.networks["water"].links.values() if lk.kind == "pump"}
    powered = {d.dependent for d in by_kind[DependencyKind.POWER_SUPPLY]}
    assert pumps <= powered
    road = {d.dependent for d in by_kind[DependencyKind.ROAD_ACCESS]}
    assert road == {f.uid for f in city.facilities.values()}
    adj = by_kind[DependencyKind.SPATIAL_ADJACENCY]
    assert any(d.dependent.startswith("drainage:") for d in adj)
    assert any(d.dependent.startswith("power:") for d in adj)
    assert all(d.distance_m <= 15.0 for d in adj)


def test_battledim_sensors_sit_at_the_official_places(city):
    pressure = [s for s in city.sensors.values() if s.quantity == "pressure" and s.asset.startswith("water:")]
    assert len(pressure) == 33
    assert "water.n54.pressure" in city.sensors and "water.PUMP_1.flow" in city.sensors


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_demo_city_round_trips_through_the_store(city, backend, tmp_path):
    store = make_test_store(backend, tmp_path)
    try:
        store.save_city(city)
        assert store.info() == city.summary()
        water = store.get_network("water")
        assert len(water.nodes) == len(city.networks["water"].nodes)
        assert store.jurisdiction_at(*city.center, JurisdictionLevel.DISTRICT) is not None
    finally:
        store.close()


def test_cli_demo_info_export_and_api(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'city.db'}"
    runner = CliRunner()
    r = runner.invoke(app, ["demo", "--no-serve", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["info", "--json", "--db", db])
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["assets"] >= 2000 and sum(info["sensors"].values()) >= 500

    out = tmp_path / "water.inp"
    r = runner.invoke(app, ["export", "water", str(out), "--db", db])
    assert r.exit_code == 0, r.output
    res = wntr.sim.EpanetSimulator(wntr.network.WaterNetworkModel(str(out))).run_sim(
        file_prefix=str(tmp_path / "w"))
    assert res.node["pressure"].shape[1] == 785

    r = runner.invoke(app, ["export", "nope", str(out), "--db", db])
    assert r.exit_code == 2 and "nope" in r.output

    from fastapi.testclient import TestClient

    from rescity.api.app import create_app

    client = TestClient(create_app(db))
    assert client.get("/api/info").status_code == 401  # the twin is for signed-in staff
    tok = client.post("/api/token", data={"username": "chief", "password": "rescity-demo"})
    assert tok.status_code == 200, tok.text
    h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    assert client.get("/api/info", headers=h).json() == info
    fc = client.get("/api/networks/gas/geojson", headers=h).json()
    assert fc["rescity:network_type"] == "gas" and len(fc["features"]) > 1000
    light = client.get("/api/map/networks/gas", headers=h).json()
    assert [f["properties"]["id"] for f in light["features"]] == [f["properties"]["id"] for f in fc["features"]]
    assert client.get("/api/networks/nope/geojson", headers=h).status_code == 404
    d = client.get("/api/jurisdictions/geojson", params={"level": "district"}, headers=h).json()
    assert len(d["features"]) == 3
    assert client.get("/api/jurisdictions/geojson", params={"level": "planet"}, headers=h).status_code == 422
    sensors = client.get("/api/sensors/geojson", headers=h).json()["features"]
    assert len(sensors) == sum(info["sensors"].values())
    assert any(f["properties"]["level"] > 0 for f in sensors)  # the day left some firing
    assert "ResCity" in client.get("/").text
    for lib in ("/static/vendor/leaflet/leaflet.js", "/static/vendor/chartjs/chart.umd.min.js", "/static/js/main.js"):
        assert client.get(lib).status_code == 200, lib
