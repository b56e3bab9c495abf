"""From live state, an alarm: a main_break cluster (its members' place) or a burst on a pipe
(its asset) -> the valves to close and the customers predicted to lose water; the CLI
``rescity simulate main-break --alarm ID``; the caller's rights."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from rescity.demo.city import build_demo_city
from rescity.respond.access import AccessDenied, Role, User
from rescity.service.respond import NotFound
from rescity.service.simulation import predict_from_alarm
from rescity.store.monitoring import MonitoringStore
from rescity.store.testing import make_test_store

pytestmark = pytest.mark.xdist_group("simulate-main-break")

T0 = 1_784_764_800_000


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    city = build_demo_city()
    store = make_test_store("sqlite", tmp_path_factory.mktemp("mb"))
    store.save_city(city)
    pipe = city.networks["water"].links["p346"]
    members = [f"water:{pipe.start}", f"water:{pipe.end}"]
    mid = pipe.geometry.interpolate(0.5, normalized=True)
    far = city.networks["water"].nodes["n1"].geometry

    def alarm(aid, model, asset, details, update=None):
        evs = [SimpleNamespace(alarm_id=aid, ts_ms=T0, kind="opened", level_before=0, level_after=3, value=2.0,
                               details=details, model=model, asset=asset)]
        if update:
            evs.append(SimpleNamespace(alarm_id=aid, ts_ms=T0 + 60_000, kind="updated", level_before=3,
                                       level_after=2, value=3.0, details=update, model=model, asset=asset))
        return evs, [SimpleNamespace(id=aid, model=model, asset=asset, state="firing", level=2, opened_ms=T0,
                                     updated_ms=T0 + 60_000, attrs={})]

    mon = MonitoringStore(store.engine)
    # a cluster of low-pressure alarms: anchored on a junction far away at first, then its members
    # are the two ends of p346 (the update moves the cluster's place)
    mon.append_alarm_events(*alarm("al-cluster", "main_break", members[0],
                                   {"lon": far.x, "lat": far.y, "members": ["water:n1"]},
                                   update={"members": members}))
    mon.append_alarm_events(*alarm("al-burst", "main_break", "water:p346", {"lon": mid.x, "lat": mid.y}))
    mon.append_alarm_events(*alarm("al-place", "pressure_low", "sensor-x", {"lon": mid.x, "lat": mid.y}))
    yield city, store
    store.close()


@pytest.mark.parametrize("alarm_id, source", [("al-burst", "asset"), ("al-cluster", "members"),
                                              ("al-place", "place")])
def test_an_alarm_points_at_the_pipe_and_predicts_who_loses_water(world, alarm_id, source):
    city, store = world
    r = predict_from_alarm(store, alarm_id, repair_h=8)
    assert r["alarm"] == alarm_id and r["from"] == source
    assert r["pipe"] == "water:p346"  # the members' centroid and the place are p346's midpoint
    assert r["valves_to_close"] and "water:p346" in r["segment_pipes"]
    assert r["customers_without_water_if_not_isolated"] and r["leak_m3_until_repair"] > 0
    assert r["repair_h"] == 8


def test_unknown_alarm_and_the_callers_rights(world):
    city, store = world
    with pytest.raises(NotFound, match="no alarm"):
        predict_from_alarm(store, "al-nope")
    river = User("river", Role.DISTRICT_OFFICER, jurisdictions=("990102",))
    old = User("old", Role.DISTRICT_OFFICER, jurisdictions=("990101",))  # p346 lies in Old Town
    with pytest.raises(AccessDenied):
        predict_from_alarm(store, "al-burst", river)
    with pytest.raises(AccessDenied):
        predict_from_alarm(store, "al-burst", User("li", Role.CITIZEN))
    assert predict_from_alarm(store, "al-burst", old)["pipe"] == "water:p346"


def test_the_cli_takes_an_alarm(world):
    from rescity.cli import app

    _, store = world
    r = CliRunner().invoke(app, ["simulate", "main-break", "--alarm", "al-cluster", "--db", store.url])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["pipe"] == "water:p346" and doc["members"] and doc["valves_to_close"]
    r = CliRunner().invoke(app, ["simulate", "main-break", "--alarm", "al-nope", "--db", store.url])
    assert r.exit_code != 0 and "no alarm" in r.output
