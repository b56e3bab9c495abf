"""The leak detector in the live pipeline, on the demo city's L-Town: a leak larger than
the scripted day's incipient one, simulated with the demo's sensors and noise, raises a
``leak_model`` warning through the same alarm book and store transaction as the engine's;
a leak-free day raises none; a main-break-sized inflow puts the watch out of its range."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from rescity.demo.city import build_demo_city
from rescity.demo.day import DAY_START_MS, water_history
from rescity.monitor.batch import HOUR_MS, MINUTE_MS, ReadingBatch
from rescity.monitor.engine import TransitionKind
from rescity.monitor.models.leak import pipe_graph
from rescity.monitor.replay import replay_arrays
from rescity.service.leaks import demo_leak_source, fit_demo_leak_model, water_sensors
from rescity.service.monitoring import make_pipeline
from rescity.store.monitoring import MonitoringStore
from rescity.store.testing import make_test_store

pytestmark = pytest.mark.xdist_group("demo")

LEAK_NODE = "n114"  # the end node of p102, where the scripted day's incipient leak is
LEAK_M3S = 20.0 / 3600.0  # 20 m3/h (5.6 L/s), switched on at 02:00


@pytest.fixture(scope="module")
def city():
    return build_demo_city()


def _day(city, tmp_path, leaks, seed):
    store = make_test_store("sqlite", tmp_path)
    store.save_city(city)
    made = []

    def sources(registry):
        made.append(demo_leak_source(city, registry))
        return made

    pipe = make_pipeline(store, city, sources=sources)
    day = water_history(city, days=1, start_ms=DAY_START_MS, seed=seed, leaks=leaks)
    trs = []
    replay_arrays(pipe, day.sensors, day.ts_ms, day.values, step_ms=5 * MINUTE_MS,
                  on_slice=lambda now, res: trs.extend(res.transitions))
    return store, made[0], trs


def test_a_larger_leak_raises_a_leak_warning_through_the_alarm_book(city, tmp_path):
    store, src, trs = _day(city, tmp_path, [(LEAK_NODE, LEAK_M3S, DAY_START_MS + 2 * HOUR_MS)], seed=11)
    try:
        leak = [t for t in trs if t.model == "leak_model"]
        fired = [t for t in leak if t.kind == TransitionKind.FIRING]
        assert fired, f"no leak warning; last T {src.watch._tracker.last_t:.1f}"
        first = fired[0]
        assert DAY_START_MS + 2 * HOUR_MS < first.ts_ms < DAY_START_MS + 14 * HOUR_MS
        assert first.asset.startswith("water:") and first.level_after in (1, 2, 3, 4)
        wn = fit_demo_leak_model(city).detector.wn
        g = pipe_graph(wn)
        link = wn.get_link(first.asset.split(":", 1)[1])
        d = nx.multi_source_dijkstra_path_length(g, {link.start_node_name, link.end_node_name},
                                                 weight="length")
        assert d[LEAK_NODE] < 500.0, d[LEAK_NODE]  # localised near the leak (along pipes, m)
        assert src.stats["gated_rows"] == 0  # a 20 m3/h leak stays in the calibrated range
        # the same alarm book and the same store: opened, fired and grouped events stored
        kinds = {e["kind"] for e in MonitoringStore(store.engine).alarm_events()
                 if e["model"] == "leak_model"}
        assert {"opened", "grouped"} <= kinds, kinds
    finally:
        store.close()


def test_a_leak_free_day_raises_no_leak_warning(city, tmp_path):
    store, src, trs = _day(city, tmp_path, [], seed=12)
    try:
        assert [t for t in trs if t.model in ("leak_model", "main_break")] == []
        assert src.watch.stats["checks"] >= 20 and src.stats["gated_rows"] == 0
    finally:
        store.close()


def test_a_small_main_break_is_a_main_break_candidate_at_its_place(city, tmp_path):
    """60 L/s at n105 (the end of a DN150, where L-Town stays above every low-pressure
    threshold, so the low-pressure cluster cannot see it): the burst view of the leak
    source raises a main_break from the inflow step and the localised pressure drop,
    within 300 m of the break, and escalates it as the whole step enters its window."""
    node, on = "n105", DAY_START_MS + 10 * HOUR_MS + 30 * MINUTE_MS
    store, src, trs = _day(city, tmp_path, [(node, 0.060, on)], seed=5)
    try:
        brk = [t for t in trs if t.model == "main_break"]
        assert brk and all(t.details.get("view") == "burst" for t in brk)
        first = brk[0]
        assert first.kind == TransitionKind.FIRING and on - 5 * MINUTE_MS <= first.ts_ms <= on + 10 * MINUTE_MS
        wn = fit_demo_leak_model(city).detector.wn
        link = wn.get_link(first.asset.split(":", 1)[1])
        d = nx.multi_source_dijkstra_path_length(pipe_graph(wn), {link.start_node_name, link.end_node_name},
                                                 weight="length")
        assert d[node] < 300.0, d[node]
        assert min(t.level_after for t in brk if t.level_after) == 2  # orange: 50-100 L/s
        assert src.watch.open_bursts == {first.asset.split(":", 1)[1]: 2}
        assert src.stats["gated_rows"] > 0  # the inflow leaves the leak checks' range, not the burst view's
        kinds = {e["kind"] for e in MonitoringStore(store.engine).alarm_events() if e["model"] == "main_break"}
        assert {"opened", "escalated"} <= kinds, kinds
    finally:
        store.close()


def test_a_main_break_sized_inflow_is_out_of_the_calibrated_range(city):
    from rescity.monitor.registry import SensorRegistry

    registry = SensorRegistry.from_sensors(city.sensors.values())
    src = demo_leak_source(city, registry)
    ws = water_sensors(city)
    sid = ws.flow[ws.inflow[0]]
    t = DAY_START_MS + 10 * HOUR_MS
    batch = ReadingBatch.of([registry.index[sid]], [t], [0.150 + 0.04])  # + 540 m3/h
    src.ingest(batch, t)
    assert src.stats["gated_rows"] == 1 and src.first_gated_ms == t
    assert np.all(src.inflow_hi_m3s < 0.15)


def test_the_fitted_detector_is_cached_by_its_inputs(city, tmp_path):
    from rescity.service.leaks import cache_key

    ws = water_sensors(city)
    k1, _ = cache_key(city, ws, days=7, seed=1, detector_params={})
    k2, _ = cache_key(city, ws, days=7, seed=1, detector_params={})  # the INP is written again
    assert k1 == k2
    assert k1 != cache_key(city, ws, days=7, seed=2, detector_params={})[0]
    assert k1 != cache_key(city, ws, days=7, seed=1, detector_params={"threshold": 60.0})[0]
    first = fit_demo_leak_model(city)  # the default cache (./.rescity/cache), fitted once per key
    assert fit_demo_leak_model(city).cached and fit_demo_leak_model(city).key == first.key


def _worker_run(store, day, a_ms, b_ms, pipe=None, models=("leak_model",)):
    """Feed the readings with a_ms <= ts < b_ms to a worker pipeline over ``store``
    (built now unless given: a restarted worker); (pipeline, transitions of ``models``)."""
    from rescity.service.monitoring import worker_pipeline

    pipe = pipe or worker_pipeline(store)
    sel = (day.ts_ms >= a_ms) & (day.ts_ms < b_ms)
    trs = []
    replay_arrays(pipe, [s for s, k in zip(day.sensors, sel, strict=True) if k], day.ts_ms[sel],
                  day.values[sel], step_ms=5 * MINUTE_MS,
                  on_slice=lambda now, res: trs.extend(t for t in res.transitions if t.model in models))
    return pipe, trs


def test_a_restarted_worker_resumes_the_leak_watch_from_the_store(city, tmp_path):
    """The ingestion worker's pipeline has the leak source; a worker that stops mid-day
    (all it knows is in the store, as after SIGKILL) and is rebuilt from the store
    continues the same leak alarm: no second alarm, and the same leak transitions as a
    worker that never stopped."""
    day = water_history(city, days=1, start_ms=DAY_START_MS, seed=11,
                        leaks=[(LEAK_NODE, LEAK_M3S, DAY_START_MS + 2 * HOUR_MS)])
    end = DAY_START_MS + 24 * HOUR_MS
    cut = DAY_START_MS + 12 * HOUR_MS + 17 * MINUTE_MS
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref_store = make_test_store("sqlite", tmp_path / "a")
    store = make_test_store("sqlite", tmp_path / "b")
    try:
        for s in (ref_store, store):
            s.save_city(city)
        ref_pipe, ref = _worker_run(ref_store, day, 0, end)
        src, = ref_pipe.engine.sources
        assert src.stats["primed_rows"] == 288  # an empty store: primed with the history's last day
        fired = [t for t in ref if t.kind == TransitionKind.FIRING]
        assert len(fired) == 1 and fired[0].ts_ms < cut

        first, before = _worker_run(store, day, 0, cut)
        first_src, = first.engine.sources
        del first  # the worker dies: only the store remains
        again, _ = _worker_run(store, day, 0, 0)  # rebuilt from the store, nothing fed yet
        src2, = again.engine.sources
        # the open leak alarm (escalated since it fired) is the restored watch's known leak
        assert src2.watch.open_leaks == first_src.watch.open_leaks
        assert list(src2.watch.open_leaks) == [fired[0].sensor]
        # re-primed: the history rows before the day's stored readings, then those readings
        assert 0 < src2.stats["primed_rows"] < 288
        # the rows both closed (the restarted one by the stored readings' clock, at most a
        # few rows behind) hold the same residuals
        w1, w2 = first_src.watch, src2.watch
        assert w1._next - 3 <= w2._next <= w1._next
        steps = np.arange(w1._next - w1._win, w2._next)
        slots = steps % w1._win
        assert len(steps) >= 280 and w1._ring_ok[slots].all() and w2._ring_ok[slots].all()
        assert np.allclose(w1._ring[slots], w2._ring[slots], rtol=0, atol=1e-9)
        # the broker redelivers the unacknowledged last slice, then the day goes on
        _, after = _worker_run(store, day, cut - 5 * MINUTE_MS, end, pipe=again)
        key = [(t.ts_ms, t.asset, str(t.kind), t.level_after) for t in before + after]
        assert key == [(t.ts_ms, t.asset, str(t.kind), t.level_after) for t in ref]
        opened = [e for e in MonitoringStore(store.engine).alarm_events()
                  if e["model"] == "leak_model" and e["kind"] == "opened"]
        assert len(opened) == 1
    finally:
        ref_store.close()
        store.close()


def test_a_worker_restarted_during_a_main_break_does_not_report_it_again(city, tmp_path):
    """Stopped 7 minutes after the burst view fired (the step still in its window) and
    rebuilt from the store, the worker knows the open break and continues it: the same
    main_break transitions as a worker that never stopped, one stored alarm."""
    on = DAY_START_MS + 10 * HOUR_MS + 30 * MINUTE_MS
    day = water_history(city, days=1, start_ms=DAY_START_MS, seed=5, leaks=[("n105", 0.060, on)])
    end, cut = on + 3 * HOUR_MS, on + 17 * MINUTE_MS
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref_store = make_test_store("sqlite", tmp_path / "a")
    store = make_test_store("sqlite", tmp_path / "b")
    try:
        for s in (ref_store, store):
            s.save_city(city)

        def breaks(trs):
            return [(t.ts_ms, t.asset, str(t.kind), t.level_after) for t in trs if t.model == "main_break"]

        _, ref = _worker_run(ref_store, day, 0, end, models=("main_break",))
        assert breaks(ref) and ref[0].ts_ms < cut
        first, before = _worker_run(store, day, 0, cut, models=("main_break",))
        assert breaks(before) == breaks(ref)[:len(breaks(before))] and before
        del first
        again, _ = _worker_run(store, day, 0, 0)
        src2, = again.engine.sources
        assert src2.watch.open_bursts == {ref[0].asset.split(":", 1)[1]: before[-1].level_after}
        _, after = _worker_run(store, day, cut - 5 * MINUTE_MS, end, pipe=again, models=("main_break",))
        assert breaks(before + after) == breaks(ref)
        opened = [e for e in MonitoringStore(store.engine).alarm_events()
                  if e["model"] == "main_break" and e["kind"] == "opened"]
        assert len(opened) == 1
    finally:
        ref_store.close()
        store.close()
