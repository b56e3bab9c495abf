"""The scenario API on the demo city: runs are asynchronous (202, then queued -> running ->
done) and stored (a restarted server lists them and resumes the unfinished ones); results
are metrics, curves, consequences per jurisdiction, the affected assets as GeoJSON and
the curves' PNG; who may run and read what; bad input is a 422 naming the field; no 500s
under schemathesis."""

from __future__ import annotations

import time

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from rescity.respond.access import SYSTEM
from rescity.store.testing import backend_params, make_test_store

from .conftest import make_api

pytestmark = pytest.mark.xdist_group("api-simulate")

PASSWORD = "correct horse battery"
OLD_TOWN, RIVERSIDE = "990101", "990102"  # the burst's pipe p346 lies in Old Town, bus_39 in Riverside
ACCOUNTS = {
    "chief": {"role": "commander"},
    "old": {"role": "district_officer", "jurisdictions": [OLD_TOWN]},
    "river": {"role": "district_officer", "jurisdictions": [RIVERSIDE]},
    "waterop": {"role": "operator", "networks": ["water"], "unit": "water-company"},
    "powerop": {"role": "operator", "networks": ["power"], "unit": "power-company"},
    "grid": {"role": "grid_worker", "jurisdictions": ["990101001"]},
    "li": {"role": "citizen"},
    "audit": {"role": "auditor"},
}
BURST = {"hazard": "burst", "params": {"pipe": "p346", "horizon_h": 24}}

_city: dict = {}


def demo_city():
    if "city" not in _city:
        from rescity.demo.city import build_demo_city

        _city["city"] = build_demo_city()
    return _city["city"]


