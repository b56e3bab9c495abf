"""Restoration: crews from the demo city's fire station and water works repairing its water
pipes; the scheduler's invariants and the policies' orders as properties."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescity.demo.city import build_demo_city
from rescity.model import City
from rescity.simulate.metrics import loss_of_resilience, time_to_recover
from rescity.simulate.restoration import (
    POLICIES,
    XY,
    ByCriticality,
    ByPopulation,
    Crew,
    Job,
    NearestFirst,
    Policy,
    Schedule,
    TravelFn,
    asset_xy,
    crew_at,
    great_circle_m,
    matrix_travel,
    schedule_repairs,
    service_curves,
    straight_line,
)

BASES = ("facility:fire_station-1", "facility:treatment_plant-R1", "facility:treatment_plant-R2",
         "facility:pumping_station-PUMP_1")


@cache
def city() -> City:
    """The demo city, built once for this module."""
    return build_demo_city()


@cache
def pipes() -> tuple[tuple[str, XY], ...]:
    water = city().networks["water"]
    uids = sorted(water.uid(lk.id) for lk in water.links.values() if lk.kind == "pipe")
    return tuple((u, asset_xy(city(), u)) for u in uids)


# -- travel ----------------------------------------------------------------------------------------
def test_straight_line_travel_is_distance_over_speed() -> None:
    one_degree = 6_371_008.8 * math.pi / 180  # metres along a meridian
    assert great_circle_m((24.9, 60.0), (24.9, 61.0)) == pytest.approx(one_degree)
    assert straight_line(36.0)((24.9, 60.0), (24.9, 61.0)) == pytest.approx(one_degree / 10.0)
    assert straight_line(36.0, detour=1.5)((0, 0), (0, 1)) == pytest.approx(1.5 * one_degree / 10.0)
    with pytest.raises(ValueError, match="km/h"):
        straight_line(0.0)
    with pytest.raises(ValueError, match="detour"):
        straight_line(30.0, detour=0.5)


def test_matrix_travel_looks_up_the_points() -> None:
    pts = [(0.0, 0.0), (1.0, 0.0)]
    tr = matrix_travel(pts, [[0, 60], [90, 0]])
    assert tr((1.0, 0.0), (0.0, 0.0)) == 90.0
    with pytest.raises(KeyError, match="covers 2 points"):
        tr((2.0, 0.0), (0.0, 0.0))
    with pytest.raises(ValueError, match="2x2"):
        matrix_travel(pts, [[0]])


def test_crews_are_based_at_facilities_or_road_nodes() -> None:
    fire = crew_at(city(), "fire", "facility:fire_station-1")
    assert fire.base == pytest.approx((24.945, 60.165), abs=1e-3)
    node = sorted(city().networks["roads"].nodes)[0]
    road = crew_at(city(), "road", f"roads:{node}")
    assert road.base_node == node
    g = city().networks["roads"].nodes[node].geometry
    assert road.base == (g.x, g.y)
    with pytest.raises(KeyError, match="no asset"):
        asset_xy(city(), "water:nope")


# -- hand-computed schedule -------------------------------------------------------------------------------
BASE, A, B = (0.0, 0.0), (1.0, 0.0), (2.0, 0.0)
HAND_TRAVEL = matrix_travel([BASE, A, B], [[0, 600, 1200], [600, 0, 300], [1200, 300, 0]])


def test_one_crew_by_criticality_hand_computed() -> None:
    jobs = [Job("water:a", A, repair_h=1.0, weight=10), Job("water:b", B, repair_h=2.0, weight=50)]
    s = schedule_repairs([Crew("c1", BASE)], jobs, ByCriticality(), HAND_TRAVEL, return_to_base=True)
    b, a = s.assignments["water:b"], s.assignments["water:a"]
    assert (b.travel_start_s, b.arrival_s, b.repair_start_s, b.finish_s) == (0, 1200, 1200, 1200 + 7200)
    assert (a.travel_start_s, a.arrival_s, a.repair_start_s, a.finish_s) == (8400, 8700, 8700, 12300)
    assert [(e.time_s, e.uid, e.event) for e in s.events()] == [(8400, "water:b", "repaired"),
                                                                (12300, "water:a", "repaired")]
    assert [r.uid for r in s.routes["c1"]] == [None, "water:b", "water:a", None]
    assert s.routes["c1"][-1].arrive_s == 12300 + 600
    assert s.makespan_s == 12300


def test_nearest_first_and_population_differ_from_criticality() -> None:
    jobs = [Job("water:a", A, 1.0, weight=10, population=900), Job("water:b", B, 2.0, weight=50, population=100)]
    near = schedule_repairs([Crew("c1", BASE)], jobs, NearestFirst(), HAND_TRAVEL)
    pop = schedule_repairs([Crew("c1", BASE)], jobs, ByPopulation(), HAND_TRAVEL)
    for s in (near, pop):
        assert [e.uid for e in s.events()] == ["water:a", "water:b"]
        assert s.assignments["water:b"].arrival_s == 600 + 3600 + 300


def test_jobs_wait_for_release_and_crews_for_availability() -> None:
    jobs = [Job("water:a", A, 1.0, release_s=5000.0)]
    s = schedule_repairs([Crew("c1", BASE, available_s=100.0)], jobs, ByCriticality(), HAND_TRAVEL)
    a = s.assignments["water:a"]
    assert (a.travel_start_s, a.arrival_s, a.finish_s) == (5000.0, 5600.0, 9200.0)


def test_crews_only_take_their_networks_jobs() -> None:
    jobs = [Job("water:a", A, 1.0), Job("power:b", B, 1.0)]
    crews = [Crew("w", BASE, networks=frozenset({"water"})), Crew("p", BASE, networks=frozenset({"power"}))]
    s = schedule_repairs(crews, jobs, ByCriticality(), HAND_TRAVEL)
    assert s.assignments["water:a"].crew == "w" and s.assignments["power:b"].crew == "p"
    with pytest.raises(ValueError, match="no crew repairs the network of 1 job"):
        schedule_repairs(crews[:1], jobs, ByCriticality(), HAND_TRAVEL)
    lax = schedule_repairs(crews[:1], jobs, ByCriticality(), HAND_TRAVEL, strict=False)
    assert lax.unassigned == ("power:b",) and list(lax.assignments) == ["water:a"]


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="repair time"):
        Job("water:a", A, repair_h=-1.0)
    with pytest.raises(ValueError, match="listed twice"):
        schedule_repairs([Crew("c", BASE)], [Job("water:a", A, 1), Job("water:a", A, 1)], ByCriticality())
    with pytest.raises(ValueError, match="unique"):
        schedule_repairs([Crew("c", BASE), Crew("c", A)], [], ByCriticality())
    with pytest.raises(ValueError, match="crew c cannot reach job water:a"):
        schedule_repairs([Crew("c", BASE)], [Job("water:a", A, 1)], ByCriticality(), lambda a, b: math.inf)
    with pytest.raises(ValueError, match="at least one crew"):
        schedule_repairs([], [], ByCriticality())

    class Rogue:
        def choose(self, pending, *, crew, at, now_s, travel_s):  # type: ignore[no-untyped-def]
            return Job("water:zzz", A, 1.0)

    with pytest.raises(ValueError, match="not one of the pending jobs"):
        schedule_repairs([Crew("c", BASE)], [Job("water:a", A, 1)], Rogue(), HAND_TRAVEL)


class FarthestFirst:
    """A city's own policy: the farthest job first (to test the protocol)."""

    def choose(self, pending: list[Job], *, crew: Crew, at: XY, now_s: float, travel_s: TravelFn) -> Job:
        return min(pending, key=lambda j: (-travel_s(at, j.xy), j.uid))


