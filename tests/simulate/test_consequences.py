"""Consequences per jurisdiction on the demo city (population and critical facilities
without water, power or road access over time; flooded volume and area) and crews that
travel on the road graph with the hazard's closures."""

from __future__ import annotations

import numpy as np
import pytest

from rescity.demo.city import build_demo_city
from rescity.model import DependencyKind, JurisdictionLevel
from rescity.service.simulation import make_hazard
from rescity.simulate.consequences import jurisdiction_index, population_shares
from rescity.simulate.engines.conditions import Closure
from rescity.simulate.restoration import CLEAR_CLOSURE_S, road_travel
from rescity.simulate.scenario import cascade_for, crew_travel, run_scenario

pytestmark = pytest.mark.xdist_group("simulate-consequences")

OLD_TOWN, RIVERSIDE, HARBOUR = "990101", "990102", "990103"


@pytest.fixture(scope="module")
def city():
    return build_demo_city()


@pytest.fixture(scope="module")
def outage(city):
    return run_scenario(city, make_hazard("outage", city, substation="bus_39", duration_h=6), horizon_h=12)


def _by(r):
    return r.consequences["by_jurisdiction"]


def test_residents_are_shared_among_a_streets_customers(city):
    net = city.networks["water"]
    uids = [net.uid(i) for i, n in net.nodes.items() if float(n.attrs.get("base_demand_m3s") or 0) > 0]
    w = np.array([float(city.asset(u).attrs["base_demand_m3s"]) for u in uids])
    pop, streets = population_shares(jurisdiction_index(city), uids, w)
    served = {s for s in streets if s is not None}
    assert served, "the demo city's water customers lie in its streets"
    assert pop.sum() == pytest.approx(sum(city.jurisdictions[s].population for s in served))
    for s in served:  # within a street, in proportion to demand
        k = [i for i, x in enumerate(streets) if x == s]
        assert pop[k].sum() == pytest.approx(city.jurisdictions[s].population)
        assert np.allclose(pop[k] / pop[k].sum(), w[k] / w[k].sum())


def test_an_outage_darkens_riverside_residents_and_facilities_for_its_duration(city, outage):
    by = _by(outage)
    d = by["district"]
    assert d[RIVERSIDE]["population_without_power_max"] > 0  # bus_39 lies in Riverside
    assert d[OLD_TOWN]["population_without_power_max"] == 0
    total = sum(x["population_without_power_max"] for x in d.values())
    assert total == pytest.approx(by["city"]["population_without_power_max"], abs=0.5)
    for code, x in d.items():
        assert x["population_without_power_max"] <= city.jurisdictions[code].population + 0.5
    # 6 hours dark: person-hours = peak x 6 h (the trapezoid over hourly steps, 1 h ramps at each end)
    c = by["city"]
    assert 5 * c["population_without_power_max"] <= c["person_hours_without_power"] <= 7 * c["population_without_power_max"]
    assert len(c["series"]["power"]) == len(by["t_h"]) == 13 and c["series"]["power"][-1] == 0
    # the facilities without power are those fed by a dark bus, in the district they lie in
    fed = {dep.dependent: dep.supporting for dep in city.interdependencies if dep.kind == DependencyKind.POWER_SUPPLY}
    dark = {e.uid for e in outage.cascade.events if e.what == "de_energised"}
    facs = c["facilities_without_power"]
    assert facs and all(fed[f] in dark for f in facs)
    assert set(facs) == {f for x in d.values() for f in x["facilities_without_power"]}
    assert outage.consequences["population_without_power_max"] == c["population_without_power_max"]
    streets = {s: x for s, x in by["street"].items() if x["district"] == RIVERSIDE}
    assert sum(x["population_without_power_max"] for x in streets.values()) == pytest.approx(
        d[RIVERSIDE]["population_without_power_max"], abs=0.5)