def _client(app):
    client = TestClient(app)
    tokens = {}
    for name in ACCOUNTS:
        r = client.post("/api/token", data={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        tokens[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return client, tokens


@pytest.fixture(scope="module", params=backend_params())
def world(request, tmp_path_factory):
    from rescity.api.app import create_app

    mp = pytest.MonkeyPatch()
    mp.setenv("RESCITY_SECRET", "test-secret")
    store = make_test_store(request.param, tmp_path_factory.mktemp("sim"))
    store.save_city(demo_city())
    app = create_app(store.url)
    for name, spec in ACCOUNTS.items():
        app.state.response.add_user(SYSTEM, username=name, password=PASSWORD, ts_ms=app.state.clock(), **spec)
    client, tokens = _client(app)
    yield app, client, tokens, store
    app.state.scenarios.stop()
    store.close()
    mp.undo()


def _wait(client, headers, run_id, timeout_s=300):
    t_end = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < t_end:
        d = client.get(f"/api/scenarios/{run_id}", headers=headers).json()
        seen.append(d["status"])
        if d["status"] in ("done", "failed"):
            return d, seen
        assert 0.0 <= d["progress"] <= 1.0
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish: {seen[-5:]}")


def test_a_burst_runs_in_the_background_and_its_results_are_stored(world):
    from rescity.api.app import create_app

    app, client, tokens, store = world
    r = client.post("/api/scenarios", headers=tokens["waterop"], json=BURST)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"
    rid = r.json()["id"]
    d, seen = _wait(client, tokens["waterop"], rid)
    assert d["status"] == "done", d["error"]
    assert d["progress"] == 1.0 and d["error"] is None and d["by"] == "waterop"
    assert set(seen) <= {"queued", "running", "done"}
    # metrics per network and for the city; curves as the dashboard draws them
    assert d["metrics"]["water"]["loss_of_resilience_pct_h"] > 0 and d["metrics"]["power"]["robustness_pct"] == 100
    w = d["curves"]["water"]
    assert len(w["t_h"]) == len(w["q"]) == 25 and min(w["q"]) < 100 and w["q"][-1] == pytest.approx(100, abs=0.1)
    assert set(d["curves"]) == {"water", "power", "roads", "city"}
    # consequences, per jurisdiction: the burst is in Old Town, so only Old Town loses water
    cons = d["consequences"]
    assert cons["customers_without_water_max"] > 0 and cons["population_without_water_max"] > 0
    by = cons["by_jurisdiction"]["district"]
    assert by[OLD_TOWN]["population_without_water_max"] == pytest.approx(cons["population_without_water_max"])
    assert by[RIVERSIDE]["population_without_water_max"] == 0
    # the affected assets, on a map
    a = client.get(f"/api/scenarios/{rid}/affected", headers=tokens["waterop"]).json()
    assert a["type"] == "FeatureCollection"
    kinds = {(f["properties"]["asset"], f["properties"]["kind"]) for f in a["features"]}
    assert ("water:p346", "failed") in kinds
    no_water = [f for f in a["features"] if f["properties"]["kind"] == "no_water"]
    assert len(no_water) >= cons["customers_without_water_max"]
    for f in a["features"]:
        assert {"network", "kind", "asset", "name_en", "name_zh"} <= set(f["properties"])
        lon, lat = (f["geometry"]["coordinates"][0] if f["geometry"]["type"] == "LineString"
                    else f["geometry"]["coordinates"])
        assert 24 < lon < 26 and 60 < lat < 61  # WGS84
    png = client.get(f"/api/scenarios/{rid}/curves.png", headers=tokens["waterop"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"
    # stored: another server over the same database lists the run and its results
    app2 = create_app(store.url)
    c2, t2 = _client(app2)
    runs = c2.get("/api/scenarios", headers=t2["chief"]).json()
    mine = next(x for x in runs if x["id"] == rid)
    assert mine["status"] == "done" and mine["hazard"] == "burst" and mine["params"]["pipe"] == "p346"
    assert {"id", "hazard", "params", "status", "progress", "created_ms", "by"} <= set(mine)
    assert c2.get(f"/api/scenarios/{rid}", headers=t2["chief"]).json()["metrics"] == d["metrics"]
    app2.state.scenarios.stop()


def test_a_restarted_server_resumes_unfinished_runs_and_a_failure_says_why(world, monkeypatch):
    from rescity.api.app import create_app

    app, client, tokens, store = world
    svc = app.state.scenarios
    monkeypatch.setattr(svc, "enqueue", lambda run_id: None)  # this server queues and stops
    r = client.post("/api/scenarios", headers=tokens["powerop"],
                    json={"hazard": "outage", "params": {"substation": "bus_39", "duration": 2, "horizon_h": 6}})
    assert r.status_code == 202
    ok = r.json()["id"]
    bad = client.post("/api/scenarios", headers=tokens["chief"], json=BURST).json()["id"]
    svc.runs.update(bad, params={"pipe": "p-gone", "mode": "break", "horizon_h": 24, "policy": "criticality"})
    assert client.get(f"/api/scenarios/{ok}", headers=tokens["powerop"]).json()["status"] == "queued"
    assert client.get(f"/api/scenarios/{ok}/curves.png", headers=tokens["powerop"]).status_code == 409
    app2 = create_app(store.url)  # a new server takes the queue over
    c2, t2 = _client(app2)
    d, _ = _wait(c2, t2["powerop"], ok)
    assert d["status"] == "done" and d["metrics"]["power"]["t_recover_100_h"] == pytest.approx(2.0)
    assert d["consequences"]["by_jurisdiction"]["district"][RIVERSIDE]["population_without_power_max"] > 0
    f, _ = _wait(c2, t2["chief"], bad)
    assert f["status"] == "failed" and "p-gone" in f["error"] and f["metrics"] == {}
    app2.state.scenarios.stop()


def test_an_earthquake_ensemble_runs_on_dask_with_bands_and_shares(world):
    app, client, tokens, store = world
    if store.backend != "sqlite":
        pytest.skip("the Dask path once is enough")
    lon, lat = demo_city().center
    body = {"hazard": "earthquake", "realizations": 2, "seed": 5,
            "params": {"magnitude": 6.0, "lon": lon + 0.02, "lat": lat + 0.02, "horizon_h": 24}}
    r = client.post("/api/scenarios", headers=tokens["chief"], json=body)
    assert r.status_code == 202, r.text
    d, _ = _wait(client, tokens["chief"], r.json()["id"], timeout_s=600)
    assert d["status"] == "done", d["error"]
    city = d["curves"]["city"]
    assert len(city["t_h"]) == len(city["q"]) == len(city["p10"]) == len(city["p90"])
    assert all(lo <= hi + 1e-9 for lo, hi in zip(city["p10"], city["p90"], strict=True))
    m = d["metrics"]["city"]["loss_of_resilience_pct_h"]
    assert m["n"] == 2 and m["mean"] > 0
    assert d["consequences"]["by_jurisdiction"]["district"][OLD_TOWN]["population"]["mean"] > 0
    a = client.get(f"/api/scenarios/{d['id']}/affected", headers=tokens["chief"]).json()
    shares = {f["properties"]["share"] for f in a["features"]}
    assert a["features"] and shares <= {0.5, 1.0}
    png = client.get(f"/api/scenarios/{d['id']}/curves.png", headers=tokens["chief"])
    assert png.content[:4] == b"\x89PNG"


@pytest.mark.parametrize("body, field", [
    ({"hazard": "burst", "params": {"pipe": "no-such-pipe"}}, "params.pipe: unknown pipe"),
    ({"hazard": "earthquake", "params": {"magnitude": -1}}, "params.magnitude"),
    ({"hazard": "earthquake", "params": {"magnitude": 6, "lon": 116.4, "lat": 39.9}}, "far outside the city"),
    ({"hazard": "earthquake", "params": {"magnitude": "big"}}, "params.magnitude"),
    ({"hazard": "earthquake", "params": {"magnitud": 6}}, "params.magnitud: unknown parameter"),
    ({"hazard": "outage", "params": {"substation": "bus_99999"}}, "params.substation: unknown substation"),
    ({"hazard": "rainstorm", "params": {"return_period": -5, "duration": 2}}, "params.return_period"),
    ({"hazard": "rainstorm", "params": {"return_period": 50}}, "params.duration"),
    ({"hazard": "burst", "params": {"pipe": "p346"}, "realizations": 5}, "realizations"),
    ({"hazard": "burst", "params": {"pipe": "p346", "policy": "random"}}, "params.policy"),
    ({"hazard": "flood", "params": {}}, "hazard"),
    ({"hazard": "earthquake", "params": {"magnitude": 6}, "realizations": 0}, "realizations"),
])
def test_bad_input_is_a_422_naming_the_field(world, body, field):
    app, client, tokens, _ = world
    before = len(client.get("/api/scenarios", headers=tokens["chief"]).json())
    r = client.post("/api/scenarios", headers=tokens["chief"], json=body)
    assert r.status_code == 422, r.text
    assert field in str(r.json()["detail"])
    assert len(client.get("/api/scenarios", headers=tokens["chief"]).json()) == before  # nothing queued


def test_who_may_run_and_read_what(world, monkeypatch):
    app, client, tokens, _ = world
    monkeypatch.setattr(app.state.scenarios, "enqueue", lambda run_id: None)  # rights only: nothing runs

    def post(user, body):
        return client.post("/api/scenarios", headers=tokens[user], json=body).status_code

    quake_old = {"hazard": "earthquake", "params": {"magnitude": 6}}  # the centre lies in Old Town
    outage = {"hazard": "outage", "params": {"substation": "bus_39"}}  # in Riverside
    rain = {"hazard": "rainstorm", "params": {"return_period": 10, "duration": 1}}
    assert client.post("/api/scenarios", json=BURST).status_code == 401
    assert client.get("/api/scenarios").status_code == 401
    for user in ("li", "grid", "audit"):
        assert post(user, BURST) == 403
    assert client.get("/api/scenarios", headers=tokens["li"]).status_code == 403
    assert client.get("/api/scenarios", headers=tokens["grid"]).status_code == 403
    assert post("old", BURST) == 202 and post("old", quake_old) == 202 and post("old", rain) == 202
    assert post("river", BURST) == 403 and post("river", quake_old) == 403 and post("river", outage) == 202
    assert post("waterop", BURST) == 202 and post("waterop", outage) == 403 and post("waterop", quake_old) == 202
    assert post("powerop", BURST) == 403 and post("powerop", outage) == 202

    runs = {u: {(x["hazard"], x["by"]) for x in client.get("/api/scenarios", headers=tokens[u]).json()}
            for u in ("chief", "audit", "old", "river", "waterop", "powerop")}
    assert ("burst", "old") in runs["chief"] and ("outage", "river") in runs["audit"]
    assert ("outage", "river") not in runs["old"] and ("burst", "old") not in runs["river"]
    assert ("burst", "old") in runs["waterop"] and ("burst", "waterop") in runs["old"]
    assert ("rainstorm", "old") in runs["river"]  # a rainstorm is everyone's
    one = next(x["id"] for x in client.get("/api/scenarios", headers=tokens["old"]).json()
               if x["hazard"] == "burst" and x["by"] == "old")
    assert client.get(f"/api/scenarios/{one}", headers=tokens["river"]).status_code == 404
    assert client.get(f"/api/scenarios/{one}/affected", headers=tokens["powerop"]).status_code == 404
    assert client.get(f"/api/scenarios/{one}", headers=tokens["li"]).status_code == 403
    assert client.get(f"/api/scenarios/{one}", headers=tokens["audit"]).status_code == 200
    assert client.get("/api/scenarios/sc-nope", headers=tokens["chief"]).status_code == 404


# -- no 500s: schemathesis over the scenario endpoints (runs queued, not executed) ----------------------------
_fuzz: dict = {}


def _fuzz_app():
    if "app" not in _fuzz:
        import tempfile
        from pathlib import Path

        mp = pytest.MonkeyPatch()
        mp.setenv("RESCITY_SECRET", "fuzz-secret")
        app, client, tokens, clock, store = make_api(Path(tempfile.mkdtemp(prefix="rescity-simfuzz-")))
        app.state.scenarios.enqueue = lambda run_id: None  # the queue is mocked out: nothing executes
        r = client.post("/api/scenarios", headers=tokens["chief"], json={"hazard": "earthquake",
                                                                        "params": {"magnitude": 5}})
        assert r.status_code == 202, r.text
        _fuzz.update(app=app, tokens=tokens, store=store, mp=mp)
    return _fuzz["app"]


schema = schemathesis.openapi.from_asgi("/openapi.json", _fuzz_app())
schema.config.generation.update(modes=list(schemathesis.GenerationMode))


@schema.include(path_regex=r"^/api/scenarios").parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call(headers=dict(_fuzz["tokens"]["chief"]))
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.json().get("detail"), "a 4xx must say what is wrong"
