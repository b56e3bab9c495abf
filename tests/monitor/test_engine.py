"""The vectorised warning engine equals a plain reading-by-reading implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point

from rescity.model import City, Link, Network, NetworkType, Node, Sensor
from rescity.model.spatial import AssetSelector, spatial_adjacency
from rescity.monitor.batch import ReadingBatch
from rescity.monitor.engine import (
    GradedEvaluator,
    ReferenceEngine,
    Transition,
    TransitionKind,
    WarningEngine,
    register_evaluator,
)
from rescity.monitor.registry import SensorRegistry
from rescity.monitor.specs import GradedSpec, parse_model, register_kind

MIN = 60_000
C = (24.9443, 60.1716)


def at(dx_m: float, dy_m: float) -> tuple[float, float]:
    return (C[0] + dx_m / 55_600.0, C[1] + dy_m / 111_320.0)


def registry(n: int, quantity: str = "pressure") -> SensorRegistry:
    """n sensors on assets w:0 .. w:n-1 (no city needed)."""
    ids = tuple(f"s{i}" for i in range(n))
    return SensorRegistry(
        ids=ids, quantities=(quantity,), quantity=np.zeros(n, dtype=np.int16), low=np.full(n, -10.0),
        high=np.full(n, 200.0), asset=tuple(f"w:{i}" for i in range(n)), network=("w",) * n,
        lon=np.array([at(100 * i, 0)[0] for i in range(n)]), lat=np.full(n, C[1]),
    )


def key(trs: list[Transition]) -> list[tuple[int, str, str, str, int, int]]:
    return [(t.ts_ms, t.model, t.sensor, t.kind.value, t.level_before, t.level_after) for t in trs]


# -- an independent reference for graded thresholds ------------------------------------------------
class PlainThreshold:
    """Graded thresholds (all four levels given) with hysteresis and minimum duration, written
    from the spec's words, reading by reading."""

    def __init__(self, name: str, direction: str, th: list[float], h: float, for_s: float, sensors: list[str]):
        self.name, self.dir, self.th, self.h, self.for_ms = name, direction, th, h, int(for_s * 1000)
        self.state = {s: {"sev": 0, "firing": False, "since": 0} for s in sensors}
        self.last: dict[str, int] = {}

    def _bad(self, v: float, t: float, margin: float = 0.0) -> bool:
        """Is v past threshold t (shifted back towards normal by margin)?"""
        return v >= t - margin if self.dir == "high" else v <= t + margin

    def _stays(self, v: float, t: float) -> bool:
        return v > t - self.h if self.dir == "high" else v < t + self.h

    def step(self, s: str, ts: int, v: float) -> list[tuple]:
        st_ = self.state[s]
        cur = st_["sev"]
        entry = max([k + 1 for k in range(4) if self._bad(v, self.th[k])], default=0)
        if entry >= cur:
            new = entry
        else:
            new = cur
            while new > entry and not self._stays(v, self.th[new - 1]):
                new -= 1
        return self._machine(s, ts, cur, new)

    def _machine(self, s: str, ts: int, cur: int, new: int) -> list[tuple]:
        st_ = self.state[s]
        lv = (0, 4, 3, 2, 1)
        out = []
        if cur == 0 and new > 0:
            st_["since"] = ts
        fire = new > 0 and not st_["firing"] and ts - st_["since"] >= self.for_ms
        if fire:
            out.append((ts, self.name, s, "firing", lv[cur], lv[new]))
        elif cur == 0 and new > 0:
            out.append((ts, self.name, s, "pending", 0, lv[new]))
        elif cur > 0 and new == 0:
            out.append((ts, self.name, s, "resolved", lv[cur], 0))
        elif cur != new:
            out.append((ts, self.name, s, "level", lv[cur], lv[new]))
        st_["sev"] = new
        st_["firing"] = (st_["firing"] or fire) and new > 0
        return out

    def tick(self, now: int) -> list[tuple]:
        lv = (0, 4, 3, 2, 1)
        out = []
        for s, st_ in self.state.items():
            if st_["sev"] > 0 and not st_["firing"] and now - st_["since"] >= self.for_ms:
                st_["firing"] = True
                out.append((now, self.name, s, "firing", lv[st_["sev"]], lv[st_["sev"]]))
        return out