def test_a_citys_own_policy_plugs_in() -> None:
    assert isinstance(FarthestFirst(), Policy)
    assert all(isinstance(p(), Policy) for p in POLICIES.values())
    jobs = [Job("water:a", A, 1.0), Job("water:b", B, 1.0)]
    s = schedule_repairs([Crew("c1", BASE)], jobs, FarthestFirst(), HAND_TRAVEL)
    assert [e.uid for e in s.events()] == ["water:b", "water:a"]


# -- the demo city: properties -------------------------------------------------------------------------
@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Crew], list[Job], str]:
    n_crews = draw(st.integers(1, 4))
    crews = []
    for k in range(n_crews):
        crews.append(crew_at(city(), f"crew-{k}", draw(st.sampled_from(BASES)),
                             available_s=draw(st.sampled_from([0.0, 0.0, 1800.0]))))
    idx = draw(st.lists(st.integers(0, len(pipes()) - 1), min_size=0, max_size=25, unique=True))
    jobs = []
    for i in idx:
        uid, xy = pipes()[i]
        jobs.append(Job(uid, xy, repair_h=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0, 8.0])),
                        weight=draw(st.integers(0, 5)), population=draw(st.integers(0, 3)) * 100.0,
                        release_s=draw(st.sampled_from([0.0, 0.0, 0.0, 3600.0, 7200.0]))))
    return crews, jobs, draw(st.sampled_from(sorted(POLICIES)))


