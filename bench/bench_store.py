"""Store speed on the demo city (real networks, about 8,600 assets), both backends.

Prints, per backend: save, load and info times, and spatial queries (nearest k=5,
within 100 m, assets in one street polygon) against a baseline in the same process:
the same answers computed by brute force with shapely over every asset in memory.

    .venv/bin/python bench/bench_store.py [--postgres URL] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import shapely

from rescity.demo.city import build_demo_city
from rescity.model import JurisdictionLevel
from rescity.model.geo import project_many, utm_crs_for
from rescity.store import Store


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls (s) and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--postgres", default=os.environ.get(
        "RESCITY_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/rescity_bench"))
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()

    city = build_demo_city()
    uids, geoms = [], []
    for net in city.networks.values():
        for e in net.elements():
            uids.append(net.uid(e.id))
            geoms.append(e.geometry)
    for f in city.facilities.values():
        uids.append(f.uid)
        geoms.append(f.geometry)
    n = len(uids)
    lon, lat = city.center
    crs = utm_crs_for(lon, lat)
    street = city.level(JurisdictionLevel.STREET)[0].geometry

    # baselines: brute force over every asset, in memory
    def brute_nearest() -> list[str]:
        g = project_many(geoms, crs)
        d = shapely.distance(g, project_many([shapely.Point(lon, lat)], crs)[0])
        return [uids[i] for i in np.argsort(d, kind="stable")[:5]]

    def brute_within() -> int:
        g = project_many(geoms, crs)
        d = shapely.distance(g, project_many([shapely.Point(lon, lat)], crs)[0])
        return int((d <= 100.0).sum())

    def brute_polygon() -> int:
        return int(shapely.intersects(np.asarray(geoms, dtype=object), street).sum())

    base = {
        "nearest k=5": timed(brute_nearest, args.repeat),
        "within 100 m": timed(brute_within, args.repeat),
        "in a street polygon": timed(brute_polygon, args.repeat),
    }
    print(f"demo city: {n} assets, {len(city.sensors)} sensors, {len(city.jurisdictions)} jurisdictions")
    print(f"{'backend':<11} {'operation':<22} {'time':>10} {'baseline':>10} {'speed-up':>9}")

    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{tmp}/bench.db", "postgresql": args.postgres}
        for backend, url in urls.items():
            if backend == "postgresql":
                from rescity.store.testing import ensure_database, reset_database

                try:
                    ensure_database(url)
                    reset_database(url)
                except Exception as e:  # noqa: BLE001 - a bench reports and goes on
                    print(f"{backend:<11} skipped: {e}")
                    continue
            store = Store.open(url)
            t_save, _ = timed(lambda st=store: st.save_city(city), 3)
            t_load, _ = timed(store.load_city, 3)
            t_info, _ = timed(store.info, 5)
            for op, secs in (("save_city", t_save), ("load_city", t_load), ("info", t_info)):
                print(f"{backend:<11} {op:<22} {secs * 1000:>8.1f}ms {'':>10} {'':>9}")
            queries = {
                "nearest k=5": lambda st=store: [u for u, _ in st.nearest_assets(lon, lat, k=5)],
                "within 100 m": lambda st=store: len(st.assets_within_distance(lon, lat, 100.0)),
                "in a street polygon": lambda st=store: len(st.assets_within(street)),
            }
            for op, fn in queries.items():
                secs, got = timed(fn, args.repeat)
                b_secs, want = base[op]
                same = "" if got == want else f"  (answers differ: {got} vs {want})"
                print(f"{backend:<11} {op:<22} {secs * 1000:>8.2f}ms {b_secs * 1000:>8.2f}ms "
                      f"{b_secs / secs:>8.1f}x{same}")
            store.close()


if __name__ == "__main__":
    main()
