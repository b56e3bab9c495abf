"""Detection limit of the live leak detector on the demo city's L-Town, with the demo's
sensors and noise: time to detect against leak size and growth, and false detections.

Each case is one day of L-Town (EPANET through WNTR, the scripted day's demand patterns,
1-min readings, Gaussian noise of :data:`rescity.demo.day.NOISE`: 0.05 m of pressure,
0.002 m3/s of flow) with a synthetic leak at n114 (the end node of p102, where the
scripted day's incipient leak is) and *without* the main break: what the detector can
see before a burst blinds it. The detector is the demo's
(:func:`rescity.service.leaks.fit_demo_leak_model`: fitted on the simulated leak-free
week before the day, its own defaults: 24 h window, hourly checks, threshold 90,
persist 2), primed with the history's last day as in the demo, fed the day's rows in
time order (``LeakDetector.run``: the same rule and the same detections as the live
``LeakWatch`` on the same rows). Both row binnings are measured: the last reading of
each 5-min step and the mean of the step's readings (the demo's, ``BINNING``).

Cases: constant leaks switched on at 02:00 (``--sizes``, m3/h); leaks growing linearly
from 0 at 02:00 to 14.4 m3/h (4 L/s) in ``--ramps`` hours and then constant (as
5-min steps); leak-free days (``--free-days`` seeds) for false detections. For each:
the first detection (time, level as ``LeakWatch`` grades it, pipe, distance along
pipes from n114 to the pipe's nearer end), and the number of detections farther than
500 m (false).

With ``--bursts`` (instead): the burst view of the live source (``LeakWatch.burst_m3h``,
the demo's :data:`rescity.service.leaks.BURST_M3H`), on days with a main break of
``--burst-sizes`` L/s switched on at 10:30 at the ends of L-Town's sensed DN150 pipes
(n105, n229, n769), fed in 5-min slices through the inflow gate as in the demo: the
first main_break (row time, level, inflow step, pipe, distance from the break node along
pipes and valves), the largest level, and main_breaks on ``--free-days`` leak-free days.

    .venv/bin/python bench/bench_leak_demo.py [--sizes 2,3,4,5,7,10,14.4,20]
        [--ramps 20,12,8,6,4] [--free-days 10] [--binning both|last|mean]
    .venv/bin/python bench/bench_leak_demo.py --bursts [--burst-sizes 10,20,30,60,100]

Measured figures are in docs/monitoring.md (the scripted day) and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time

import networkx as nx
import numpy as np
import pandas as pd

from rescity.demo.city import build_demo_city
from rescity.demo.day import DAY_START_MS, water_history
from rescity.monitor.batch import HOUR_MS
from rescity.monitor.leakwatch import leak_level
from rescity.monitor.models.leak import pipe_graph
from rescity.service.leaks import fit_demo_leak_model, rows_frame

LEAK_NODE = "n114"
START_MS = DAY_START_MS + 2 * HOUR_MS
FAR_M = 500.0


def _ramp(q_m3h: float, hours: float) -> list[tuple[str, float, int]]:
    """Linear growth 0 -> q over ``hours`` from 02:00, as equal 5-min steps."""
    n = max(int(round(hours * 12)), 1)
    return [(LEAK_NODE, q_m3h / 3600.0 / n, START_MS + (k + 1) * 300_000) for k in range(n)]


def run_case(city, fitted, leaks, seed: int, dist: dict[str, float], wn) -> dict[str, object]:
    day = water_history(city, days=1, start_ms=DAY_START_MS, seed=seed, leaks=leaks)
    rows = rows_frame(fitted.sensors, day.sensors, day.ts_ms, day.values, binning=fitted.binning)
    data = pd.concat([fitted.prime, rows])
    found = fitted.detector.run(data)
    found = [d for d in found if d.time >= pd.Timestamp(DAY_START_MS, unit="ms")]

    def d_of(pipe: str) -> float:
        link = wn.get_link(pipe)
        return min(dist.get(link.start_node_name, np.inf), dist.get(link.end_node_name, np.inf))

    near = [d for d in found if d_of(d.pipe) <= FAR_M]
    far = [d for d in found if d_of(d.pipe) > FAR_M]
    first = near[0] if near else None
    return {"first": None if first is None else first.time.strftime("%H:%M"),
            "level": None if first is None else leak_level(first.q_m3h),
            "q": None if first is None else round(first.q_m3h, 1),
            "pipe": None if first is None else first.pipe,
            "dist_m": None if first is None else round(d_of(first.pipe)),
            "false": len(far), "all": len(found)}


def burst_case(city, fitted, registry, leaks, seed: int) -> list:
    """The main_break transitions of the demo's leak source over one day (5-min slices)."""
    from rescity.monitor.batch import MINUTE_MS, ReadingBatch
    from rescity.service.leaks import leak_source

    src = leak_source(fitted, registry, city=city)
    day = water_history(city, days=1, start_ms=DAY_START_MS, seed=seed, leaks=leaks)
    idx = np.array([registry.index[sid] for sid in day.sensors], dtype=np.int64)
    order = np.argsort(day.ts_ms, kind="stable")
    idx, ts, vals = idx[order], day.ts_ms[order], day.values[order]
    edges = np.arange(DAY_START_MS, DAY_START_MS + 24 * HOUR_MS + 1, 5 * MINUTE_MS)
    pos = np.searchsorted(ts, edges)
    out = list(src.pending)
    for a, b, now in zip(pos[:-1], pos[1:], edges[1:], strict=True):
        out += src.ingest(ReadingBatch.of(idx[a:b], ts[a:b], vals[a:b]), int(now))
    return [t for t in out if t.model == "main_break"]