TRAVEL = straight_line(25.0, detour=1.3)
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _walk(s: Schedule) -> None:
    """Every crew's assignments in order: one place at a time, travel as the function says."""
    for cid, mine in s.by_crew().items():
        stops = s.routes[cid]
        assert [s.uid for s in stops if s.uid is not None] == [a.uid for a in mine]
        prev_end, prev_xy = stops[0].arrive_s, stops[0].xy
        for a, stop in zip(mine, [s for s in stops if s.uid is not None], strict=True):
            assert a.travel_start_s >= prev_end  # never in two places
            assert a.arrival_s == pytest.approx(a.travel_start_s + TRAVEL(prev_xy, stop.xy))
            assert a.repair_start_s >= a.arrival_s  # never before the crew is there
            prev_end, prev_xy = a.finish_s, stop.xy


@PROPS
@given(scenarios())
def test_every_job_is_done_once_by_one_crew_in_one_place_at_a_time(sc: tuple[list[Crew], list[Job], str]) -> None:
    crews, jobs, name = sc
    s = schedule_repairs(crews, jobs, POLICIES[name](), TRAVEL)
    assert sorted(s.assignments) == sorted(j.uid for j in jobs)
    assert sum(len(v) for v in s.by_crew().values()) == len(jobs)
    by_uid = {j.uid: j for j in jobs}
    avail = {c.id: c.available_s for c in crews}
    for a in s.assignments.values():
        j = by_uid[a.uid]
        assert a.repair_start_s >= j.release_s and a.travel_start_s >= avail[a.crew]
        assert a.finish_s == pytest.approx(a.repair_start_s + 3600 * j.repair_h)
    _walk(s)
    ev = s.events()
    assert ev == sorted(ev) and len(ev) == len(jobs) and all(e.event == "repaired" for e in ev)
    # deterministic: the same input gives the same schedule
    assert schedule_repairs(crews, jobs, POLICIES[name](), TRAVEL) == s


def _key(name: str, job: Job, at: XY) -> tuple[float, str]:
    if name == "criticality":
        return (-job.weight, job.uid)
    if name == "population":
        return (-job.population, job.uid)
    return (TRAVEL(at, job.xy), job.uid)


@PROPS
@given(scenarios())
def test_policies_take_their_best_pending_job(sc: tuple[list[Crew], list[Job], str]) -> None:
    """At each decision (in the scheduler's order: time, then crew id) the job taken is the
    policy's best among the jobs still pending and released then."""
    crews, jobs, name = sc
    s = schedule_repairs(crews, jobs, POLICIES[name](), TRAVEL)
    by_uid = {j.uid: j for j in jobs}
    order = sorted(s.assignments.values(), key=lambda a: (a.travel_start_s, a.crew))
    position = {c.id: c.base for c in crews}
    for k, a in enumerate(order):
        later = [by_uid[b.uid] for b in order[k + 1:] if by_uid[b.uid].release_s <= a.travel_start_s]
        mine = _key(name, by_uid[a.uid], position[a.crew])
        assert all(mine <= _key(name, j, position[a.crew]) for j in later)
        position[a.crew] = by_uid[a.uid].xy


