"""Batches of any shape (many readings per sensor, any order, late and NaN readings mixed
in) give exactly the transitions of the plain per-reading loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescity.monitor.batch import ReadingBatch
from rescity.monitor.engine import BatchView, ReferenceEngine, Transition, WarningEngine
from rescity.monitor.registry import SensorRegistry
from rescity.monitor.specs import parse_model

N_SENSORS = 6


def registry(n: int) -> SensorRegistry:
    ids = tuple(f"s{i}" for i in range(n))
    return SensorRegistry(
        ids=ids, quantities=("pressure",), quantity=np.zeros(n, dtype=np.int16), low=np.full(n, -10.0),
        high=np.full(n, 200.0), asset=tuple(f"w:{i}" for i in range(n)), network=("w",) * n,
        lon=np.linspace(24.9, 25.0, n), lat=np.full(n, 60.17),
    )


def key(trs: list[Transition]) -> list[tuple[int, str, str, str, int, int]]:
    return [(t.ts_ms, t.model, t.sensor, t.kind.value, t.level_before, t.level_after) for t in trs]


LEVELS = ("blue", "yellow", "orange", "red")


def models(h: float, for_s: float) -> list:
    """Several models on the same sensors (several slots per sensor), every graded kind the
    reference engine knows."""
    return [parse_model(d) for d in [
        {"name": "hi", "kind": "threshold", "select": {}, "direction": "high",
         "thresholds": dict(zip(LEVELS, [60, 70, 80, 90], strict=True)), "hysteresis": h, "for_s": for_s},
        {"name": "lo", "kind": "threshold", "select": {"sensors": ["s0", "s2", "s5"]}, "direction": "low",
         "thresholds": dict(zip(LEVELS, [40, 30, 20, 10], strict=True)), "hysteresis": h, "for_s": 2 * for_s},
        {"name": "band", "kind": "threshold", "select": {"sensors": ["s1", "s2", "s3"]}, "direction": "both",
         "thresholds": {"yellow": 45, "red": 85}, "hysteresis": h, "for_s": 0},
        {"name": "rate", "kind": "rate", "select": {}, "direction": "both", "per": "min",
         "thresholds": {"blue": 5, "yellow": 20, "red": 60}, "hysteresis": 1, "for_s": for_s},
        {"name": "step", "kind": "step", "select": {"sensors": ["s0", "s4"]}, "direction": "fall",
         "thresholds": {"blue": 10, "orange": 40}, "for_s": 0},
        {"name": "stuck", "kind": "stuck", "select": {}, "tolerance": 0.5, "thresholds": {"blue": 120, "yellow": 300}},
        {"name": "drift", "kind": "drift", "select": {"sensors": ["s1", "s3"]}, "fast_tau_s": 60, "slow_tau_s": 600,
         "thresholds": {"blue": 2, "yellow": 5, "orange": 10}, "hysteresis": 0.5, "for_s": 60},
        {"name": "silent", "kind": "silence", "select": {}, "thresholds": {"blue": 120, "orange": 400}},
    ]]


values = st.sampled_from([0.0, 9.5, 10.0, 19.0, 25.0, 30.0, 31.0, 40.0, 41.0, 44.5, 45.0, 50.0,
                          59.0, 60.0, 61.0, 69.5, 70.0, 79.0, 80.0, 85.0, 89.0, 90.0, 95.0, math.nan])


@st.composite
def shuffled_batches(draw: st.DrawFn) -> tuple[list[tuple[int, int, float]], list[int], list[int], int]:
    """Readings (sensor, ts, value): each sensor's clock mostly moves on, sometimes stands
    still (equal times) or goes back (late readings); cut points; ticks; a shuffle seed."""
    readings = []
    clock = [0] * N_SENSORS
    for _ in range(draw(st.integers(1, 150))):
        s = draw(st.integers(0, N_SENSORS - 1))
        step = draw(st.sampled_from([0, 10_000, 30_000, 60_000, 60_000, 200_000, -90_000]))
        clock[s] = max(0, clock[s] + step)
        readings.append((s, clock[s], draw(values)))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(readings)), max_size=4))))
    ticks = draw(st.lists(st.sampled_from([0, 1, 3]), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    return readings, cuts, ticks, draw(st.integers(0, 2**16))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shuffled_batches(), st.sampled_from([0.0, 1.0, 6.0]), st.sampled_from([0.0, 60.0, 240.0]))
def test_shuffled_multi_reading_batches_equal_the_reference_engine(stream, h, for_s):
    readings, cuts, ticks, seed = stream
    specs = models(h, for_s)
    reg = registry(N_SENSORS)
    eng = WarningEngine(specs, reg, start_ms=0)
    ref = ReferenceEngine(specs, reg, start_ms=0)
    rng = np.random.default_rng(seed)
    bounds = [0, *cuts, len(readings)]
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        part = readings[a:b]
        if part:
            arr = np.array(part, dtype=float)[rng.permutation(len(part))]
            batch = ReadingBatch.of(arr[:, 0], arr[:, 1], arr[:, 2])
            got, want = eng.process(batch), ref.process(batch)
            assert key(got) == key(want)
            for x, y in zip(got, want, strict=True):
                assert x.value == pytest.approx(y.value, rel=1e-9, abs=1e-9, nan_ok=True)
                assert x.reading == pytest.approx(y.reading, nan_ok=True)
        now = (max(r[1] for r in part) if part else 0) + ticks[k] * 100_000
        assert key(eng.tick(now)) == key(ref.tick(now))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=80))
def test_the_batch_view_orders_by_sensor_then_time_keeping_batch_order_for_ties(rows):
    s = np.array([r[0] for r in rows], dtype=np.int32)
    t = np.array([r[1] for r in rows], dtype=np.int64) * 1000
    v = np.arange(len(rows), dtype=np.float64)  # the batch position
    increasing = len(s) == 1 or bool(np.all(s[1:] > s[:-1]))
    ss, tt, vv, first = BatchView(s, t, v, 10, None, increasing).sorted
    want = sorted(range(len(rows)), key=lambda i: (rows[i][0], rows[i][1], i))
    assert vv.tolist() == [float(i) for i in want]
    assert ss.tolist() == [rows[i][0] for i in want] and tt.tolist() == [rows[i][1] * 1000 for i in want]
    assert first.tolist() == [k == 0 or ss[k] != ss[k - 1] for k in range(len(ss))]


def test_many_readings_of_one_sensor_in_one_batch_equal_one_batch_per_reading():
    spec = models(1.0, 60.0)[0]
    rng = np.random.default_rng(7)
    vals = 75 + 25 * np.sin(np.arange(2000) / 40.0) + rng.standard_normal(2000) * 3.0  # in and out of alarm
    ts = np.arange(2000, dtype=np.int64) * 30_000
    one = WarningEngine([spec], registry(1))
    whole = key(one.process(ReadingBatch.of(np.zeros(2000), ts, vals)))
    each = WarningEngine([spec], registry(1))
    parts: list[tuple] = []
    for i in range(2000):
        parts += key(each.process(ReadingBatch.of([0], ts[i:i + 1], vals[i:i + 1])))
    assert whole == parts and len(whole) > 10


def test_an_evaluator_with_process_slab_gets_each_sensor_once_per_slab_in_time_order():
    from typing import Literal

    from rescity.monitor.engine import Evaluator, register_evaluator
    from rescity.monitor.specs import ModelSpec, register_kind

    @register_kind
    class SlabSpec(ModelSpec):
        kind: Literal["slab_test"] = "slab_test"

    seen: list[list[tuple[int, int]]] = []

    @register_evaluator("slab_test")
    class SlabEvaluator(Evaluator):
        def process_slab(self, s, t, v, out, span=None):
            seen.append(list(zip(s.tolist(), t.tolist(), strict=True)))

    eng = WarningEngine([parse_model({"name": "slabs", "kind": "slab_test"})], registry(3))
    s = [2, 0, 2, 1, 0, 2]
    t = [30, 20, 10, 10, 10, 20]
    eng.process(ReadingBatch.of(s, t, np.zeros(6)))
    assert all(len({x for x, _ in slab}) == len(slab) for slab in seen)
    per_sensor = {k: [ts for slab in seen for x, ts in slab if x == k] for k in range(3)}
    assert per_sensor == {0: [10, 20], 1: [10], 2: [10, 20, 30]}
