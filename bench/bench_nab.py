"""NAB benchmark of the seasonal anomaly model, next to NAB's windowed-Gaussian baseline.

Runs :class:`rescity.monitor.models.anomaly.SeasonalAnomalyDetector` over the 58 series of
the Numenta Anomaly Benchmark (all series fed at once as 58 sensors, each read causally),
scores it with NAB's rules (:mod:`rescity.monitor.nab`: scaled-sigmoid window reward,
probation, per-profile threshold optimised over the corpus, normalised so that the null
detector scores 0 and the perfect one 100) and prints one table. Scores are rounded as NAB's
result files store them (:func:`rescity.monitor.nab.as_stored`) so the baseline is
comparable with the published scoreboard (windowed Gaussian 39.65 / 20.87 / 47.41).

    .venv/bin/python bench/bench_nab.py [--nab /work/shared/datasets/nab]

Writes nothing.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rescity.monitor import nab
from rescity.monitor.models.anomaly import AnomalyParams, score_many

PUBLISHED = {
    "Numenta HTM (published)": (70.1, 63.1, 74.3),
    "windowed Gaussian (published)": (39.65, 20.87, 47.41),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nab", default=str(nab.DEFAULT_ROOT), help="NAB data root")
    args = ap.parse_args()

    t0 = time.perf_counter()
    files = nab.load_corpus(args.nab)
    profiles = nab.load_profiles(args.nab)
    print(
        f"NAB corpus: {len(files)} files, {sum(len(f) for f in files)} records, "
        f"{sum(len(f.windows) for f in files)} windows (loaded in {time.perf_counter() - t0:.1f} s)"
    )

    rows = []

    def run(name: str, detect) -> None:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        scores = detect()
        seconds = time.perf_counter() - t
        scores = [nab.as_stored(s) for s in scores]
        res = nab.score_corpus(files, scores, profiles)
        rows.append((name, res, seconds))

    run("null (constant 0.5)", lambda: [np.full(len(f), 0.5) for f in files])
    run("perfect", lambda: nab.perfect_scores(files))
    run("windowed Gaussian (ours)", lambda: [nab.windowed_gaussian(f.values) for f in files])
    run(
        "ResCity seasonal",
        lambda: score_many([(f.ts_ms, f.values) for f in files], AnomalyParams()),
    )

    print()
    print(
        f"{'detector':32s} {'standard':>9s} {'low FP':>9s} {'low FN':>9s} {'seconds':>8s}  thresholds (std/FP/FN)"
    )
    for name, res, seconds in rows:
        s, fp, fn = (res[p] for p in nab.PROFILES)
        print(
            f"{name:32s} {s.score:9.2f} {fp.score:9.2f} {fn.score:9.2f} {seconds:8.1f}  "
            f"{s.threshold:.4g}/{fp.threshold:.4g}/{fn.threshold:.4g}"
        )
    for name, (s, fp, fn) in PUBLISHED.items():
        print(f"{name:32s} {s:9.2f} {fp:9.2f} {fn:9.2f} {'-':>8s}")
    best = rows[-1][1]["standard"]
    print(
        f"\nResCity seasonal, standard profile: {best.tp_windows}/{best.tp_windows + best.fn_windows} "
        f"windows detected, {best.fp_records} false-positive records at threshold {best.threshold:.4g}"
    )
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