def test_a_burst_leaves_old_town_without_water_and_a_school_with_it(city):
    r = run_scenario(city, make_hazard("burst", city, pipe="p346"), horizon_h=24)
    by = _by(r)
    assert by["district"][OLD_TOWN]["population_without_water_max"] > 0
    assert by["district"][RIVERSIDE]["population_without_water_max"] == 0
    assert by["district"][HARBOUR]["population_without_water_max"] == 0
    lost = {a["uid"] for a in r.affected if a["kind"] == "no_water" and a["network"] == "water"}
    assert len(lost) == r.consequences["customers_without_water_max"]
    sup = {d.dependent: d.supporting for d in city.interdependencies if d.kind == DependencyKind.WATER_SUPPLY}
    facs = r.consequences["facilities_without_water"]
    assert facs and all(sup[f] in lost for f in facs)
    assert {a["uid"] for a in r.affected if a["kind"] == "no_water" and a["network"] == "facility"} == set(facs)
    failed = [a for a in r.affected if a["kind"] == "failed"]
    assert [a["uid"] for a in failed] == ["water:p346"]
    assert failed[0]["to_h"] == pytest.approx(r.schedule.assignments["water:p346"].finish_s / 3600, abs=1e-3)


def test_a_rainstorm_floods_by_district_and_cuts_facilities_off_the_roads(city):
    r = run_scenario(city, make_hazard("rainstorm", city, return_period=100, duration_h=2), horizon_h=12)
    by = _by(r)
    c = by["city"]
    vol = sum(x["flood_volume_m3"] for x in by["district"].values())
    # the city counts every flooded node; a few lie outside the streets' polygons
    assert 0.95 * c["flood_volume_m3"] <= vol <= c["flood_volume_m3"] + 0.5
    assert c["flood_volume_m3"] <= r.cascade.drainage.total_flood_m3 + 0.1
    assert c["flooded_area_m2"] == pytest.approx(c["flood_volume_m3"] / 0.3, rel=1e-3)
    assert c["flooded_nodes"] >= sum(x["flooded_nodes"] for x in by["district"].values()) > 0
    # flooded streets close; a facility whose road node the fire station cannot reach has no road access
    cut = c["facilities_without_road_access"]
    assert cut and c["facility_hours_without_road_access"] > 0
    assert max(c["series"]["facilities_without_road_access"]) > 0
    cut_t = c["series"]["facilities_without_road_access"]
    assert cut_t[-1] < max(cut_t)  # most streets reopen as the storm drains
    assert max(cut_t) == len(set(cut)) or max(cut_t) <= len(cut)
    kinds = {a["kind"] for a in r.affected}
    assert {"flooded", "closed", "de_energised"} <= kinds


def test_a_closure_lengthens_a_crews_trip(city):
    casc = cascade_for(city)
    g = casc.road_graph()
    o = g.nearest_node(*city.facilities["fire_station-1"].geometry.representative_point().coords[0])
    tt = g.travel_times([o])
    far = max(tt, key=lambda n: (tt[n], n))  # the farthest node the fire station reaches
    a, b = g.roads.nodes[o].lonlat, g.roads.nodes[far].lonlat
    route = g.route(o, far)
    assert len(route) > 3
    mid = route[len(route) // 2: len(route) // 2 + 2]
    seg = next(k for k in g.graph[mid[0]][mid[1]])  # a segment on the fastest route
    t_open = road_travel(g)(a, b)
    t_closed = road_travel(g, {seg})(a, b)
    assert t_open == pytest.approx(g.travel_time(o, far))
    assert t_closed > t_open and t_closed < t_open + CLEAR_CLOSURE_S  # a detour, not the penalty
    # the scenario runner's crews see the hazard's closures at the start
    uid = g.roads.uid(seg)
    assert crew_travel(city, [Closure(uid, 0.0, None)], casc)(a, b) == pytest.approx(t_closed)
    assert crew_travel(city, [Closure(uid, 3600.0, None)], casc)(a, b) == pytest.approx(t_open)
    # roads everywhere shut: the penalty over the open-road time
    every = set(g.roads.links)
    assert road_travel(g, every)(a, b) == pytest.approx(t_open + CLEAR_CLOSURE_S)


def test_every_street_of_the_demo_city_is_reported(city, outage):
    by = _by(outage)
    streets = {j.code for j in city.jurisdictions.values() if j.level == JurisdictionLevel.STREET}
    assert set(by["street"]) == streets and len(by["district"]) == 3
