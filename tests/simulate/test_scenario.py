"""Scenarios end to end on the demo city: hazard -> damage -> repairs -> cascade ->
curves and metrics; bad scenario input rejected with a clear message; the CLI; a small
Dask ensemble."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rescity.demo.city import build_demo_city
from rescity.service.simulation import make_hazard, simulate
from rescity.simulate.scenario import run_scenario

pytestmark = pytest.mark.xdist_group("simulate-scenario")


@pytest.fixture(scope="module")
def city():
    return build_demo_city()


def test_a_burst_loses_customers_until_the_crew_repairs_it(city):
    r = run_scenario(city, make_hazard("burst", city, pipe="p346"), horizon_h=24)
    (a,) = r.schedule.assignments.values()
    assert r.conditions[0].end_s == a.finish_s  # the break lasts until the repair
    assert 16 * 3600 <= a.finish_s < 24 * 3600  # 16 h of work plus the crew's travel
    q = r.curves["water"]
    assert q.q_pct.min() < 100 and q.q_pct[-1] == pytest.approx(100.0, abs=0.1)
    m = r.metrics["water"]
    assert m.loss_of_resilience_pct_h > 0 and m.t_recover_100_h is not None
    assert r.consequences["customers_without_water_max"] > 0 and r.consequences["leak_m3"] > 0
    assert r.metrics["power"].loss_of_resilience_pct_h == 0.0


def test_an_outage_darkens_loads_and_comes_back(city):
    r = run_scenario(city, make_hazard("outage", city, substation="bus_39", duration_h=6), horizon_h=12)
    p = r.curves["power"]
    assert p.q_pct.min() < 100 and p.q_pct[-1] == 100.0
    assert r.metrics["power"].t_recover_100_h == pytest.approx(6.0)
    assert r.consequences["load_lost_mw_max"] > 1.0


def test_an_earthquake_damages_assets_and_the_repairs_restore_service(city):
    q = make_hazard("earthquake", city, magnitude=6.0, lon=city.center[0] + 0.02, lat=city.center[1] + 0.02)
    r1 = run_scenario(city, q, seed=5, horizon_h=72, water_simulator="epanet")
    r2 = run_scenario(city, q, seed=5, horizon_h=72, water_simulator="epanet")
    assert len(r1.conditions) > 0 and [c.uid for c in r1.conditions] == [c.uid for c in r2.conditions]
    assert r1.metrics["city"].loss_of_resilience_pct_h == pytest.approx(r2.metrics["city"].loss_of_resilience_pct_h)
    assert r1.metrics["city"].robustness_pct < 100
    ends = [c.end_s for c in r1.conditions if c.end_s is not None]
    assert ends and len(r1.schedule.assignments) >= len(ends)


@pytest.mark.parametrize("kind, params, message", [
    ("earthquake", {"magnitude": -1.0}, "magnitude"),
    ("earthquake", {"magnitude": 6.0, "lon": 116.4, "lat": 39.9}, "epicentre far outside the city"),
    ("burst", {"pipe": "no-such-pipe"}, "unknown pipe"),
    ("outage", {"substation": "bus_99999"}, "unknown substation"),
    ("rainstorm", {"return_period": -5, "duration_h": 2}, "return_period"),
    ("flood", {}, "unknown scenario kind"),
])
def test_bad_scenario_input_is_rejected_clearly(city, kind, params, message):
    with pytest.raises(ValueError, match=message):
        make_hazard(kind, city, **params)


def test_cli_and_a_dask_ensemble(city, tmp_path, monkeypatch):
    from rescity.cli import app
    from rescity.store.testing import make_test_store

    store = make_test_store("sqlite", tmp_path)
    store.save_city(city)
    png = tmp_path / "q.png"
    r = CliRunner().invoke(app, ["simulate", "burst", "--pipe", "p346", "--png", str(png), "--json",
                                 "--horizon-h", "24", "--db", store.url])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["metrics"]["water"]["loss_of_resilience_pct_h"] > 0 and png.read_bytes()[:4] == b"\x89PNG"
    by = doc["consequences"]["by_jurisdiction"]
    assert by["district"]["990101"]["population_without_water_max"] > 0  # p346 lies in Old Town
    r = CliRunner().invoke(app, ["simulate", "earthquake", "--magnitude", "-2", "--db", store.url])
    assert r.exit_code == 2 and "magnitude" in r.output
    sim = simulate(city, "earthquake", realizations=3, seed=1, horizon_h=24, magnitude=5.5,
                   lon=city.center[0], lat=city.center[1] + 0.03, png=tmp_path / "e.png")
    assert sim.realizations == 3 and sim.bands is not None
    b = sim.bands["city"]
    assert (b.p10 <= b.mean + 1e-9).all() and (b.mean <= b.p90 + 1e-9).all()
    assert sim.summary["metrics"]["city"]["robustness_pct"]["n"] == 3
    store.close()


def test_from_live_state_a_suspected_main_break_names_valves_and_customers(city, tmp_path):
    from rescity.respond.access import SYSTEM
    from rescity.service.respond import ResponseService
    from rescity.service.simulation import predict_from_incident, predict_main_break
    from rescity.store.testing import make_test_store

    r = predict_main_break(city, pipe="p346")
    assert r["pipe"] == "water:p346" and r["valves_to_close"]
    assert "water:p346" in r["segment_pipes"]
    assert set(r["segment_customers"]) <= set(r["customers_cut_off_by_isolation"])
    assert r["customers_without_water_if_not_isolated"] and r["leak_m3_until_repair"] > 0
    with pytest.raises(ValueError, match="unknown pipe"):
        predict_main_break(city, pipe="nope")
    store = make_test_store("sqlite", tmp_path)
    store.save_city(city)
    svc = ResponseService(store)
    mid = city.networks["water"].links["p346"].geometry.interpolate(0.5, normalized=True)
    inc = svc.open_incident(SYSTEM, title="suspected main break", type="main_break", level=2,
                            ts_ms=1_784_764_800_000, lon=mid.x, lat=mid.y, network="water")
    got = predict_from_incident(store, inc.id)
    assert got["incident"] == inc.id and got["pipe"] == "water:p346"  # the nearest pipe to its place
    store.close()
