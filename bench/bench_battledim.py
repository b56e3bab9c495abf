"""BattLeDIM 2019 on a reconstruction of L-Town: competition score of the leak detector.

Rebuilds the 2019 SCADA readings (``rescity.monitor.battledim``: perturbed L-Town with
the 23 published leak outflows, sensors at the competition's places, noise), runs the
model-based detector (``rescity.monitor.models.leak``) and a baseline over 2019, and
scores both with the competition's rule. Prints one row per detector: score (EUR), share
of the perfect 523,153.82 EUR, true and false detections, mean localisation distance,
run time. The scorer is checked first on the competition's PERFECT_TEAM.

Two training variants: "as found" (the default reconstruction: the four leaks that
started in 2018 are already in the training weeks, as they were in the real 2018 data,
so only a model comparison could reveal them) and "leak-free" (training weeks without
leaks, as the brief allows; those four leaks then appear on 2019-01-01).

    .venv/bin/python bench/bench_battledim.py [--cache DIR] [--no-cache] [--details]

Measured on 2 cores: cold (empty cache) 2 min 19 s (2019 simulation 78 s, signatures
2 x 15 s); warm 35 s. Cache: .rescity/cache/battledim/ (gitignored), keyed by the config.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import wntr

from rescity.monitor import battledim as bd
from rescity.monitor.models.leak import LeakDetector, ResidualModel, SensorPlacement


def residual_baseline(wn: wntr.network.WaterNetworkModel, placement: SensorPlacement,
                      train: pd.DataFrame, year: pd.DataFrame, z: float = 8.0,
                      rearm_days: int = 30) -> list[tuple[pd.Timestamp, str]]:
    """Baseline without the hydraulic model: the same residual regression, no signatures.

    Daily mean residual per sensor; an alarm when it drops ``z`` training sigmas below
    the sensor's baseline (then re-based, silent for ``rearm_days``); the suspected
    pipe is the first pipe at the alarming sensor's node.
    """
    rm = ResidualModel.fit(train, placement)
    e = pd.DataFrame(rm.residuals(year), index=year.index).resample("D").mean()
    base = np.zeros(e.shape[1])
    quiet_until = [pd.Timestamp.min] * e.shape[1]
    out = []
    for day, row in e.iterrows():
        t = day + pd.Timedelta(hours=23, minutes=55)  # the day's data are complete
        drop = (base - row.to_numpy()) / rm.sigma
        for s in np.argsort(-drop):
            if drop[s] < z:
                break
            if t < quiet_until[s]:
                continue
            node = placement.pressure[s]
            pipe = next(name for name in wn.get_links_for_node(node) if name in wn.pipe_name_list)
            out.append((t, pipe))
            base[s] = row.iloc[s]
            quiet_until[s] = t + pd.Timedelta(days=rearm_days)
            break  # one alarm per day
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cache", default=".rescity/cache/battledim")
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--details", action="store_true", help="print every detection")
    args = ap.parse_args()
    cache = None if args.no_cache else Path(args.cache)

    t0 = time.perf_counter()
    leaks, outflow = bd.read_leaks(), bd.read_leak_outflow()
    wn = wntr.network.WaterNetworkModel(str(bd.ltown_inp()))
    distance = bd.PipeDistance(wn)
    perfect = bd.score_detections(bd.perfect_detections(leaks), leaks, outflow, distance)
    print(f"scorer check, PERFECT_TEAM: {perfect.total_eur:,.2f} EUR "
          f"(competition: {bd.PERFECT_SCORE_EUR:,.2f}) "
          f"{'OK' if abs(perfect.total_eur - bd.PERFECT_SCORE_EUR) < 0.005 else 'MISMATCH'}")
    placement = bd.read_sensor_placement()

    rows = []
    for variant, old in (("as found", True), ("leak-free", False)):
        t = time.perf_counter()
        train, year = bd.reconstruct(cache_dir=cache, train_old_leaks=old, verbose=True)
        t_sim = time.perf_counter() - t
        print(f"[{variant}] reconstruction: {t_sim:.1f} s "
              f"({'cache' if t_sim < 10 else 'simulated'})")

        t = time.perf_counter()
        det = LeakDetector(wn, placement).fit(train)
        found = det.run(year)
        t_det = time.perf_counter() - t
        rep = bd.score_detections([(d.time, d.pipe) for d in found], leaks, outflow, distance)
        rows.append((f"model-based ({variant} training)", rep, t_det))

        t = time.perf_counter()
        base = residual_baseline(wn, placement, train, year)
        t_base = time.perf_counter() - t
        rep_b = bd.score_detections(base, leaks, outflow, distance)
        rows.append((f"baseline: residual alarm, no model ({variant})", rep_b, t_base))
        if args.details:
            print(rep.rows.to_string())
            print(rep_b.rows.to_string())

    print()
    print(f"{'detector':<46} {'score EUR':>12} {'% perfect':>9} {'true':>5} {'false':>6} "
          f"{'mean dist m':>11} {'time s':>7}")
    for name, rep, secs in rows:
        print(f"{name:<46} {rep.total_eur:>12,.2f} {100 * rep.share_of_perfect:>8.1f}% "
              f"{rep.true_detections:>5} {rep.false_detections:>6} "
              f"{rep.mean_distance_m:>11.0f} {secs:>7.1f}")
    for i in range(0, len(rows), 2):
        a, b = rows[i][1].total_eur, rows[i + 1][1].total_eur
        ratio = a / b if b > 0 else float("inf")
        print(f"ratio {rows[i][0]} / baseline: {ratio:.2f}" if b > 0
              else f"{rows[i][0]}: baseline scores {b:,.2f} EUR (ratio undefined)")
    print(f"total wall time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
