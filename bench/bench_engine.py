"""Speed of the warning engine: readings/s for 100 models over 100,000 sensors.

Run:  .venv/bin/python bench/bench_engine.py [--sensors 100000] [--batches 20] [--quick]

Measures, in one process on one core (time.perf_counter; no assertions on time):

1. graded thresholds with hysteresis and minimum duration (100 models, 1,000 sensors each,
   half "high", half "low"), batches of one reading per sensor (one slab);
2. the same with each batch shuffled and holding 4 readings per sensor (4 slabs);
3. a plain per-reading Python loop doing exactly the same logic, on a subsample, checked
   to produce the same transitions as the engine on that subsample; the ratio;
4. rate-of-change models (100 over 100,000 sensors) and data-quality models (stuck + drift
   over 100,000 sensors; silence evaluated by tick).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from rescity.monitor.batch import ReadingBatch
from rescity.monitor.engine import NO_TS, ThresholdEvaluator, Transition, WarningEngine
from rescity.monitor.registry import SensorRegistry
from rescity.monitor.specs import ModelSpec, parse_model

MIN = 60_000


def make_registry(n: int, n_nets: int = 100) -> SensorRegistry:
    ids = tuple(f"s{i:06d}" for i in range(n))
    net = tuple(f"n{i * n_nets // n:03d}" for i in range(n))  # contiguous blocks of sensors
    rng = np.random.default_rng(0)
    return SensorRegistry(
        ids=ids, quantities=("pressure",), quantity=np.zeros(n, dtype=np.int16),
        low=np.full(n, -10.0), high=np.full(n, 200.0), asset=tuple(f"{n_}:{i}" for n_, i in zip(net, ids, strict=True)),
        network=net, lon=120 + rng.random(n) * 0.1, lat=30 + rng.random(n) * 0.1,
    )


def threshold_models(n_models: int = 100) -> list[ModelSpec]:
    out = []
    for k in range(n_models):
        if k % 2 == 0:
            th = {"blue": 60 + k % 7, "yellow": 70, "orange": 80, "red": 90}
            d = "high"
        else:
            th = {"blue": 40 - k % 7, "yellow": 30, "orange": 20, "red": 10}
            d = "low"
        out.append(parse_model({"name": f"m{k:03d}", "kind": "threshold", "select": {"network": f"n{k:03d}"},
                                "direction": d, "thresholds": th, "hysteresis": 1.0 + (k % 3),
                                "for_s": [0, 60, 120, 300][k % 4]}))
    return out


def make_values(n: int, batches: int, seed: int = 1) -> np.ndarray:
    """[batches, n] readings: most sensors around 50 (quiet); 1 % wander across the grades."""
    rng = np.random.default_rng(seed)
    v = 50 + rng.standard_normal((batches, n))
    wild = rng.random(n) < 0.01
    walk = np.cumsum(rng.standard_normal((batches, int(wild.sum()))) * 6.0, axis=0)
    v[:, wild] = 50 + walk
    return v


def run_engine(engine: WarningEngine, batches: list[ReadingBatch], tick_every: int = 0) -> tuple[float, list[Transition]]:
    trs: list[Transition] = []
    t0 = time.perf_counter()
    for i, b in enumerate(batches):
        trs += engine.process(b)
        if tick_every and (i + 1) % tick_every == 0:
            trs += engine.tick(int(b.ts.max()) + 30_000)
    return time.perf_counter() - t0, trs


# -- the plain per-reading loop (the same logic, one reading at a time) --------------------------------------
def plain_loop(ev: ThresholdEvaluator, model_names: list[str], sensor_ids: tuple[str, ...],
               sensor: np.ndarray, ts: np.ndarray, value: np.ndarray) -> list[tuple[int, str, str, str, int, int]]:
    """Graded thresholds with hysteresis and minimum duration, reading by reading, in Python.
    State per slot in lists; returns (ts, model, sensor, kind, severity before, after)."""
    n = ev.n_slots
    slot_of = [-1] * len(sensor_ids)
    for sl, s in enumerate(ev.slot_sensor.tolist()):
        slot_of[s] = sl  # one slot per sensor in this bench
    T = ev.T.tolist()
    TH = ev.TH.tolist()
    for_ms = ev.for_ms.tolist()
    xsign = ev.xsign.tolist()
    smodel = [model_names[m] for m in ev.slot_model.tolist()]
    cur = [0] * n
    firing = [False] * n
    since = [0] * n
    last = {}
    out = []
    for s, t, v in zip(sensor.tolist(), ts.tolist(), value.tolist(), strict=True):
        if v != v or t < last.get(s, NO_TS):
            continue
        last[s] = t
        sl = slot_of[s]
        if sl < 0:
            continue
        x = v * xsign[sl]
        th, tx = T[sl], TH[sl]
        e = (x >= th[0]) + (x >= th[1]) + (x >= th[2]) + (x >= th[3])
        m = (x > tx[0]) + (x > tx[1]) + (x > tx[2]) + (x > tx[3])
        c0 = cur[sl]
        c1 = max(e, min(c0, m))
        if c0 == 0 and c1 == 0:
            continue
        start = c0 == 0 and c1 > 0
        if start:
            since[sl] = t
        fire = c1 > 0 and not firing[sl] and t - since[sl] >= for_ms[sl]
        cur[sl] = c1
        if c1 == 0:
            firing[sl] = False
        elif fire:
            firing[sl] = True
        kind = ("firing" if fire else "pending" if start else "resolved" if c1 == 0
                else "level" if c1 != c0 else "")
        if kind:
            out.append((t, smodel[sl], sensor_ids[s], kind, c0, c1))
    return out


def _sev(level: int) -> int:
    return 0 if level == 0 else 5 - level


def _key(trs: list[Transition]) -> list[tuple[int, str, str, str, int, int]]:
    return sorted((t.ts_ms, t.model, t.sensor, t.kind.value, _sev(t.level_before), _sev(t.level_after)) for t in trs)


def timed(label: str, f: Callable[[], float], readings: int, rows: list[tuple[str, int, float]]) -> float:
    secs = f()
    rows.append((label, readings, secs))
    return secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--subsample", type=int, default=200_000, help="readings for the plain loop")
    ap.add_argument("--quick", action="store_true", help="10,000 sensors, 5 batches")
    a = ap.parse_args()
    n, nb = (10_000, 5) if a.quick else (a.sensors, a.batches)
    reg = make_registry(n)
    models = threshold_models(100)
    vals = make_values(n, nb)
    sensors = np.arange(n, dtype=np.int32)
    batches = [ReadingBatch.of(sensors, np.full(n, (k + 1) * MIN), vals[k]) for k in range(nb)]
    rows: list[tuple[str, int, float]] = []
    print(f"ResCity warning engine bench: {n:,} sensors, 100 threshold models, {nb} batches of {n:,} readings")

    t0 = time.perf_counter()
    eng = WarningEngine(models, reg)
    print(f"  engine build: {time.perf_counter() - t0:.2f} s, {eng.n_slots:,} slots")
    eng.process(batches[0])  # warm-up (not timed): first touch of the state arrays
    eng = WarningEngine(models, reg)
    secs, trs = run_engine(eng, batches)
    rows.append(("thresholds+hysteresis+duration, 1 reading/sensor/batch", n * nb, secs))
    n_tr = len(trs)

    # sensors in random order, one reading each (gather path instead of slices)
    rng = np.random.default_rng(2)
    shuffled = [b.take(rng.permutation(n)) for b in batches]
    secs1, trs1 = run_engine(WarningEngine(models, reg), shuffled)
    rows.append(("same, sensors in random order", n * nb, secs1))
    same_shuffled = _key(trs1) == _key(trs)

    # 4 readings per sensor per batch, sensors interleaved in random order (slabs)
    multi = []
    for k in range(0, nb - 3, 4):
        parts = [batches[k + j].take(rng.permutation(n)) for j in range(4)]
        multi.append(ReadingBatch.concat(parts))
    secs2, trs2 = run_engine(WarningEngine(models, reg), multi)
    rows.append(("same, 4 readings/sensor/batch, random order (4 slabs)", sum(len(b) for b in multi), secs2))
    same_multi = _key(trs2) == _key([t for t in trs if t.ts_ms <= 4 * len(multi) * MIN])

    # the same batches with every reading shuffled (each sensor's readings out of time order)
    mixed = [b.take(rng.permutation(len(b))) for b in multi]
    secs3, trs3 = run_engine(WarningEngine(models, reg), mixed)
    rows.append(("same, fully shuffled (re-sorted by sensor and time)", sum(len(b) for b in mixed), secs3))
    same_mixed = _key(trs3) == _key(trs2)

    # plain loop on a subsample (first readings of the same stream), checked against the engine
    sub = ReadingBatch.concat(batches)
    sub = sub.take(np.arange(min(a.subsample, len(sub))))
    ev = next(e for e in WarningEngine(models, reg).evaluators if isinstance(e, ThresholdEvaluator))
    names = [m.name for m in models]
    t0 = time.perf_counter()
    ref = plain_loop(ev, names, reg.ids, sub.sensor, sub.ts, sub.value)
    secs_ref = time.perf_counter() - t0
    rows.append(("plain per-reading Python loop (same logic), subsample", len(sub), secs_ref))
    eng3 = WarningEngine(models, reg)
    sub_trs: list[Transition] = []
    for k in range(0, len(sub), n):
        sub_trs += eng3.process(sub.take(np.arange(k, min(k + n, len(sub)))))
    same_ref = _key(sub_trs) == sorted(ref)

    # rate of change
    rate_models = [parse_model({"name": f"r{k:03d}", "kind": "rate", "select": {"network": f"n{k:03d}"},
                                "direction": "both", "per": "min", "thresholds": {"blue": 5, "yellow": 10, "orange": 15, "red": 20},
                                "hysteresis": 1.0}) for k in range(100)]
    secs_r, _ = run_engine(WarningEngine(rate_models, reg), batches)
    rows.append(("rate of change (100 models)", n * nb, secs_r))
    dq = [parse_model({"name": "stuck", "kind": "stuck", "select": {}, "tolerance": 0.0,
                       "thresholds": {"blue": 600, "yellow": 1800}}),
          parse_model({"name": "drift", "kind": "drift", "select": {}, "fast_tau_s": 3600, "slow_tau_s": 86400,
                       "thresholds": {"blue": 3, "yellow": 5}, "for_s": 600}),
          parse_model({"name": "silent", "kind": "silence", "select": {}, "thresholds": {"blue": 120, "yellow": 600}})]
    secs_q, _ = run_engine(WarningEngine(dq, reg), batches, tick_every=1)
    rows.append(("data quality: stuck + drift + silence (tick per batch)", n * nb, secs_q))

    w = max(len(r[0]) for r in rows)
    print()
    print(f"  {'case':{w}s}  {'readings':>11s}  {'seconds':>8s}  {'readings/s':>13s}")
    for label, cnt, s in rows:
        print(f"  {label:{w}s}  {cnt:11,d}  {s:8.3f}  {cnt / s:13,.0f}")
    rate_vec = n * nb / secs
    rate_ref = len(sub) / secs_ref
    print()
    print(f"  transitions (thresholds run): {n_tr:,}; slots: {eng.n_slots:,}")
    print(f"  vectorised / plain loop: {rate_vec / rate_ref:.1f}x")
    print(f"  plain loop gives the same transitions as the engine on its subsample: {same_ref}")
    print(f"  random sensor order / slabs / fully shuffled give the same transitions: "
          f"{same_shuffled} / {same_multi} / {same_mixed}")


if __name__ == "__main__":
    main()
