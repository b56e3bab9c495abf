"""NAB benchmark of the seasonal anomaly model, next to NAB's windowed-Gaussian baseline.

Runs :class:`rescity.monitor.models.anomaly.SeasonalAnomalyDetector` (point view, optional
transition view, and the fuzzy-ART shape view of :mod:`rescity.monitor.models.art`) over the 58
series of the Numenta Anomaly Benchmark (all series fed at once as 58 sensors, each read causally),
scores it with NAB's rules (:mod:`rescity.monitor.nab`: scaled-sigmoid window reward,
probation, per-profile threshold optimised over the corpus, normalised so that the null
detector scores 0 and the perfect one 100) and prints one table. Scores are rounded as NAB's
result files store them (:func:`rescity.monitor.nab.as_stored`) so the baseline is
comparable with the published scoreboard (windowed Gaussian 39.65 / 20.87 / 47.41).

The model's defaults are the best point of a small grid (:data:`GRID`, a few global
values for the whole corpus). Because choosing them on the corpus is optimistic, the bench
also prints a **2-fold held-out** figure: the files (sorted by name) are split by a fixed
rule into fold A (even positions) and fold B (odd positions); on each fold the grid point
and the three profile thresholds are chosen, then applied unchanged to the other fold. The
held-out score sums the raw scores of both test folds and normalises them with the whole
corpus's null and perfect raw scores, ``100 (raw_A + raw_B - null) / (perfect - null)``.

    .venv/bin/python bench/bench_nab.py [--nab /work/shared/datasets/nab] [--no-grid]

Writes nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from rescity.monitor import nab
from rescity.monitor.models.anomaly import AnomalyParams, score_many

PUBLISHED = {
    "Numenta HTM (published)": (70.1, 63.1, 74.3),
    "windowed Gaussian (published)": (39.65, 20.87, 47.41),
}

#: Grid of the tuning search (each point overrides the defaults of ``AnomalyParams``): the
#: alternatives tried while designing the shape view (off; shape window and block length;
#: vigilance; start and settle period of the record; record score; near-record evidence), and
#: the transition view on and off. The
#: held-out figure chooses among all of them on one half of the corpus.
GRID: list[dict[str, Any]] = [
    {"trans_weight": 0.0, "shape_score": 0.0},
    {"trans_weight": 0.0},
    {"trans_weight": 0.0, "shape_window": 3, "shape_step": 2},
    {"trans_weight": 0.0, "shape_window": 4, "shape_step": 3},
    {"trans_weight": 0.0, "shape_window": 8, "shape_step": 4},
    {"trans_weight": 0.0, "shape_vigilance": 0.85},
    {"trans_weight": 0.0, "shape_vigilance": 0.95},
    {"trans_weight": 0.0, "shape_start": 200, "shape_settle": 100},
    {"trans_weight": 0.0, "shape_start": 300, "shape_settle": 100},
    {"trans_weight": 0.0, "shape_score": 0.28, "shape_near_weight": 0.0},
    {"trans_weight": 0.5, "shape_score": 0.0},
    {"trans_weight": 0.5},
    {"trans_weight": 0.5, "shape_score": 0.28, "shape_near_weight": 0.0},
]


def _folds(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed split of the name-sorted files: even positions (A) and odd positions (B)."""
    i = np.arange(n)
    return i[i % 2 == 0], i[i % 2 == 1]


def _sub(seq: Sequence[Any], idx: np.ndarray) -> list[Any]:
    return [seq[int(k)] for k in idx]


def held_out(
    files: list[nab.NabFile],
    grid_scores: list[list[np.ndarray]],
    profiles: dict[str, nab.CostMatrix],
) -> tuple[dict[str, float], list[int]]:
    """2-fold held-out NAB scores per profile, and the grid point chosen on each fold."""
    a, b = _folds(len(files))
    raw = dict.fromkeys(profiles, 0.0)
    chosen = []
    for train, test in ((a, b), (b, a)):
        tr_files = _sub(files, train)
        results = [nab.score_corpus(tr_files, _sub(sc, train), profiles) for sc in grid_scores]
        k = int(np.argmax([r["standard"].score for r in results]))
        chosen.append(k)
        thr = {p: results[k][p].threshold for p in profiles}
        res = nab.score_corpus(_sub(files, test), _sub(grid_scores[k], test), profiles, thr)
        for p in profiles:
            raw[p] += res[p].raw
    out = {}
    for p, cost in profiles.items():
        null = -cost.fn_weight * sum(len(f.windows) for f in files)
        out[p] = 100.0 * (raw[p] - null) / (nab.perfect_raw(files, cost) - null)
    return out, chosen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nab", default=str(nab.DEFAULT_ROOT), help="NAB data root")
    ap.add_argument("--no-grid", action="store_true", help="skip the grid and held-out figure")
    args = ap.parse_args()

    t0 = time.perf_counter()
    files = nab.load_corpus(args.nab)
    profiles = nab.load_profiles(args.nab)
    print(
        f"NAB corpus: {len(files)} files, {sum(len(f) for f in files)} records, "
        f"{sum(len(f.windows) for f in files)} windows (loaded in {time.perf_counter() - t0:.1f} s)"
    )
    series = [(f.ts_ms, f.values) for f in files]

    rows = []

    def run(name: str, detect) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        scores = detect()
        seconds = time.perf_counter() - t
        scores = [nab.as_stored(s) for s in scores]
        res = nab.score_corpus(files, scores, profiles)
        rows.append((name, res, seconds))
        return scores

    run("null (constant 0.5)", lambda: [np.full(len(f), 0.5) for f in files])
    run("perfect", lambda: nab.perfect_scores(files))
    run("windowed Gaussian (ours)", lambda: [nab.windowed_gaussian(f.values) for f in files])
    default_scores = run("ResCity seasonal (defaults)", lambda: score_many(series, AnomalyParams()))

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
    for name, (ps, pfp, pfn) in PUBLISHED.items():
        print(f"{name:32s} {ps:9.2f} {pfp:9.2f} {pfn:9.2f} {'-':>8s}")
    best = rows[-1][1]["standard"]
    print(
        f"\nResCity seasonal, standard profile: {best.tp_windows}/{best.tp_windows + best.fn_windows} "
        f"windows detected, {best.fp_records} false-positive records at threshold {best.threshold:.4g}"
    )

    if not args.no_grid:
        print(f"\nGrid search ({len(GRID)} points, full corpus; the defaults should be the best):")
        base = AnomalyParams()
        grid_scores = []
        for point in GRID:
            p = replace(base, **point)
            sc = default_scores if p == base else [nab.as_stored(s) for s in score_many(series, p)]
            grid_scores.append(sc)
            r = nab.score_corpus(files, sc, profiles)
            print(
                f"  {point}: "
                + " / ".join(f"{r[k].score:.2f}" for k in nab.PROFILES)
                + (" (defaults)" if p == base else "")
            )
        ho, chosen = held_out(files, grid_scores, profiles)
        h_std, h_fp, h_fn = (ho[k] for k in nab.PROFILES)
        print(
            "\n2-fold held-out (grid point and thresholds chosen on one half of the files, "
            f"scored on the other):\n  standard {h_std:.2f} / low FP {h_fp:.2f} / "
            f"low FN {h_fn:.2f}; chosen on A: {GRID[chosen[0]]}, on B: {GRID[chosen[1]]}"
        )
    print(f"total {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
