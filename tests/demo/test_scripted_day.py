"""The demo's scripted day raises the warnings each injected event should raise."""

from __future__ import annotations

import networkx as nx
import pytest

from rescity.demo.city import build_demo_city
from rescity.monitor.batch import HOUR_MS
from rescity.service.monitoring import replay_scripted_day
from rescity.store.monitoring import MonitoringStore
from rescity.store.testing import make_test_store

pytestmark = pytest.mark.xdist_group("demo")


def _pipe_distance_m(a: str, b: str) -> float:
    """Shortest distance along L-Town's pipes between the nearer ends of two pipes (m)."""
    from rescity.monitor.models.leak import pipe_graph
    from rescity.service.leaks import fit_demo_leak_model

    wn = fit_demo_leak_model(build_demo_city()).detector.wn
    pa, pb = (wn.get_link(x.split(":", 1)[1]) for x in (a, b))
    d = nx.multi_source_dijkstra_path_length(pipe_graph(wn), {pa.start_node_name, pa.end_node_name},
                                             weight="length")
    return min(d[pb.start_node_name], d[pb.end_node_name])


def test_each_scripted_event_raises_its_warning(tmp_path):
    city = build_demo_city()
    store = make_test_store("sqlite", tmp_path)
    try:
        store.save_city(city)
        report = replay_scripted_day(store, city)
        events = {e["kind"]: e for e in report.events}
        fired: dict[tuple[str, str], int] = {}
        for tr in report.transitions:
            if str(tr.kind) in ("firing", "level") and tr.level_after:
                key = (tr.model, tr.asset)
                fired[key] = min(fired.get(key, 9), int(tr.level_after))  # 1 = red is highest

        def worst(model: str, asset: str | None = None) -> int:
            levels = [lv for (m, a), lv in fired.items() if m == model and (asset is None or a == asset)]
            return min(levels, default=0)

        assert report.stats.accepted == report.stats.readings and report.stats.dead == 0
        assert worst("bridge_strain_heavy_traffic", events["bridge_overload"]["asset"]) == 1
        assert worst("main_break") in (1, 2, 3)
        assert worst("methane_manhole_near_gas", events["gas_in_manhole"]["asset"]) == 1
        assert worst("drainage_level", events["drainage_overflow"]["asset"]) == 1
        assert worst("rainfall_intensity") == 1
        # the CMA rainstorm signal on rolling accumulations: about 76 mm within 3 h is orange
        # (50 mm in 3 h), not red (100 mm in 3 h)
        assert worst("rainstorm_signal") == 2
        assert worst("sensor_silent", events["sensor_silent"]["asset"]) in (2, 3, 4)  # escalates with time
        # before the bridge overload (08:30) the city is quiet: no warning fired at all
        first = min(tr.ts_ms for tr in report.transitions if str(tr.kind) == "firing")
        assert first >= events["bridge_overload"]["start_ms"]
        # the model-based leak detector watches L-Town (fitted on a simulated leak-free week,
        # 5-min rows averaging the 1-min readings): it judged the night and morning with a
        # full 24 h window and found the incipient leak (01:00, growing to 4 L/s by 07:00)
        # once, blue (the window's mean size), close to p102, before the 10:30 main break;
        # from 10:25 the break's inflow is far outside its calibrated range, so it stops
        # judging (the burst is the main_break model's)
        leak_watch, = report.sources
        assert leak_watch.watch.stats["checks"] >= 10
        assert leak_watch.first_gated_ms is not None
        assert leak_watch.first_gated_ms >= events["main_break"]["start_ms"] - 5 * 60_000
        leak_fired = [tr for tr in report.transitions if tr.model == "leak_model" and str(tr.kind) == "firing"]
        assert len(leak_fired) == 1, [(tr.asset, tr.ts_ms) for tr in leak_fired]
        found, = leak_fired
        leak = events["incipient_leak"]
        assert leak["start_ms"] + 6 * HOUR_MS <= found.ts_ms < events["main_break"]["start_ms"]
        assert found.level_after == 4 and 1.0 <= found.details["q_m3h"] < 5.0  # blue
        assert _pipe_distance_m(found.asset, leak["asset"]) <= 100.0
        assert leak["asset"] in ["water:" + p for p in found.details["area"]]
        assert leak_watch.watch.open_leaks == {found.asset.split(":", 1)[1]: 4}
        # its burst view sees the main break as an inflow step with a localised pressure
        # drop: a main_break at a pipe touching the burst, stamped with the first row after
        # it, before the low-pressure cluster's, red once the whole step is in its window
        brk = events["main_break"]
        burst = [tr for tr in report.transitions if tr.model == "main_break" and tr.details.get("view") == "burst"]
        assert burst and str(burst[0].kind) == "firing", burst
        assert _pipe_distance_m(burst[0].asset, brk["asset"]) <= 100.0
        assert brk["start_ms"] - 5 * 60_000 <= burst[0].ts_ms <= brk["start_ms"] + 10 * 60_000
        cluster = [tr for tr in report.transitions if tr.model == "main_break" and "members" in tr.details]
        assert cluster and burst[0].ts_ms < cluster[0].ts_ms
        assert min(tr.level_after for tr in burst if tr.level_after) == 1
        assert burst[0].lon == burst[0].lon  # placed (the pipe's middle), so it groups by place
        # every transition of the alarm book is in the store
        mon = MonitoringStore(store.engine)
        kinds = {e["kind"] for e in mon.alarm_events()}
        assert {"opened", "fired", "escalated", "resolved"} <= kinds
    finally:
        store.close()
