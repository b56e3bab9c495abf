"""The rolling rainfall accumulation kind (CMA rainstorm warning signals): validated as
data, graded on sliding windows with an explicit clock, equal to a plain per-reading loop."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescity.monitor.batch import ReadingBatch
from rescity.monitor.engine import Transition, WarningEngine
from rescity.monitor.registry import SensorRegistry
from rescity.monitor.specs import AccumulationSpec, SpecError, load_catalogue, parse_model

H = 3_600_000
MIN = 60_000
CMA = {"name": "rainstorm", "kind": "accumulation", "select": {"quantity": "rainfall"},
       "thresholds": {"blue": 50, "yellow": 50, "orange": 50, "red": 100},
       "windows_h": {"blue": 12, "yellow": 6, "orange": 3, "red": 3}, "hysteresis": 1.0, "max_gap_s": 900}


def gauges(n: int) -> SensorRegistry:
    ids = tuple(f"g{i}" for i in range(n))
    return SensorRegistry(
        ids=ids, quantities=("rainfall",), quantity=np.zeros(n, dtype=np.int16), low=np.zeros(n),
        high=np.full(n, 300.0), asset=tuple(f"drainage:g{i}" for i in range(n)), network=("drainage",) * n,
        lon=np.full(n, 117.2), lat=np.full(n, 31.8),
    )


def key(trs: list[Transition]) -> list[tuple[int, str, str, str, int, int]]:
    return [(t.ts_ms, t.model, t.sensor, t.kind.value, t.level_before, t.level_after) for t in trs]


# -- the spec -----------------------------------------------------------------------------------------------
def test_the_catalogue_declares_the_cma_rainstorm_signals():
    spec = load_catalogue().models["rainstorm_signal"]
    assert isinstance(spec, AccumulationSpec)
    assert [(k, v) for k, v in spec.thresholds.given()] == [("blue", 50), ("yellow", 50), ("orange", 50), ("red", 100)]
    assert spec.windows_h.given() == [("blue", 12), ("yellow", 6), ("orange", 3), ("red", 3)]
    assert spec.graded_unit() == "mm"
    text = spec.explain()
    assert "level 1 (red)      when >= 100 mm fell in the last 3 h" in text
    assert "level 4 (blue)     when >= 50 mm fell in the last 12 h" in text
    row = next(r for r in load_catalogue().rows() if r["name"] == "rainstorm_signal")
    assert row["thresholds"] == "50 mm in 12 h / 50 mm in 6 h / 50 mm in 3 h / 100 mm in 3 h"


@pytest.mark.parametrize(("change", "message"), [
    ({"windows_h": {"blue": 12, "yellow": 6, "orange": 6, "red": 3}}, "levels must be nested: orange"),
    ({"windows_h": {"blue": 3, "yellow": 6, "orange": 3, "red": 3}}, "levels must be nested: yellow"),
    ({"thresholds": {"blue": 50, "yellow": 40, "orange": 50, "red": 100}}, "levels must be nested: yellow"),
    ({"windows_h": {"blue": 12, "red": 3}}, "windows_h: give a window for exactly the levels"),
    ({"select": {"quantity": "level"}}, "needs an intensity per hour"),
    ({"direction": "low"}, "use high"),
    ({"unit": "in"}, "amounts are written in 'mm'"),
    ({"windows_h": {"blue": 0, "yellow": 6, "orange": 3, "red": 3}}, "windows_h.blue"),
])
def test_invalid_accumulation_models_are_refused_naming_the_field(change, message):
    with pytest.raises(SpecError, match=message):
        parse_model({**CMA, **change})


# -- the signals on a simple storm ---------------------------------------------------------------------------
def test_a_steady_storm_raises_orange_then_steps_down_as_its_rain_leaves_each_window():
    """30 mm/h (0.5 mm a minute) for 3 h (90 mm), read every minute, then dry; hysteresis
    1.5 mm. 50 mm have fallen at 100 min: orange (50 mm in 3 h, so also in 6 h and 12 h).
    The 3 h window loses the rain from 180 min on: <= 48.5 mm at 263 min, orange is left for
    yellow (90 mm in 6 h); the 6 h window from 360 min (yellow left at 443 min for blue), the
    12 h window from 720 min (resolved at 803 min)."""
    eng = WarningEngine([parse_model({**CMA, "hysteresis": 1.5})], gauges(1))
    ts = np.arange(0, 14 * 60 + 1, dtype=np.int64) * MIN
    rain = np.where(ts <= 3 * H, 30.0, 0.0)
    trs = eng.process(ReadingBatch.of(np.zeros(len(ts)), ts, rain))
    got = [(t.ts_ms // MIN, t.kind.value, t.level_after, t.value) for t in trs]
    assert got == [(100, "firing", 2, 50.0), (263, "level", 3, 90.0), (443, "level", 4, 90.0),
                   (803, "resolved", 0, 48.5)]


def test_the_clock_slides_the_windows_on_without_readings():
    """45 mm/h (0.75 mm a minute) for 3 h: orange at 67 min (50.25 mm), red at 134 min
    (100.5 mm in 3 h); then no more readings: the clock alone moves the windows on."""
    eng = WarningEngine([parse_model(CMA)], gauges(1))
    ts = np.arange(0, 181, dtype=np.int64) * MIN
    trs = eng.process(ReadingBatch.of(np.zeros(len(ts)), ts, np.full(len(ts), 45.0)))
    assert [(t.ts_ms // MIN, t.kind.value, t.level_after) for t in trs] == [(67, "firing", 2), (134, "level", 1)]
    assert eng.tick(212 * MIN) == []  # 0.75 x 148 = 111 mm in the last 3 h: still red
    assert key(eng.tick(230 * MIN)) == [(230 * MIN, "rainstorm", "g0", "level", 1, 2)]  # 97.5 mm <= 99
    # 5 h: 45 mm in the last 3 h (orange left), all 135 mm within 6 h: yellow
    assert key(eng.tick(300 * MIN)) == [(300 * MIN, "rainstorm", "g0", "level", 2, 3)]


def test_a_gap_longer_than_max_gap_counts_no_rain_and_negative_readings_count_as_zero():
    eng = WarningEngine([parse_model({**CMA, "thresholds": {"blue": 10}, "windows_h": {"blue": 1}})], gauges(1))
    # 60 mm/h read at 0 and at 20 min (a 20-min gap > 15 min: nothing counted), then -5 mm/h
    # readings every minute (noise around 0: nothing counted)
    ts = [0, 20 * MIN, *range(21 * MIN, 41 * MIN, MIN)]
    vals = [60.0, 60.0, *([-5.0] * 20)]
    assert eng.process(ReadingBatch.of(np.zeros(len(ts)), ts, vals)) == []
    # 60 mm/h for 10 more minutes: 10 mm
    trs = eng.process(ReadingBatch.of(np.zeros(10), np.arange(41, 51) * MIN, np.full(10, 60.0)))
    assert [(t.ts_ms // MIN, t.kind.value, t.level_after) for t in trs] == [(50, "firing", 4)]


# -- equal to a plain per-reading loop ----------------------------------------------------------------------
class PlainAccumulation:
    """The spec's words, one reading at a time: cumulative amount per gauge from intensity x
    elapsed time (first reading and gaps > max_gap add nothing), accumulation per level's
    window by linear interpolation of the cumulative curve, graded per level with
    hysteresis, pending / firing on for_s."""

    def __init__(self, spec: dict, n: int) -> None:
        lv = ("blue", "yellow", "orange", "red")
        th = [spec["thresholds"].get(k) for k in lv]
        wh = [spec["windows_h"].get(k) for k in lv]
        self.T, self.W = [math.inf] * 4, [0] * 4
        nxt_t, nxt_w = math.inf, [w for w in wh if w is not None][-1]
        for i in range(3, -1, -1):
            if th[i] is not None:
                nxt_t, nxt_w = th[i], wh[i]
            self.T[i], self.W[i] = float(nxt_t), int(round(nxt_w * 3600.0 * 1000.0))
        self.h = float(spec.get("hysteresis", 0.0))
        self.for_ms = int(round(spec.get("for_s", 0.0) * 1000))
        self.gap = spec.get("max_gap_s", 3600.0) * 1000.0
        self.name = spec["name"]
        self.bt: list[list[int]] = [[] for _ in range(n)]
        self.bc: list[list[float]] = [[] for _ in range(n)]
        self.last: list[int | None] = [None] * n
        self.c = [0.0] * n
        self.sev = [0] * n
        self.firing = [False] * n
        self.since = [0] * n

    def _c_at(self, s: int, q: int) -> float:
        bt, bc = self.bt[s], self.bc[s]
        j = bisect.bisect_right(bt, q) - 1
        if j < 0:
            return bc[0]
        if j + 1 >= len(bt):
            return bc[j]
        return bc[j] + (bc[j + 1] - bc[j]) * (q - bt[j]) / (bt[j + 1] - bt[j])

    def _grade(self, s: int, t: int, acc: list[float]) -> list[tuple]:
        lv = (0, 4, 3, 2, 1)
        e = sum(1 for k in range(4) if acc[k] >= self.T[k])
        m = sum(1 for k in range(4) if acc[k] > self.T[k] - self.h)
        cur = self.sev[s]
        new = max(e, min(cur, m))
        if cur == 0 and new > 0:
            self.since[s] = t
        fire = new > 0 and not self.firing[s] and t - self.since[s] >= self.for_ms
        out = []
        if fire:
            out.append((t, self.name, f"g{s}", "firing", lv[cur], lv[new]))
        elif cur == 0 and new > 0:
            out.append((t, self.name, f"g{s}", "pending", 0, lv[new]))
        elif cur > 0 and new == 0:
            out.append((t, self.name, f"g{s}", "resolved", lv[cur], 0))
        elif cur != new:
            out.append((t, self.name, f"g{s}", "level", lv[cur], lv[new]))
        self.sev[s] = new
        self.firing[s] = (self.firing[s] or fire) and new > 0
        return out

    def step(self, s: int, t: int, v: float) -> list[tuple]:
        if v != v or (self.last[s] is not None and t < self.last[s]):
            return []
        prev = self.last[s]
        if prev is not None and t - prev <= self.gap:
            self.c[s] = self.c[s] + max(v, 0.0) * (t - prev) / 3_600_000.0
        if prev is None or t > prev:
            self.bt[s].append(t)
            self.bc[s].append(self.c[s])
        self.last[s] = t
        return self._grade(s, t, [self.c[s] - self._c_at(s, t - self.W[k]) for k in range(4)])

    def tick(self, now: int) -> list[tuple]:
        lv = (0, 4, 3, 2, 1)
        out = []
        for s in range(len(self.sev)):
            if self.sev[s] > 0 and self.last[s] is not None and self.last[s] <= now:
                out += self._grade(s, now, [self.c[s] - self._c_at(s, now - self.W[k]) for k in range(4)])
        for s in range(len(self.sev)):
            if self.sev[s] > 0 and not self.firing[s] and now - self.since[s] >= self.for_ms:
                self.firing[s] = True
                out.append((now, self.name, f"g{s}", "firing", lv[self.sev[s]], lv[self.sev[s]]))
        return out


N_GAUGES = 3
SPECS = [
    dict(CMA, thresholds={"blue": 10, "yellow": 10, "orange": 10, "red": 20},
         windows_h={"blue": 2, "yellow": 1, "orange": 0.5, "red": 0.5}, hysteresis=0.5, max_gap_s=900),
    dict(CMA, thresholds={"yellow": 8, "red": 15}, windows_h={"yellow": 1, "red": 1}, hysteresis=0.0,
         for_s=300, max_gap_s=600),
]


@st.composite
def rain_streams(draw: st.DrawFn) -> tuple[list[tuple[int, int, float]], list[int], list[int], int]:
    readings = []
    clock = [0] * N_GAUGES
    for _ in range(draw(st.integers(1, 200))):
        g = draw(st.integers(0, N_GAUGES - 1))
        clock[g] = max(0, clock[g] + draw(st.sampled_from([0, MIN, MIN, 2 * MIN, 5 * MIN, 20 * MIN, -3 * MIN])))
        readings.append((g, clock[g], draw(st.sampled_from([0.0, 0.0, 5.0, 20.0, 40.0, 80.0, 150.0, -1.0, math.nan]))))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(readings)), max_size=5))))
    ticks = draw(st.lists(st.sampled_from([0, 10, 40, 200]), min_size=len(cuts) + 1, max_size=len(cuts) + 1))
    return readings, cuts, ticks, draw(st.integers(0, 2**16))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rain_streams(), st.sampled_from([0, 1]))
def test_accumulation_equals_a_plain_per_reading_loop_for_any_batch_split_and_order(stream, which):
    readings, cuts, ticks, seed = stream
    spec = SPECS[which]
    eng = WarningEngine([parse_model(spec)], gauges(N_GAUGES))
    ref = PlainAccumulation(spec, N_GAUGES)
    rng = np.random.default_rng(seed)
    bounds = [0, *cuts, len(readings)]
    for k, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        part = readings[a:b]
        if part:
            arr = np.array(part, dtype=float)[rng.permutation(len(part))]
            got = key(eng.process(ReadingBatch.of(arr[:, 0], arr[:, 1], arr[:, 2])))
            # the reference: per gauge in time order (equal times in batch order)
            order = sorted(range(len(arr)), key=lambda i: (arr[i, 1], i))
            want: list[tuple] = []
            for i in order:
                want += ref.step(int(arr[i, 0]), int(arr[i, 1]), float(arr[i, 2]))
            assert got == sorted(want, key=lambda r: (r[0], r[2]))
        if ticks[k] and part:
            now = max(r[1] for r in part) + ticks[k] * MIN
            assert key(eng.tick(now)) == sorted(ref.tick(now), key=lambda r: r[2])
