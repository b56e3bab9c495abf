"""Re-grading the risk map after a batch of alarms: incremental against from scratch.

100,000 H3 cells (resolution 10, about 15,000 m2 each: a disk around the demo city's
centre, some 1,500 km2), a register of 20,000 risk points and 5,000 live alarms
already on the map, with exposure and vulnerability per cell. A batch of 1,000 alarm
transitions arrives (700 alarms fire at random places and levels, 300 live ones resolve):

* incremental (what the service does): locate the batch's alarms in the cells (STRtree
  over the cell polygons) and ``RiskGrid.add_live`` (only the touched cells re-graded);
* from scratch (the baseline, same run): locate every risk point and every live alarm,
  rebuild the static part and the live part, score and grade every cell.

Both give the same levels (checked). Prints median ms over ``--repeat`` batches.

    .venv/bin/python bench/bench_risk.py [--cells 100000] [--repeat 7] [--quantiles]
"""

from __future__ import annotations

import argparse
import statistics
import time

import h3
import numpy as np
import shapely
from shapely.geometry import Polygon

from rescity.risk.grid import RiskGrid
from rescity.risk.policy import RiskPolicy, load_risk_policy

LON0, LAT0 = 24.9445, 60.1720


def h3_cells(n: int) -> list[str]:
    k = 1
    while 3 * k * k + 3 * k + 1 < n:
        k += 1
    centre = h3.latlng_to_cell(LAT0, LON0, 10)
    return sorted(h3.grid_disk(centre, k))[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quantiles", action="store_true", help="grade by quantiles instead of thresholds")
    args = ap.parse_args()
    policy = load_risk_policy()
    if args.quantiles:
        doc = policy.model_dump()
        doc["grading"]["mode"] = "quantiles"
        policy = RiskPolicy.model_validate(doc)
    rng = np.random.default_rng(7)
    t = time.perf_counter()
    cells = h3_cells(args.cells)
    polys = [Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]
    tree = shapely.STRtree(polys)
    n = len(cells)
    bounds = shapely.total_bounds(polys)
    print(f"{n:,} cells built in {time.perf_counter() - t:.1f} s, extent {bounds.round(3).tolist()}")

    def rand_points(k: int) -> np.ndarray:
        return shapely.points(rng.uniform(bounds[0], bounds[2], k), rng.uniform(bounds[1], bounds[3], k))

    def locate(pts: np.ndarray) -> np.ndarray:
        out = np.full(len(pts), -1, dtype=np.int64)
        src, dst = tree.query(pts, predicate="intersects")
        out[src[::-1]] = dst[::-1]
        return out

    pop = rng.integers(0, 800, n).astype(float)
    fac = (rng.random(n) < 0.02).astype(float)
    vul = rng.random(n) * 0.6
    reg_pts = rand_points(20_000)
    L, C = rng.integers(1, 6, 20_000), rng.integers(1, 6, 20_000)
    ratings = L * C / 25.0
    flood = rng.random(20_000) < 0.2
    weights = np.array([policy.score.level_weight("alarm", lv) for lv in (1, 2, 3, 4)])
    live_pts = rand_points(5_000)
    live_w = weights[rng.integers(0, 4, 5_000)]

    grid = RiskGrid(policy, pop, fac, vul)
    grid.set_points(locate(reg_pts), ratings, flood)
    grid.add_live(locate(live_pts), live_w)

    inc_ms, full_ms, touched = [], [], []
    for _ in range(args.repeat):
        # 700 alarms fire at random places, 300 of the live ones resolve
        new_pts = rand_points(700)
        new_w = weights[rng.integers(0, 4, 700)]
        gone = rng.choice(len(live_pts), 300, replace=False)
        batch = np.concatenate([new_pts, live_pts[gone]])
        w = np.concatenate([new_w, -live_w[gone]])
        # incremental
        t = time.perf_counter()
        cells_b = locate(batch)
        changed = grid.add_live(cells_b, w)
        inc_ms.append((time.perf_counter() - t) * 1000)
        touched.append(len(changed))
        keep = np.ones(len(live_pts), bool)
        keep[gone] = False
        live_pts = np.concatenate([live_pts[keep], new_pts])
        live_w = np.concatenate([live_w[keep], new_w])
        # from scratch, with the batch applied
        t = time.perf_counter()
        g2 = RiskGrid(policy, pop, fac, vul)
        g2.set_points(locate(reg_pts), ratings, flood)
        g2.add_live(locate(live_pts), live_w)
        full_ms.append((time.perf_counter() - t) * 1000)
        assert np.allclose(g2.score, grid.score)
        if args.quantiles:  # ranks of scores equal up to rounding may swap: compare the counts
            assert (np.bincount(g2.level, minlength=5) == np.bincount(grid.level, minlength=5)).all()
        else:
            assert (g2.level == grid.level).all()
    inc, full = statistics.median(inc_ms), statistics.median(full_ms)
    mode = "quantiles" if args.quantiles else "absolute thresholds"
    print(f"grading: {mode}; batch: 1,000 alarm transitions; {statistics.median(touched):.0f} cells change level")
    print(f"incremental (locate batch + re-grade touched cells): {inc:8.1f} ms   (goal < 100 ms)")
    print(f"from scratch (locate 20,000 points + {len(live_pts):,} alarms, rebuild): {full:8.1f} ms")
    print(f"speed-up: {full / inc:.1f}x")


if __name__ == "__main__":
    main()