HIGH = [60.0, 70.0, 80.0, 90.0]
LOW = [40.0, 30.0, 20.0, 10.0]


def two_models(h: float, for_s: float) -> list[GradedSpec]:
    return [
        parse_model({"name": "hi", "kind": "threshold", "select": {}, "direction": "high",
                     "thresholds": dict(zip(("blue", "yellow", "orange", "red"), HIGH, strict=True)),
                     "hysteresis": h, "for_s": for_s}),  # type: ignore[list-item]
        parse_model({"name": "lo", "kind": "threshold", "select": {"sensors": ["s0", "s2"]}, "direction": "low",
                     "thresholds": dict(zip(("blue", "yellow", "orange", "red"), LOW, strict=True)),
                     "hysteresis": h, "for_s": for_s}),  # type: ignore[list-item]
    ]


values = st.sampled_from([0.0, 9.5, 10.0, 10.5, 19.0, 20.0, 25.0, 30.0, 31.0, 40.0, 41.0, 50.0,
                          59.0, 60.0, 61.0, 69.5, 70.0, 79.0, 80.0, 85.0, 89.0, 90.0, 95.0, math.nan])


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[tuple[int, int, float]], list[int], list[int], int]:
    """Readings (sensor, ts, value) with each sensor's times non-decreasing, cut points, ticks."""
    n_sensors = 3
    readings = []
    clock = [0] * n_sensors
    for _ in range(draw(st.integers(1, 60))):
        s = draw(st.integers(0, n_sensors - 1))
        clock[s] += draw(st.sampled_from([0, 10_000, 30_000, 60_000, 200_000]))
        readings.append((s, clock[s], draw(values)))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(readings)), max_size=6))))
    ticks = draw(st.lists(st.sampled_from([0, 1, 2]), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    seed = draw(st.integers(0, 2**16))
    return readings, cuts, ticks, seed


def _run_both(readings, cuts, ticks, seed, h, for_s, shuffle):
    reg = registry(3)
    eng = WarningEngine(two_models(h, for_s), reg)
    ref_hi = PlainThreshold("hi", "high", HIGH, h, for_s, ["s0", "s1", "s2"])
    ref_lo = PlainThreshold("lo", "low", LOW, h, for_s, ["s0", "s2"])
    rng = np.random.default_rng(seed)
    got: list[tuple] = []
    want: list[tuple] = []
    bounds = [0, *cuts, len(readings)]
    last: dict[int, int] = {}
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        part = readings[a:b]
        if part:
            arr = np.array(part, dtype=float)
            order = rng.permutation(len(part)) if shuffle else np.arange(len(part))
            got += key(eng.process(ReadingBatch.of(arr[order, 0], arr[order, 1], arr[order, 2])))
            # the reference: readings in time order (stable), one by one
            step: list[tuple] = []
            for s, ts, v in sorted(part, key=lambda r: r[1]):
                if v != v or ts < last.get(s, ts):
                    continue
                last[s] = ts
                step += ref_hi.step(f"s{s}", ts, v)
                if s in (0, 2):
                    step += ref_lo.step(f"s{s}", ts, v)
            want += sorted(step, key=lambda r: (r[0], r[1] != "hi", r[2]))
        if ticks[k] and part:
            now = max(r[1] for r in part) + ticks[k] * 100_000
            got += key(eng.tick(now))
            want += sorted(ref_hi.tick(now) + ref_lo.tick(now), key=lambda r: (r[1] != "hi", r[2]))
    return got, want


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([0.0, 0.5, 1.0, 6.0]), st.sampled_from([0.0, 30.0, 60.0, 240.0]))
def test_thresholds_equal_a_plain_loop_for_any_batch_split(stream, h, for_s):
    readings, cuts, ticks, seed = stream
    got, want = _run_both(readings, cuts, ticks, seed, h, for_s, shuffle=False)
    assert got == want


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.sampled_from([0.0, 1.0]), st.sampled_from([0.0, 60.0]))
def test_batch_order_does_not_matter_when_each_sensor_is_in_time_order(stream, h, for_s):
    """A shuffled batch gives the same transitions (readings re-sorted per sensor by time;
    equal times keep their batch order, so only time-distinct streams are compared)."""
    readings, cuts, ticks, seed = stream
    seen = set()
    uniq = []
    for r in readings:
        if (r[0], r[1]) not in seen:
            seen.add((r[0], r[1]))
            uniq.append(r)
    got, want = _run_both(uniq, [c for c in cuts if c <= len(uniq)], ticks, seed, h, for_s, shuffle=True)
    assert got == want


