"""Response loop speed on the demo city's jurisdictions, SQLite and (with --postgres) PostgreSQL.

Prints, per backend:
* opening incidents from alarm groups (verified, routed, dispatched: 3 chained audit
  records each), incidents/s, and the actions that follow (accept, arrive), actions/s;
* the deadline check (``ResponseService.tick``) with N open incidents of which none is
  due, against the baseline in the same run: the same check by reading every open
  incident (what a check without the indexed ``next_due_ms`` does);
* the same check when 1 % of them are due (they escalate);
* verifying the whole audit chain, records/s;
* response metrics over every incident.

    .venv/bin/python bench/bench_respond.py [--incidents N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from rescity.demo.city import build_demo_city
from rescity.model import City, JurisdictionLevel
from rescity.respond import lifecycle
from rescity.respond.access import SYSTEM
from rescity.respond.deadlines import overdue
from rescity.service.respond import ResponseService
from rescity.store import Store

T0 = 1_784_764_800_000
MIN = 60_000


def _points(city: City, n: int) -> list[tuple[float, float]]:
    cells = sorted(city.level(JurisdictionLevel.GRID), key=lambda j: j.code)
    out = []
    for k in range(n):
        c = cells[k % len(cells)].geometry.representative_point()
        out.append((c.x, c.y))
    return out


def scan_tick(svc: ResponseService, now: int) -> int:
    """The baseline: read every open incident and test its deadlines."""
    late = 0
    for doc in svc.rs.incident_docs(states=[s.value for s in lifecycle.S if s.is_open]):
        if overdue(lifecycle.incident_from_doc(doc), now):
            late += 1
    return late


def run(url: str, city: City, n: int) -> dict[str, Any]:
    store = Store.open(url)
    store.save_city(city)
    svc = ResponseService(store)
    svc.rs.reset_demo()
    pts = _points(city, n)
    nets = ["water", "gas", "drainage", "power", "bridge"]
    t = time.perf_counter()
    ids = []
    for k, (lon, lat) in enumerate(pts):
        # yellow: acknowledge within 30 min, so nothing is due at T0 + 20 min
        inc = svc.from_alarm_group(group_id=f"G{k}", ts_ms=T0 + k, alarms=[{
            "id": f"A{k}", "model": "pressure_low", "asset": f"water:J{k}", "network": nets[k % 5],
            "level": 3, "lon": lon, "lat": lat}])
        assert inc is not None
        ids.append(inc.id)
    open_s = time.perf_counter() - t
    m = max(1, n // 10)
    t = time.perf_counter()
    for iid in ids[:m]:
        svc.act(SYSTEM, iid, "accept", T0 + 2 * MIN)
        svc.act(SYSTEM, iid, "arrive", T0 + 10 * MIN)
    act_s = time.perf_counter() - t
    now = T0 + 20 * MIN
    reps = 5
    t = time.perf_counter()
    for _ in range(reps):
        assert svc.tick(now) == []
    tick_s = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        assert scan_tick(svc, now) == 0
    scan_s = (time.perf_counter() - t) / reps
    # make 1 % due: they were opened with a 30 min acknowledge clock; reopen the clock earlier
    due_n = max(1, n // 100)
    for iid in ids[m:m + due_n]:
        svc.act(SYSTEM, iid, "set_level", T0 + 15 * MIN, {"level": 1})  # red: 5 min from now
    t = time.perf_counter()
    evs = svc.tick(T0 + 21 * MIN)
    due_s = time.perf_counter() - t
    escalated = sum(1 for e in evs if e.action.value == "escalate")
    t = time.perf_counter()
    verdict = svc.verify_audit()
    verify_s = time.perf_counter() - t
    t = time.perf_counter()
    metrics = svc.metrics(SYSTEM)
    metrics_s = time.perf_counter() - t
    store.close()
    return {"backend": url.split(":")[0], "incidents": n, "open_per_s": n / open_s,
            "actions_per_s": 2 * m / act_s, "tick_ms": tick_s * 1000, "scan_ms": scan_s * 1000,
            "due": due_n, "escalated": escalated, "due_tick_ms": due_s * 1000,
            "records": verdict.records, "verify_ok": verdict.ok,
            "verify_per_s": verdict.records / verify_s, "metrics_ms": metrics_s * 1000,
            "metric_units": len(metrics["units"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--incidents", type=int, default=2000)
    ap.add_argument("--postgres", default=None, help="also run on this PostgreSQL URL")
    args = ap.parse_args()
    city = build_demo_city()
    urls = [f"sqlite:///{tempfile.mkdtemp(prefix='rescity-bench-')}/respond.db"]
    if args.postgres:
        urls.append(args.postgres)
    for url in urls:
        r = run(url, city, args.incidents)
        print(f"== {r['backend']}: {r['incidents']:,} incidents")
        print(f"open from alarm groups (verify + route + dispatch): {r['open_per_s']:,.0f} incidents/s")
        print(f"accept / arrive:                                   {r['actions_per_s']:,.0f} actions/s")
        print(f"deadline check, none due:   {r['tick_ms']:8.2f} ms   baseline (read every open "
              f"incident) {r['scan_ms']:8.2f} ms   -> {r['scan_ms'] / r['tick_ms']:,.1f}x")
        print(f"deadline check, {r['due']} due: {r['due_tick_ms']:8.1f} ms   ({r['escalated']} escalated)")
        print(f"audit verify: {r['records']:,} records, ok={r['verify_ok']}, {r['verify_per_s']:,.0f} records/s")
        print(f"metrics over every incident: {r['metrics_ms']:,.0f} ms ({r['metric_units']} units)")


if __name__ == "__main__":
    main()