@PROPS
@given(scenarios())
def test_one_crew_by_criticality_repairs_in_order_of_weight(sc: tuple[list[Crew], list[Job], str]) -> None:
    crews, jobs, _ = sc
    released = [Job(j.uid, j.xy, j.repair_h, j.weight, j.population) for j in jobs]
    s = schedule_repairs(crews[:1], released, ByCriticality(), TRAVEL)
    weight = {j.uid: j.weight for j in released}
    keys = [(-weight[e.uid], e.uid) for e in s.events()]
    assert keys == sorted(keys)  # heaviest first, ties by uid


# -- service curves ---------------------------------------------------------------------------------
def test_service_curve_hand_computed() -> None:
    jobs = [Job("water:a", A, 2.0, weight=30), Job("water:b", B, 3.0, weight=20)]
    # travel free: repairs finish at 2 h and 5 h
    s = schedule_repairs([Crew("c1", A)], jobs, ByCriticality(), lambda a, b: 0.0)
    q = service_curves(s, {"water:a": {"water": 30}, "water:b": {"water": 20, "power": 5}},
                       {"water": 100, "power": 50})
    np.testing.assert_allclose(q["water"].t_h, [0, 0, 2, 2, 5, 5])
    np.testing.assert_allclose(q["water"].q_pct, [100, 50, 50, 80, 80, 100])
    np.testing.assert_allclose(q["power"].q_pct, [100, 90, 90, 100])
    assert loss_of_resilience(*q["water"]) == pytest.approx(50 * 2 + 20 * 3)
    assert time_to_recover(*q["water"], 100.0) == 5.0
    later = service_curves(s, {"water:a": {"water": 30}}, {"water": 100}, t_end_s=10 * 3600, hazard_s=600)
    np.testing.assert_allclose(later["water"].t_h, [0, 600 / 3600, 600 / 3600, 2, 2, 10])
    np.testing.assert_allclose(later["water"].q_pct, [100, 100, 70, 70, 100, 100])
    with pytest.raises(ValueError, match="no total"):
        service_curves(s, {"water:a": {"gas": 1}}, {"water": 100})


def test_a_component_never_repaired_keeps_its_service_lost() -> None:
    s = schedule_repairs([Crew("c1", A)], [Job("water:a", A, 1.0)], ByCriticality(), lambda a, b: 0.0)
    q = service_curves(s, {"water:a": {"water": 10}, "water:x": {"water": 15}}, {"water": 100})
    assert q["water"].q_pct[-1] == pytest.approx(85.0)
    assert time_to_recover(*q["water"], 100.0) is None


@PROPS
@given(scenarios())
def test_service_recovers_fully_once_every_repair_is_done(sc: tuple[list[Crew], list[Job], str]) -> None:
    crews, jobs, name = sc
    s = schedule_repairs(crews, jobs, POLICIES[name](), TRAVEL)
    effects = {j.uid: {"water": 0.1 + j.weight} for j in jobs}
    total = sum(e["water"] for e in effects.values()) or 1.0
    q = service_curves(s, effects, {"water": total})["water"]
    assert q.q_pct[-1] == 100.0
    assert np.all(np.diff(q.q_pct[1:]) >= 0)  # after the hazard it only goes up
    if jobs:
        assert q.q_pct[1] == pytest.approx(0.0, abs=1e-9)
        assert time_to_recover(*q, 100.0) == pytest.approx(s.makespan_s / 3600)
        # R = Σ_c (share of c) x (its repair time): each component's loss lasts until its repair
        expected = sum(100 * effects[u]["water"] / total * a.finish_s / 3600 for u, a in s.assignments.items())
        assert loss_of_resilience(*q) == pytest.approx(expected)
