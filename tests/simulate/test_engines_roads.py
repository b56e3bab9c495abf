"""Road engine: travel times on the demo city's Helsinki streets from the fire station,
one-way streets respected, a closed bridge or street reroutes or cuts off, lon/lat
snapped to the nearest node in metres."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest

from rescity.demo.city import build_demo_city
from rescity.model import project
from rescity.simulate.engines.conditions import Closure, Leak, UnknownElementError
from rescity.simulate.engines.roads import RoadGraph, run_roads

H = 3600.0


@pytest.fixture(scope="module")
def city():
    return build_demo_city()


@pytest.fixture(scope="module")
def graph(city):
    return RoadGraph(city.networks["roads"], city.networks["roads-bridges"])


@pytest.fixture(scope="module")
def station(city):
    fs = next(f for f in city.facilities.values() if f.kind.value == "fire_station") \
        if isinstance(city.facilities, dict) else \
        next(f for f in city.facilities if f.kind.value == "fire_station")
    return (fs.geometry.x, fs.geometry.y)


def test_travel_time_is_length_over_speed(graph, city):
    roads = city.networks["roads"]
    link = next(lk for lk in roads.links.values() if lk.attrs.get("maxspeed_kmh"))
    t = graph.travel_time(link.start, link.end)
    assert t <= link.attrs["length_m"] / (link.attrs["maxspeed_kmh"] / 3.6) + 1e-9


def test_oneway_segments_are_directed(graph, city):
    roads = city.networks["roads"]
    one = [lk for lk in roads.links.values() if lk.attrs.get("oneway")]
    two = [lk for lk in roads.links.values() if not lk.attrs.get("oneway")]
    assert all(graph.graph.has_edge(lk.start, lk.end, key=lk.id) for lk in one)
    assert not any(graph.graph.has_edge(lk.end, lk.start, key=lk.id) for lk in one)
    assert all(graph.graph.has_edge(lk.end, lk.start, key=lk.id) for lk in two)


def test_nearest_node_is_nearest_in_metres(graph, city, station):
    roads = city.networks["roads"]
    n = graph.nearest_node(*station)
    crs = graph.crs
    from shapely.geometry import Point
    p = project(Point(station), crs)
    d = {i: project(node.geometry, crs).distance(p) for i, node in roads.nodes.items()}
    assert d[n] == pytest.approx(min(d.values()))


def test_no_closure_is_full_service(city, graph, station):
    r = run_roads(city.networks["roads"], [], 3 * H, H, origins=[station], graph=graph)
    assert r.service_level().tolist() == [1.0] * 4
    base = r.baseline_s
    assert base.min() == 0.0 and np.isfinite(base).sum() > 1000
    # agrees with a plain networkx Dijkstra on the same graph
    src = graph.nearest_node(*station)
    ref = nx.single_source_dijkstra_path_length(graph.graph, src, weight="time_s")
    some = list(ref)[:50]
    assert [base[f"roads:{k}"] for k in some] == pytest.approx([ref[k] for k in some])


def test_closed_bridge_reroutes_and_reopens(city, graph, station):
    roads, bridges = city.networks["roads"], city.networks["roads-bridges"]
    span = next(iter(bridges.links.values()))
    road_id = span.attrs["road_link"].split(":", 1)[1]
    r = run_roads(roads, [Closure(f"roads-bridges:{span.id}", 1 * H, 2 * H)], 3 * H, H,
                  origins=[station], bridges=bridges, graph=graph)
    assert r.closed[1] == frozenset({road_id}) and r.closed[2] == frozenset()
    q = r.service_level()
    assert q.loc[H] < 1.0 and q.loc[0.0] == q.loc[2 * H] == 1.0
    worse = r.travel_time_s.loc[H] > r.baseline_s + 1e-9
    assert worse.any()
    assert (r.travel_time_s.loc[H] >= r.baseline_s - 1e-9).all()


def test_closing_every_exit_cuts_a_node_off(city, graph, station):
    roads = city.networks["roads"]
    target = next(n for n in roads.nodes if 2 <= graph.graph.degree(n) <= 4
                  and math.isfinite(graph.travel_times([station]).get(n, math.inf))
                  and graph.node_of(station) != n)
    exits = {k for _, _, k in graph.graph.in_edges(target, keys=True)}
    r = run_roads(roads, [Closure(f"roads:{k}") for k in exits], H, H, origins=[station],
                  targets=[target], graph=graph)
    assert r.unreachable()[f"roads:{target}"].all()
    assert r.service_level().tolist() == [0.0, 0.0]


def test_crew_bases_to_assets_matrix(city, graph, station):
    hospitals = [(f.geometry.x, f.geometry.y) for f in _facilities(city) if f.kind.value == "hospital"]
    m = graph.travel_time_matrix([station, hospitals[0]], hospitals)
    assert m.shape == (2, len(hospitals)) and m[1, 0] == 0.0
    assert m[0, 0] == pytest.approx(graph.travel_time(station, hospitals[0]))
    nearest = graph.travel_times([station, hospitals[0]])
    assert min(m[:, 1]) == pytest.approx(nearest[graph.node_of(hospitals[1])])


def _facilities(city):
    return list(city.facilities.values()) if isinstance(city.facilities, dict) else list(city.facilities)


def test_bad_conditions_are_refused(city, graph, station):
    roads = city.networks["roads"]
    with pytest.raises(UnknownElementError, match="no segment"):
        run_roads(roads, [Closure("roads:nope")], H, H, origins=[station], graph=graph)
    with pytest.raises(UnknownElementError, match="closures and outages only"):
        run_roads(roads, [Leak("roads:4236349-0", area_m2=1.0)], H, H, origins=[station], graph=graph)
    with pytest.raises(ValueError, match="at least one origin"):
        run_roads(roads, [], H, H, origins=[], graph=graph)
