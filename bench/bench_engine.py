"""Speed of the warning engine: readings/s for 100 models over 100,000 sensors.

Run:  .venv/bin/python bench/bench_engine.py [--sensors 100000] [--batches 20] [--quick] [--repeat 3]

Measures, in one process on one core (time.perf_counter; no assertions on time; each case
is the median of ``--repeat`` runs on a fresh engine):

1. graded thresholds with hysteresis and minimum duration (100 models, 1,000 sensors each,
   half "high", half "low"), batches of one reading per sensor in sensor order;
2. the same with the sensors in random order; with 4 readings per sensor per batch
   (random order); fully shuffled (each sensor's readings out of time order); and few
   sensors with many readings (1,000 sensors x 100 readings per batch), each checked to
   give the same transitions;
3. a plain per-reading Python loop doing exactly the same logic, on a subsample, checked
   to produce the same transitions as the engine on that subsample; the ratio;
4. rate-of-change models (100 over 100,000 sensors) and data-quality models (stuck + drift
   over 100,000 sensors; silence evaluated by tick);
5. the alarm book: inhibition with 10,000 open alarms (see :func:`bench_alarms`).
"""

from __future__ import annotations

import argparse
import copy
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


REPEAT = 3


def run_median(make: Callable[[], WarningEngine], batches: list[ReadingBatch],
               tick_every: int = 0) -> tuple[float, list[Transition]]:
    """Median seconds of ``REPEAT`` runs, each on a fresh engine (the machine is shared)."""
    runs = [run_engine(make(), batches, tick_every) for _ in range(REPEAT)]
    secs = sorted(r[0] for r in runs)
    return secs[len(secs) // 2], runs[0][1]


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


# -- the alarm book: inhibition with many open alarms ---------------------------------------------------------
def _alarm_script(n_open: int, ingests: int, seed: int = 5) -> tuple[list[list[Transition]], list[list[Transition]]]:
    """Transitions that open ``n_open`` firing low-pressure alarms (random places in a
    10 km square), then ``ingests`` batches of 50 level changes of open alarms plus one
    change of a main-break alarm (20 members) that inhibits its members."""
    from rescity.monitor.engine import TransitionKind

    rng = np.random.default_rng(seed)
    lon = 120.0 + rng.random(n_open) * 0.104
    lat = 30.0 + rng.random(n_open) * 0.09
    assets = [f"water:n{i}" for i in range(n_open)]

    def tr(model: str, i: int, ts: int, kind: str, before: int, after: int, details: dict | None = None) -> Transition:
        return Transition(model, assets[i], f"{assets[i]}.p", ts, TransitionKind(kind), before, after, float(after),
                          1.0, f"w{i % 4}", float(lon[i]), float(lat[i]), details or {})

    opening = [[tr("pressure_low", i, 1000 * i, "firing", 0, 4) for i in range(k, min(k + 500, n_open))]
               for k in range(0, n_open, 500)]
    t0 = 1000 * n_open + 60_000
    updates: list[list[Transition]] = []
    levels = [4, 3, 2]
    breaks: dict[int, list[int]] = {}
    for j in range(ingests):
        ts = t0 + j * 60_000
        batch = []
        for i in rng.choice(n_open, 50, replace=False).tolist():
            before = levels[(j + i) % 3]
            batch.append(tr("pressure_low", i, ts + i % 1000, "level", before, levels[(j + i + 1) % 3]))
        anchor = int(rng.integers(n_open))
        if breaks and j % 3 == 2:
            a = next(iter(breaks))
            batch.append(tr("main_break", a, ts + 999, "resolved", 2, 0))
            del breaks[a]
        else:
            members = sorted(rng.choice(n_open, 20, replace=False).tolist())
            breaks[anchor] = members
            batch.append(tr("main_break", anchor, ts + 500, "firing", 0, 2,
                            {"members": sorted(assets[m] for m in members)}))
        updates.append(batch)
    return opening, updates


def bench_alarms(n_open: int, ingests: int, naive: int) -> tuple[float, float | None, bool | None, float]:
    """Seconds per ingest on a book with ``n_open`` open alarms: indexed (``ingests``), and
    the unindexed book (tests/monitor/naive_alarms.py, the book before indexing) restored
    from the same events (the first ``naive`` ingests, if any); whether both emit the same
    events; the seconds the indexed book took to open the ``n_open`` alarms (500 a batch,
    each grouped into incident candidates)."""
    from rescity.monitor.alarms import AlarmBook
    from rescity.monitor.specs import GroupingRule, InhibitRule

    kw: dict = {"inhibit": [InhibitRule(source="main_break", target="pressure_low", scope="members")],
                "grouping": GroupingRule(window_s=1800, distance_m=800)}
    opening, updates = _alarm_script(n_open, ingests)
    book = AlarmBook(**kw)
    t0 = time.perf_counter()
    for b in opening:
        book.ingest(b)
    secs_open = time.perf_counter() - t0
    events = list(book.events)
    t0 = time.perf_counter()
    got = [book.ingest(list(b)) for b in updates]
    secs = (time.perf_counter() - t0) / len(updates)
    if not naive:
        return secs, None, None, secs_open
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.monitor import naive_alarms

    old = naive_alarms.AlarmBook.restore(events, **kw)
    t0 = time.perf_counter()
    want = [old.ingest(list(b)) for b in updates[:naive]]
    secs_old = (time.perf_counter() - t0) / naive

    def k(evs: list) -> list:
        return [(e.alarm_id, e.ts_ms, str(e.kind), e.level_after, repr(e.details)) for e in evs]

    return secs, secs_old, all(k(a) == k(b) for a, b in zip(got, want, strict=False)), secs_open


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", type=int, default=100_000)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--subsample", type=int, default=200_000, help="readings for the plain loop")
    ap.add_argument("--quick", action="store_true", help="10,000 sensors, 5 batches")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (the median is reported)")
    a = ap.parse_args()
    global REPEAT
    REPEAT = max(1, a.repeat)
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
    print(f"  engine build: {time.perf_counter() - t0:.2f} s, {eng.n_slots:,} slots; "
          f"each case: median of {REPEAT} runs")
    eng.process(batches[0])  # warm-up (not timed): first touch of the state arrays
    built = WarningEngine(models, reg)  # rebuilding per run is not timed: state is reset by a deep copy
    def fresh() -> WarningEngine:
        return copy.deepcopy(built, {id(reg): reg})
    secs, trs = run_median(fresh, batches)
    rows.append(("thresholds+hysteresis+duration, 1 reading/sensor/batch", n * nb, secs))
    n_tr = len(trs)

    # sensors in random order, one reading each (gather path instead of slices)
    rng = np.random.default_rng(2)
    shuffled = [b.take(rng.permutation(n)) for b in batches]
    secs1, trs1 = run_median(fresh, shuffled)
    rows.append(("same, sensors in random order", n * nb, secs1))
    same_shuffled = _key(trs1) == _key(trs)

    # 4 readings per sensor per batch, sensors interleaved in random order
    multi = []
    for k in range(0, nb - 3, 4):
        parts = [batches[k + j].take(rng.permutation(n)) for j in range(4)]
        multi.append(ReadingBatch.concat(parts))
    secs2, trs2 = run_median(fresh, multi)
    rows.append(("same, 4 readings/sensor/batch, random order", sum(len(b) for b in multi), secs2))
    same_multi = _key(trs2) == _key([t for t in trs if t.ts_ms <= 4 * len(multi) * MIN])

    # the same batches with every reading shuffled (each sensor's readings out of time order)
    mixed = [b.take(rng.permutation(len(b))) for b in multi]
    secs3, trs3 = run_median(fresh, mixed)
    rows.append(("same, fully shuffled (sensor and time order lost)", sum(len(b) for b in mixed), secs3))
    same_mixed = _key(trs3) == _key(trs2)

    # few sensors, many readings: the 1,000 sensors of model m000's network, 100 readings
    # each per batch (a gateway's 100 minutes), time-major order; checked against the same
    # stream fed one minute (one reading per sensor) at a time
    few = min(1000, n)
    per = 100
    fv = make_values(few, per * nb, seed=3)
    fs = np.tile(np.arange(few, dtype=np.int32), per)
    few_batches = [ReadingBatch.of(fs, np.repeat((np.arange(per) + k * per + 1) * MIN, few), fv[k * per:(k + 1) * per].ravel())
                   for k in range(nb)]
    secs4, trs4 = run_median(fresh, few_batches)
    rows.append((f"same, {few:,} sensors x {per} readings/batch (few sensors, many readings)",
                 sum(len(b) for b in few_batches), secs4))
    one_by_one = [b.take(np.arange(j * few, (j + 1) * few)) for b in few_batches for j in range(per)]
    _, trs4b = run_engine(WarningEngine(models, reg), one_by_one)
    same_few = _key(trs4) == _key(trs4b)

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
    rate_eng = WarningEngine(rate_models, reg)
    secs_r, _ = run_median(lambda: copy.deepcopy(rate_eng, {id(reg): reg}), batches)
    rows.append(("rate of change (100 models)", n * nb, secs_r))
    secs_r4, _ = run_median(lambda: copy.deepcopy(rate_eng, {id(reg): reg}), mixed)
    rows.append(("rate of change, 4 readings/sensor/batch, fully shuffled", sum(len(b) for b in mixed), secs_r4))
    dq = [parse_model({"name": "stuck", "kind": "stuck", "select": {}, "tolerance": 0.0,
                       "thresholds": {"blue": 600, "yellow": 1800}}),
          parse_model({"name": "drift", "kind": "drift", "select": {}, "fast_tau_s": 3600, "slow_tau_s": 86400,
                       "thresholds": {"blue": 3, "yellow": 5}, "for_s": 600}),
          parse_model({"name": "silent", "kind": "silence", "select": {}, "thresholds": {"blue": 120, "yellow": 600}})]
    dq_eng = WarningEngine(dq, reg)
    secs_q, _ = run_median(lambda: copy.deepcopy(dq_eng, {id(reg): reg}), batches, tick_every=1)
    rows.append(("data quality: stuck + drift + silence (tick per batch)", n * nb, secs_q))

    # the alarm book: ingests of 50 level changes + one main-break change each, with 1,000,
    # 3,000 and 10,000 open alarms; the unindexed book in the same run on its first ingests
    # (at 10,000 one of its ingests takes about half a minute)
    ingests = 20
    alarm_rows: list[tuple[str, float, bool | None]] = []
    open_rows: list[tuple[int, float]] = []
    for n_open, naive in ((1_000, 5), (3_000, 2), (10_000, 0)):
        s_new, s_old, same, s_open = bench_alarms(n_open, ingests, naive)
        open_rows.append((n_open, s_open))
        alarm_rows.append((f"alarm book, {n_open:,} open alarms: indexed", s_new, same))
        if s_old is not None:
            alarm_rows.append((f"alarm book, {n_open:,} open alarms: unindexed (before)", s_old, same))

    w = max(len(r[0]) for r in rows)
    print()
    print(f"  {'case':{w}s}  {'readings':>11s}  {'seconds':>8s}  {'readings/s':>13s}")
    for label, cnt, s in rows:
        print(f"  {label:{w}s}  {cnt:11,d}  {s:8.3f}  {cnt / s:13,.0f}")
    print()
    print(f"  {'alarm book (an ingest: 51 transitions)':{w}s}  {'ms/ingest':>11s}  same events")
    for label, s, same in alarm_rows:
        print(f"  {label:{w}s}  {s * 1000:11.2f}  {'' if same is None else same}")
    for n_open, s in open_rows:
        print(f"  {'alarm book, opening ' + format(n_open, ',') + ' alarms (indexed), seconds':{w}s}  {s:11.2f}")
    rate_vec = n * nb / secs
    rate_ref = len(sub) / secs_ref
    print()
    print(f"  transitions (thresholds run): {n_tr:,}; slots: {eng.n_slots:,}")
    print(f"  vectorised / plain loop: {rate_vec / rate_ref:.1f}x")
    print(f"  plain loop gives the same transitions as the engine on its subsample: {same_ref}")
    print(f"  random sensor order / 4 per sensor / fully shuffled / few sensors give the same transitions: "
          f"{same_shuffled} / {same_multi} / {same_mixed} / {same_few}")


if __name__ == "__main__":
    main()
