"""Earthquake ensembles on the demo city over Dask: wall time, speed-up from 1 to 2
workers, and ResCity's overhead over the engines' own solver time, in one run.

Each realization: an M 6.0 earthquake 2.5 km north-east of the centre, damage sampled
(seed = realization), repairs by 8 crews travelling on the road graph, the cascade (power
flow, EPANET water with pressure-driven demand, demand patterns averaged to the 1 h step)
over 168 h, curves, metrics and consequences per jurisdiction.

* speed-up: the same ``--subset`` realizations on a LocalCluster of 1 worker, then of 2
  (every worker warmed first by one realization of its own);
* the ensemble: ``--realizations`` on 2 workers (goal: 1,000 in at most 10 minutes);
* overhead: per realization, total time over the time inside the engines' solvers
  (EPANET's ``run_sim`` and pandapower's ``runpp``), measured in the workers (goal <= 1.2x).

    .venv/bin/python bench/bench_simulate.py [--realizations 1000] [--subset 40]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any


def timed_realization(city: Any, hazard: Any, seed: int) -> dict[str, float]:
    """One realization with the solver calls timed (runs inside a worker)."""
    import pandapower
    import wntr

    from rescity.simulate.scenario import run_scenario

    # the counter lives on an imported module: this function travels to the workers by value
    spent = wntr.__dict__.setdefault("_rescity_bench_spent", {"solver": 0.0})

    def wrap(obj: Any, name: str) -> Any:
        fn = getattr(obj, name)
        if getattr(fn, "_timed", False):
            return fn

        def inner(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent["solver"] += time.perf_counter() - t

        inner._timed = True  # type: ignore[attr-defined]
        setattr(obj, name, inner)
        return inner

    wrap(wntr.sim.EpanetSimulator, "run_sim")
    wrap(pandapower, "runpp")
    spent["solver"] = 0.0
    t = time.perf_counter()
    r = run_scenario(city, hazard, seed=seed, horizon_h=168, water_simulator="epanet", coarsen_patterns=True)
    total = time.perf_counter() - t
    return {"total_s": total, "solver_s": spent["solver"], "r_city": r.metrics["city"].loss_of_resilience_pct_h}


def run(city: Any, hazard: Any, seeds: range, workers: int) -> tuple[float, list[dict[str, float]]]:
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            Client(cl) as client:
        c = client.scatter(city, broadcast=True)
        # warm every worker (imports, the cascade's models and caches): one realization on each
        for addr in client.scheduler_info()["workers"]:
            client.submit(timed_realization, c, hazard, 0, workers=[addr], pure=False).result()
        client.run(lambda: None)
        t = time.perf_counter()
        futs = [client.submit(timed_realization, c, hazard, s, pure=False) for s in seeds]
        res = client.gather(futs)
        return time.perf_counter() - t, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--realizations", type=int, default=1000)
    ap.add_argument("--subset", type=int, default=40)
    args = ap.parse_args()
    from rescity.demo.city import build_demo_city
    from rescity.service.simulation import make_hazard

    city = build_demo_city()
    hazard = make_hazard("earthquake", city, magnitude=6.0, lon=city.center[0] + 0.02, lat=city.center[1] + 0.02)
    t1, _ = run(city, hazard, range(1, args.subset + 1), 1)
    t2, _ = run(city, hazard, range(1, args.subset + 1), 2)
    print(f"{args.subset} realizations: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s -> speed-up {t1 / t2:.2f}x (goal >= 1.7x)")
    tn, res = run(city, hazard, range(1, args.realizations + 1), 2)
    tot = sum(r["total_s"] for r in res)
    sol = sum(r["solver_s"] for r in res)
    print(f"{args.realizations} realizations on 2 workers: {tn:.1f} s wall ({tn / 60:.1f} min; goal <= 10 min)")
    print(f"per realization: median {statistics.median(r['total_s'] for r in res):.2f} s, of which solvers "
          f"{statistics.median(r['solver_s'] for r in res):.2f} s")
    print(f"ResCity total / engines' solver time: {tot / sol:.2f}x (goal <= 1.2x)")
    rs = sorted(r["r_city"] for r in res)
    print(f"city loss of resilience: mean {statistics.fmean(rs):,.0f} %.h, p10 {rs[len(rs) // 10]:,.0f}, "
          f"p90 {rs[9 * len(rs) // 10]:,.0f}")


if __name__ == "__main__":
    main()