def bursts(args: argparse.Namespace) -> None:
    from rescity.monitor.registry import SensorRegistry

    city = build_demo_city()
    fitted = fit_demo_leak_model(city)
    registry = SensorRegistry.from_sensors(city.sensors.values())
    wn = fitted.detector.wn
    g = wn.to_graph().to_undirected()  # along pipes and valves (a PRV may lie between)
    lengths = {(u, v): float(getattr(wn.get_link(k), "length", 0.0) or 0.0) for u, v, k in g.edges(keys=True)}
    for (u, v, k) in list(g.edges(keys=True)):
        g.edges[u, v, k]["length"] = lengths[(u, v)]
    on = DAY_START_MS + int(10.5 * HOUR_MS)
    print("| main break from 10:30 | first main_break (row) | level | inflow step m3/h | pipe | "
          "distance (m) | worst level |")
    print("|---|---|---|---|---|---|---|")
    for node in ("n105", "n229", "n769"):
        dist = nx.single_source_dijkstra_path_length(g, node, weight="length")
        for ls in [float(x) for x in args.burst_sizes.split(",") if x]:
            trs = burst_case(city, fitted, registry, [(node, ls / 1000.0, on)], args.seed)
            if not trs:
                print(f"| {ls:g} L/s at {node} | none | - | - | - | - | - |", flush=True)
                continue
            f = trs[0]
            link = wn.get_link(f.asset.split(":", 1)[1])
            d = min(dist.get(link.start_node_name, np.inf), dist.get(link.end_node_name, np.inf))
            worst = min(t.level_after for t in trs if t.level_after)
            print(f"| {ls:g} L/s at {node} | {pd.Timestamp(f.ts_ms, unit='ms').strftime('%H:%M')} | "
                  f"{f.level_after} | {f.value:.0f} | {link.name} | {d:.0f} | {worst} |", flush=True)
    false = sum(len(burst_case(city, fitted, registry, [], 1000 + s)) for s in range(args.free_days))
    print(f"leak-free days: {false} main_break transitions in {args.free_days} days "
          f"(seeds 1000-{999 + args.free_days})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2,3,4,5,7,10,14.4,20")
    ap.add_argument("--ramps", default="20,12,8,6,4")
    ap.add_argument("--free-days", type=int, default=10)
    ap.add_argument("--binning", choices=["both", "last", "mean"], default="both")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--bursts", action="store_true", help="the burst view's main breaks instead")
    ap.add_argument("--burst-sizes", default="10,20,30,60,100", help="L/s")
    args = ap.parse_args()
    if args.bursts:
        bursts(args)
        return
    city = build_demo_city()
    binnings = ["last", "mean"] if args.binning == "both" else [args.binning]
    for binning in binnings:
        t0 = time.perf_counter()
        fitted = fit_demo_leak_model(city, binning=binning)
        wn = fitted.detector.wn
        dist = nx.single_source_dijkstra_path_length(pipe_graph(wn), LEAK_NODE, weight="length")
        sigma = fitted.detector.residual_model.sigma
        print(f"\n## binning={binning}: residual noise (day-to-day, mean over sensors) "
              f"{sigma.mean():.4f} m; fit {'cached' if fitted.cached else f'{fitted.fit_s:.1f} s'}")
        print("| leak at n114 from 02:00 | first detection | level | fitted m3/h | pipe | "
              "distance (m) | false (> 500 m) |")
        print("|---|---|---|---|---|---|---|")
        cases: list[tuple[str, list[tuple[str, float, int]]]] = []
        for q in [float(x) for x in args.sizes.split(",") if x]:
            cases.append((f"constant {q:g} m3/h", [(LEAK_NODE, q / 3600.0, START_MS)]))
        for h in [float(x) for x in args.ramps.split(",") if x]:
            cases.append((f"0 -> 14.4 m3/h in {h:g} h", _ramp(14.4, h)))
        for name, leaks in cases:
            r = run_case(city, fitted, leaks, args.seed, dist, wn)
            print(f"| {name} | {r['first'] or 'none'} | {r['level'] or '-'} | {r['q'] or '-'} | "
                  f"{r['pipe'] or '-'} | {r['dist_m'] if r['dist_m'] is not None else '-'} | "
                  f"{r['false']} |", flush=True)
        false = [int(run_case(city, fitted, [], 1000 + s, dist, wn)["all"])  # type: ignore[call-overload]
                 for s in range(args.free_days)]
        print(f"leak-free days: {sum(false)} detections in {args.free_days} days "
              f"(seeds 1000-{999 + args.free_days}); {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