def test_escalation_and_de_escalation_are_level_changes_of_one_condition():
    eng = WarningEngine(two_models(1.0, 0.0)[:1], registry(1))
    vals = [50, 61, 75, 95, 89.5, 88.9, 69.5, 68, 58.9]
    trs = []
    for k, v in enumerate(vals):
        trs += eng.process(ReadingBatch.of([0], [k * MIN], [v]))
    got = [(t.ts_ms // MIN, t.kind.value, t.level_after) for t in trs]
    # 89.5 stays red (90 - 1 < 89.5); 88.9 leaves it; 69.5 leaves orange (<= 79) but stays
    # yellow (> 69); 68 leaves yellow but stays blue (> 59); 58.9 resolves
    assert got == [(1, "firing", 4), (2, "level", 3), (3, "level", 1), (5, "level", 2),
                   (6, "level", 3), (7, "level", 4), (8, "resolved", 0)]


def test_pending_fires_on_tick_after_the_minimum_duration_without_new_readings():
    eng = WarningEngine(two_models(0.0, 120.0)[:1], registry(1))
    assert key(eng.process(ReadingBatch.of([0], [0], [75.0]))) == [(0, "hi", "s0", "pending", 0, 3)]
    assert eng.tick(119_999) == []
    assert key(eng.tick(120_000)) == [(120_000, "hi", "s0", "firing", 3, 3)]
    assert eng.tick(500_000) == []
    assert key(eng.process(ReadingBatch.of([0], [600_000], [10.0]))) == [(600_000, "hi", "s0", "resolved", 3, 0)]


def test_late_and_nan_readings_are_dropped_and_counted():
    eng = WarningEngine(two_models(0.0, 0.0)[:1], registry(2))
    eng.process(ReadingBatch.of([0, 1], [MIN, MIN], [50.0, 50.0]))
    trs = eng.process(ReadingBatch.of([0, 1, 1], [0, 2 * MIN, 3 * MIN], [95.0, math.nan, 95.0]))
    assert key(trs) == [(3 * MIN, "hi", "s1", "firing", 0, 1)]
    assert eng.stats["late"] == 1 and eng.stats["nan"] == 1


# -- other graded kinds against the reference engine ---------------------------------------------------
QUALITY = [
    {"name": "rate_fall", "kind": "rate", "select": {}, "direction": "fall", "per": "min",
     "thresholds": {"blue": 5, "yellow": 10, "orange": 20, "red": 40}, "hysteresis": 1, "for_s": 0},
    {"name": "rate_any", "kind": "rate", "select": {"sensors": ["s1"]}, "direction": "both", "per": "s",
     "thresholds": {"yellow": 0.2, "red": 1.0}, "for_s": 60},
    {"name": "step_up", "kind": "step", "select": {}, "direction": "rise", "thresholds": {"blue": 10, "red": 30}},
    {"name": "stuck", "kind": "stuck", "select": {}, "tolerance": 0.5, "thresholds": {"blue": 120, "yellow": 300}},
    {"name": "drift", "kind": "drift", "select": {}, "fast_tau_s": 60, "slow_tau_s": 600,
     "thresholds": {"blue": 2, "yellow": 5, "orange": 10}, "hysteresis": 0.5, "for_s": 60},
    {"name": "silent", "kind": "silence", "select": {}, "thresholds": {"blue": 120, "orange": 400}},
    {"name": "rel", "kind": "threshold", "select": {}, "direction": "both",
     "thresholds": {"blue": 5, "red": 20}, "hysteresis": 1},
]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_rate_step_and_data_quality_kinds_equal_the_reference_engine(stream):
    readings, cuts, ticks, _seed = stream
    specs = [parse_model(d) for d in QUALITY]
    reg = registry(3)
    eng = WarningEngine(specs, reg, start_ms=0)
    ref = ReferenceEngine(specs, reg, start_ms=0)
    bounds = [0, *cuts, len(readings)]
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        part = readings[a:b]
        if part:
            arr = np.array(part, dtype=float)
            batch = ReadingBatch.of(arr[:, 0], arr[:, 1], arr[:, 2])
            g, w = eng.process(batch), ref.process(batch)
            assert key(g) == key(w)
            for x, y in zip(g, w, strict=True):
                assert x.value == pytest.approx(y.value, rel=1e-9, abs=1e-9, nan_ok=True)
        now = (max(r[1] for r in part) if part else 0) + ticks[k] * 100_000
        assert key(eng.tick(now)) == key(ref.tick(now))


def test_silence_grades_time_since_the_last_reading_and_a_reading_resolves_it():
    spec = parse_model({"name": "silent", "kind": "silence", "select": {},
                        "thresholds": {"blue": 900, "yellow": 3600}})
    eng = WarningEngine([spec], registry(2), start_ms=0)
    eng.process(ReadingBatch.of([0], [0], [1.0]))
    assert key(eng.tick(900_000)) == [(900_000, "silent", "s0", "firing", 0, 4), (900_000, "silent", "s1", "firing", 0, 4)]
    assert key(eng.process(ReadingBatch.of([1], [1_000_000], [1.0]))) == [(1_000_000, "silent", "s1", "resolved", 4, 0)]
    assert key(eng.tick(3_600_000)) == [(3_600_000, "silent", "s0", "level", 4, 3),
                                        (3_600_000, "silent", "s1", "firing", 0, 4)]


def test_relative_thresholds_grade_against_an_asset_attribute():
    city, reg = coupling_city()
    spec = parse_model({"name": "fill", "kind": "threshold", "select": {"quantity": "level"},
                        "relative_to": {"attr": "max_depth_m", "mode": "ratio"},
                        "thresholds": {"yellow": 0.75, "red": 1.0}})
    eng = WarningEngine([spec], reg, city)
    i = reg.index["drainage.m_near.level"]
    trs = eng.process(ReadingBatch.of([i], [0], [1.6]))  # 1.6 m of 2.0 m = 0.8
    assert [(t.level_after, round(t.value, 3)) for t in trs] == [(3, 0.8)]
    assert any("m_far" in n for n in eng.notes)  # no max_depth_m: left out and reported


# -- pluggable kinds -------------------------------------------------------------------------------------
def test_a_new_kind_plugs_in_by_registering_a_spec_and_an_evaluator():
    from typing import Literal

    @register_kind
    class DoubleSpec(GradedSpec):
        kind: Literal["double_test"] = "double_test"

    @register_evaluator("double_test")
    class DoubleEvaluator(GradedEvaluator):
        stateful = False

        def derive(self, sl, t, v):
            return self._signed(sl, 2.0 * v)

    spec = parse_model({"name": "dbl", "kind": "double_test", "select": {}, "thresholds": {"red": 10}})
    eng = WarningEngine([spec], registry(1))
    assert key(eng.process(ReadingBatch.of([0], [0], [6.0]))) == [(0, "dbl", "s0", "firing", 0, 1)]


# -- composite models on a small real-looking city ---------------------------------------------------------
def coupling_city() -> tuple[City, SensorRegistry]:
    """A gas main along a street, a manhole 4 m from it and one 60 m away, a rain gauge,
    a bridge span with strain and traffic sensors, three pressure sensors close together
    and one far away."""
    city = City(name="t", center=C)
    gas = Network("gas", NetworkType.GAS)
    gas.add_node(Node("a", "junction", Point(at(0, 0))))
    gas.add_node(Node("b", "junction", Point(at(300, 0))))
    gas.add_link(Link("g1", "main", "a", "b", LineString([at(0, 0), at(300, 0)])))
    city.add_network(gas)
    dr = Network("drainage", NetworkType.DRAINAGE)
    dr.add_node(Node("m_near", "junction", Point(at(100, 4)), attrs={"max_depth_m": 2.0}))
    dr.add_node(Node("m_far", "outfall", Point(at(100, 60))))
    dr.add_node(Node("sc", "subcatchment", Point(at(150, 30))))
    city.add_network(dr)
    br = Network("bridges", NetworkType.BRIDGE)
    br.add_node(Node("ab1", "abutment", Point(at(0, 200))))
    br.add_node(Node("ab2", "abutment", Point(at(60, 200))))
    br.add_link(Link("span", "bridge_span", "ab1", "ab2", LineString([at(0, 200), at(60, 200)]),
                     attrs={"length_m": 60.0}))
    city.add_network(br)
    w = Network("water", NetworkType.WATER)
    for i, (x, y) in enumerate([(0, -300), (150, -300), (300, -300), (3000, -300)]):
        w.add_node(Node(f"n{i}", "junction", Point(at(x, y))))
    city.add_network(w)
    for d in spatial_adjacency(city, AssetSelector(NetworkType.GAS, frozenset({"main"}), "link"),
                               AssetSelector(NetworkType.DRAINAGE, frozenset({"junction", "outfall"}), "node"), 70.0):
        city.add_interdependency(d)

    def sensor(net: str, eid: str, q: str) -> None:
        e = city.asset(f"{net}:{eid}")
        g = e.geometry if isinstance(e.geometry, Point) else e.geometry.interpolate(0.5, normalized=True)
        city.add_sensor(Sensor(id=f"{net}.{eid}.{q}", asset=f"{net}:{eid}", quantity=q, geometry=g))

    sensor("drainage", "m_near", "methane")
    sensor("drainage", "m_far", "methane")
    sensor("drainage", "m_near", "level")
    sensor("drainage", "m_far", "level")
    sensor("drainage", "sc", "rainfall")
    sensor("bridges", "span", "strain")
    sensor("bridges", "span", "traffic")
    for i in range(4):
        sensor("water", f"n{i}", "pressure")
    return city, SensorRegistry.from_city(city)


COMPOSITES = [
    {"name": "manhole_methane", "kind": "composite",
     "select": {"quantity": "methane", "network": "drainage", "near": {"network": "gas", "asset_kind": ["main"], "within_m": 10}},
     "thresholds": {"blue": 2, "yellow": 5, "orange": 10, "red": 25}, "hysteresis": 0.5,
     "raise": [{"when": {"quantity": "rainfall", "scope": "nearest", "op": ">=", "value": 16.7}, "levels": 1}]},
    {"name": "bridge_overload", "kind": "composite", "select": {"quantity": "strain", "network": "bridge"},
     "thresholds": {"yellow": 450, "red": 800},
     "require": [{"quantity": "traffic", "scope": "same_asset", "op": ">=", "value": 1200, "max_age_s": 900}]},
    {"name": "p_low", "kind": "threshold", "select": {"quantity": "pressure", "network": "water"},
     "direction": "low", "thresholds": {"blue": 20, "yellow": 14, "orange": 10, "red": 5}},
    {"name": "main_break", "kind": "cluster", "of_model": "p_low", "within_m": 200,
     "thresholds": {"yellow": 2, "orange": 3}},
]


def _feed(eng: WarningEngine, reg: SensorRegistry, rows: list[tuple[str, int, float]]) -> list[Transition]:
    return eng.process(ReadingBatch.of(reg.lookup([r[0] for r in rows]), [r[1] for r in rows], [r[2] for r in rows]))


def test_methane_next_to_a_gas_main_is_raised_a_level_during_heavy_rain():
    city, reg = coupling_city()
    eng = WarningEngine([parse_model(d) for d in COMPOSITES], reg, city)
    assert eng.selected(eng.models[0]).tolist() == [reg.index["drainage.m_near.methane"]]
    trs = _feed(eng, reg, [("drainage.m_near.methane", 0, 6.0), ("drainage.m_far.methane", 0, 30.0)])
    assert key(trs) == [(0, "manhole_methane", "drainage.m_near.methane", "firing", 0, 3)]  # yellow
    trs = _feed(eng, reg, [("drainage.sc.rainfall", MIN, 20.0)])  # heavy rain at the nearest gauge
    assert key(trs) == [(MIN, "manhole_methane", "drainage.m_near.methane", "level", 3, 2)]  # orange
    trs = _feed(eng, reg, [("drainage.sc.rainfall", 2 * MIN, 3.0)])
    assert key(trs) == [(2 * MIN, "manhole_methane", "drainage.m_near.methane", "level", 2, 3)]
    # the rain reading ages out: a raise needs a fresh reading (max_age_s)
    _feed(eng, reg, [("drainage.sc.rainfall", 3 * MIN, 25.0)])
    assert key(eng.tick(3 * MIN + 3_600_001)) == [(3 * MIN + 3_600_001, "manhole_methane", "drainage.m_near.methane", "level", 2, 3)]


def test_bridge_strain_counts_only_while_heavy_traffic_is_measured():
    city, reg = coupling_city()
    eng = WarningEngine([parse_model(d) for d in COMPOSITES], reg, city)
    assert _feed(eng, reg, [("bridges.span.strain", 0, 900.0), ("bridges.span.traffic", 0, 300.0)]) == []
    trs = _feed(eng, reg, [("bridges.span.traffic", MIN, 1500.0)])
    assert key(trs) == [(MIN, "bridge_overload", "bridges.span.strain", "firing", 0, 1)]
    trs = _feed(eng, reg, [("bridges.span.traffic", 2 * MIN, 600.0)])
    assert key(trs) == [(2 * MIN, "bridge_overload", "bridges.span.strain", "resolved", 1, 0)]


def test_adjacent_low_pressure_alarms_fold_into_one_suspected_main_break():
    city, reg = coupling_city()
    eng = WarningEngine([parse_model(d) for d in COMPOSITES], reg, city)
    rows = [(f"water.n{i}.pressure", 0, 50.0) for i in range(4)]
    assert _feed(eng, reg, rows) == []
    trs = _feed(eng, reg, [("water.n0.pressure", MIN, 8.0), ("water.n3.pressure", MIN, 8.0)])
    assert [t.model for t in trs] == ["p_low", "p_low"]  # far apart: no cluster
    trs = _feed(eng, reg, [("water.n1.pressure", 2 * MIN, 12.0)])
    mb = [t for t in trs if t.model == "main_break"]
    assert [(t.kind, t.level_after, t.asset) for t in mb] == [(TransitionKind.FIRING, 3, "water:n0")]
    assert mb[0].details["members"] == ["water:n0", "water:n1"]
    trs = _feed(eng, reg, [("water.n2.pressure", 3 * MIN, 12.0)])
    mb = [t for t in trs if t.model == "main_break"]
    assert [(t.kind, t.level_after) for t in mb] == [(TransitionKind.LEVEL, 2)]
    assert mb[0].details["members"] == ["water:n0", "water:n1", "water:n2"]
    trs = _feed(eng, reg, [(f"water.n{i}.pressure", 4 * MIN, 50.0) for i in range(3)])
    mb = [t for t in trs if t.model == "main_break"]
    assert [(t.kind, t.asset) for t in mb] == [(TransitionKind.RESOLVED, "water:n0")]


def test_default_catalogue_builds_on_a_small_city():
    from rescity.monitor.specs import load_catalogue

    city, reg = coupling_city()
    eng = WarningEngine(load_catalogue().enabled(), reg, city)
    names = {m.name for m in eng.models}
    assert {"pressure_low", "main_break", "methane_manhole_near_gas", "sensor_silent"} <= names
    assert eng.selected(next(m for m in eng.models if m.name == "methane_manhole_near_gas")).tolist() == [
        reg.index["drainage.m_near.methane"]]
