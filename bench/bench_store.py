"""Store speed on the demo city (real networks, about 8,600 assets), both backends.

Prints, per backend: save, load and info times, and spatial queries (nearest k=5,
within 100 m, assets in one street polygon) against a baseline in the same process:
the same answers computed by brute force with shapely over every asset in memory.

Readings write (``--only readings`` for this part alone): batches of ``--batch``
readings (``--sensors`` sensors, 10 s apart) written by :meth:`MonitoringStore.write
<rescity.store.monitoring.MonitoringStore.write>` (integer sensor key, binary COPY on
PostgreSQL, key-ordered executemany on SQLite) against the baseline in the same run:
the previous path (text uid key; PostgreSQL: COPY text into a temporary table, then
``INSERT ... ON CONFLICT DO NOTHING``; SQLite: ``executemany`` of ``INSERT OR IGNORE``)
on a table of the previous layout. Median readings/s over ``--write-batches`` batches,
and the same for a redelivered batch (every reading already stored).

    .venv/bin/python bench/bench_store.py [--postgres URL] [--repeat N] [--only city|readings]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

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


DAY0_MS = 1_784_678_400_000  # 2026-07-22T00:00:00Z


class OldReadings:
    """The readings write path before migration 0003, on a table of that layout
    (``bench_reading_old``: primary key (text sensor uid, ts_ms)), for the baseline."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.pg = store.backend == "postgresql"
        with self.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS bench_reading_old")
            if self.pg:
                conn.exec_driver_sql("CREATE TABLE bench_reading_old (sensor_uid VARCHAR(300) NOT NULL, "
                                     "ts_ms BIGINT NOT NULL, value FLOAT NOT NULL, "
                                     "PRIMARY KEY (sensor_uid, ts_ms)) PARTITION BY RANGE (ts_ms)")
                conn.exec_driver_sql(f"CREATE TABLE bench_reading_old_p PARTITION OF bench_reading_old "
                                     f"FOR VALUES FROM ({DAY0_MS - 86_400_000}) TO ({DAY0_MS + 86_400_000})")
            else:
                conn.exec_driver_sql("CREATE TABLE bench_reading_old (sensor_uid VARCHAR(300) NOT NULL, "
                                     "ts_ms BIGINT NOT NULL, value FLOAT NOT NULL, "
                                     "PRIMARY KEY (sensor_uid, ts_ms)) WITHOUT ROWID")

    def insert(self, uids: list[str], ts_ms: np.ndarray, values: np.ndarray) -> int:
        with self.engine.begin() as conn:
            raw: Any = conn.connection.driver_connection
            if not self.pg:
                rows = sorted(zip(uids, ts_ms.tolist(), values.tolist(), strict=True))
                cur = raw.cursor()
                cur.executemany("INSERT OR IGNORE INTO bench_reading_old (sensor_uid, ts_ms, value) "
                                "VALUES (?, ?, ?)", rows)
                return int(cur.rowcount)
            with raw.cursor() as cur:
                cur.execute("CREATE TEMP TABLE IF NOT EXISTS _rin_old (sensor_uid text, ts_ms bigint, "
                            "value float8) ON COMMIT DELETE ROWS")
                text = "".join(f"{u}\t{t}\t{v!r}\n" for u, t, v in
                               zip(uids, ts_ms.tolist(), values.tolist(), strict=True))
                with cur.copy("COPY _rin_old (sensor_uid, ts_ms, value) FROM STDIN") as cp:
                    cp.write(text)
                cur.execute("INSERT INTO bench_reading_old SELECT sensor_uid, ts_ms, value FROM _rin_old "
                            "ON CONFLICT DO NOTHING")
                return int(cur.rowcount)

    def drop(self) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE IF EXISTS bench_reading_old")


def bench_readings(backend: str, store: Store, n_sensors: int, batch: int, n_batches: int) -> None:
    """Readings/s of the new and the old write path (see the module docstring)."""
    from rescity.store.monitoring import MonitoringStore

    ids = [f"water.J{i:06d}.pressure" for i in range(n_sensors)]
    per = batch // n_sensors  # readings per sensor in one batch
    sensor = np.tile(np.arange(n_sensors, dtype=np.int32), per)
    rng = np.random.default_rng(1)
    batches = [(sensor, DAY0_MS + (b * per + np.repeat(np.arange(per), n_sensors)) * 10_000,
                40.0 + rng.standard_normal(len(sensor))) for b in range(n_batches)]
    old = OldReadings(store)
    mon = MonitoringStore(store.engine)
    mon.write(ids, sensor[:n_sensors], np.full(n_sensors, DAY0_MS - 1), np.zeros(n_sensors))  # keys, partition
    old.insert(ids, np.full(n_sensors, DAY0_MS - 1), np.zeros(n_sensors))

    def rate(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], int]) -> tuple[float, float]:
        rates = []
        for s, t, v in batches:
            t0 = time.perf_counter()
            got = fn(s, t, v)
            rates.append(len(s) / (time.perf_counter() - t0))
            assert got == len(s), (got, len(s))
        s, t, v = batches[len(batches) // 2]
        t0 = time.perf_counter()
        assert fn(s, t, v) == 0  # redelivered: nothing new
        return statistics.median(rates), len(s) / (time.perf_counter() - t0)

    old_new, old_dup = rate(lambda s, t, v: old.insert([ids[i] for i in s.tolist()], t, v))
    new_new, new_dup = rate(lambda s, t, v: mon.write(ids, s, t, v))
    old.drop()
    what = f"{n_batches} x {batch:,} readings, {n_sensors:,} sensors"
    print(f"{backend:<11} {'readings write':<22} {new_new:>10,.0f}/s {old_new:>10,.0f}/s "
          f"{new_new / old_new:>8.1f}x  ({what})")
    print(f"{backend:<11} {'readings redelivered':<22} {new_dup:>10,.0f}/s {old_dup:>10,.0f}/s "
          f"{new_dup / old_dup:>8.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--postgres", default=os.environ.get(
        "RESCITY_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/rescity_bench"))
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--only", choices=("city", "readings"), default=None)
    ap.add_argument("--sensors", type=int, default=10_000, help="sensors of the readings write case")
    ap.add_argument("--batch", type=int, default=100_000, help="readings per batch of the readings write case")
    ap.add_argument("--write-batches", type=int, default=10, help="batches of the readings write case")
    args = ap.parse_args()
    if args.only == "readings":
        print(f"{'backend':<11} {'operation':<22} {'new':>12} {'baseline':>12} {'speed-up':>9}")
        with tempfile.TemporaryDirectory() as tmp:
            for backend, url in {"sqlite": f"sqlite:///{tmp}/bench.db", "postgresql": args.postgres}.items():
                if backend == "postgresql":
                    from rescity.store.testing import ensure_database, reset_database

                    try:
                        ensure_database(url)
                        reset_database(url)
                    except Exception as e:  # noqa: BLE001 - a bench reports and goes on
                        print(f"{backend:<11} skipped: {e}")
                        continue
                store = Store.open(url)
                try:
                    bench_readings(backend, store, args.sensors, args.batch, args.write_batches)
                finally:
                    store.close()
        return

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
            if args.only is None:
                bench_readings(backend, store, args.sensors, args.batch, args.write_batches)
            store.close()


if __name__ == "__main__":
    main()
