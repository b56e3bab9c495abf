"""LeakWatch: the leak detector fed live batches, on a short L-Town reconstruction."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import wntr

from rescity.monitor import battledim as bd
from rescity.monitor.alarms import AlarmBook, AlarmState
from rescity.monitor.batch import ReadingBatch
from rescity.monitor.engine import TransitionKind
from rescity.monitor.leakwatch import LeakWatch, leak_level
from rescity.monitor.models.leak import LeakDetector, pipe_graph

LEAK_PIPE = "p331"
LEAK_AT = pd.Timestamp("2019-04-05 12:00")
REPAIR_AT = pd.Timestamp("2019-04-06 12:00")


@pytest.fixture(scope="module")
def setup():
    """7 leak-free training days; then 4 days with a 15 m3/h leak from day 2 noon to day 3 noon."""
    cfg = bd.RealityConfig(seed=7)
    placement = bd.read_sensor_placement()
    wn = wntr.network.WaterNetworkModel(str(bd.ltown_inp()))
    idx_train = pd.date_range("2019-03-26", periods=7 * 288, freq="5min")
    train = bd.simulate_sensors(bd.build_reality(cfg, []), idx_train, placement, seed=1)
    train = bd.add_sensor_noise(train, placement, cfg, seed=1)
    idx = pd.date_range("2019-04-04", periods=4 * 288, freq="5min")
    on = (idx >= LEAK_AT) & (idx < REPAIR_AT)
    q = pd.DataFrame({LEAK_PIPE: np.where(on, 15.0, 0.0)}, index=idx)
    test = bd.simulate_sensors(bd.build_reality(cfg, [LEAK_PIPE]), idx, placement, q, seed=2)
    test = bd.add_sensor_noise(test, placement, cfg, seed=2)
    g = pipe_graph(wn)
    link = wn.get_link(LEAK_PIPE)
    near = nx.multi_source_dijkstra_path_length(
        g, {link.start_node_name, link.end_node_name}, cutoff=1000.0, weight="length")
    cands = tuple(n for n in near if n in wn.junction_name_list)
    det = LeakDetector(wn, placement, candidates=cands).fit(train)
    names = list(test.columns)
    return det, test, names


def batches(test: pd.DataFrame, names: list[str], every: int = 12, seed: int = 0):
    """The readings as ReadingBatches of ``every`` steps, SI units (flow m3/s), shuffled."""
    rng = np.random.default_rng(seed)
    flows = set(bd.read_sensor_placement().flow)
    ts = (test.index.asi8 // 1_000_000).astype(np.int64)
    vals = test.to_numpy(dtype=float).copy()
    for j, c in enumerate(names):
        if c in flows:
            vals[:, j] /= 3600.0
    for a in range(0, len(test), every):
        t = np.repeat(ts[a:a + every], len(names))
        s = np.tile(np.arange(len(names)), len(ts[a:a + every]))
        v = vals[a:a + every].ravel()
        order = rng.permutation(len(t))
        yield ReadingBatch.of(s[order], t[order], v[order]), int(ts[min(a + every, len(ts) - 1)])


def feed(watch: LeakWatch, test: pd.DataFrame, names: list[str], until: pd.Timestamp | None = None):
    out = []
    end_ms = None if until is None else until.value // 1_000_000
    for batch, now in batches(test, names):
        if end_ms is not None and now > end_ms:
            break
        out += watch.ingest(batch, now + 600_000)  # 10 min after the batch's newest step
    last = int(test.index[-1].value // 1_000_000)
    if until is None:
        out += watch.advance(last + 20 * 60_000)
    return out


def test_live_batches_give_the_batch_detector_s_detections(setup):
    det, test, names = setup
    watch = LeakWatch(det, {c: j for j, c in enumerate(names)})
    trs = feed(watch, test, names)
    assert [(d.time, d.pipe) for d in watch.detections] == [
        (d.time, d.pipe) for d in det.run(test)]
    assert watch.detections, "no detection"
    first = watch.detections[0]
    assert LEAK_AT < first.time < LEAK_AT + pd.Timedelta(hours=12)
    fired = [t for t in trs if t.kind == TransitionKind.FIRING]
    assert fired[0].ts_ms == first.time.value // 1_000_000
    assert fired[0].asset == first.pipe and fired[0].level_after == leak_level(first.q_m3h)
    assert fired[0].details["area"][0] == first.pipe


def test_warning_levels_follow_the_leak_and_the_repair_resolves_it(setup):
    det, test, names = setup
    watch = LeakWatch(det, {c: j for j, c in enumerate(names)})
    trs = feed(watch, test, names)
    book = AlarmBook()
    book.ingest(trs)
    first = watch.detections[0]
    # a 15 m3/h leak is graded orange (2) once its size is fitted over a full window
    levels = [t.level_after for t in trs if t.asset == first.pipe and t.kind != TransitionKind.RESOLVED]
    assert 2 in levels and min(levels) >= 2
    resolved = [t for t in trs if t.kind == TransitionKind.RESOLVED and t.asset == first.pipe]
    assert resolved, "the repaired leak was not resolved"
    assert REPAIR_AT < pd.Timestamp(resolved[0].ts_ms, unit="ms") < REPAIR_AT + pd.Timedelta(days=1.5)
    alarms = [a for a in book.alarms.values() if a.asset == first.pipe]
    assert len(alarms) == 1 and alarms[0].state == AlarmState.RESOLVED


def test_quiet_before_the_leak(setup):
    det, test, names = setup
    watch = LeakWatch(det, {c: j for j, c in enumerate(names)})
    assert feed(watch, test.loc[: LEAK_AT - pd.Timedelta(minutes=5)], names) == []
    assert watch.stats["checks"] > 0 and watch.open_leaks == {}


def test_late_readings_are_counted_and_missing_rows_do_not_count(setup):
    det, test, names = setup
    watch = LeakWatch(det, {c: j for j, c in enumerate(names)}, grace_s=0)
    day = test.iloc[:288]
    ts = day.index.asi8 // 1_000_000
    first = ReadingBatch.of(np.zeros(1), ts[:1], [float(day.iloc[0, 0])])
    watch.ingest(first, int(ts[-1]) + 300_000)  # closes the whole day: one sensor only
    assert watch.stats["rows"] == 288 and watch.stats["incomplete"] == 288
    late = ReadingBatch.of(np.zeros(3), ts[5:8], day.iloc[5:8, 0].to_numpy())
    watch.ingest(late, int(ts[-1]) + 300_000)
    assert watch.stats["late"] == 3 and watch.stats["checks"] == 0


def test_every_needed_sensor_must_be_mapped(setup):
    det, _, names = setup
    with pytest.raises(ValueError, match="no sensor index"):
        LeakWatch(det, {c: j for j, c in enumerate(names[1:])})


def test_levels_are_graded_on_the_leak_size():
    assert [leak_level(q) for q in (1.0, 5.0, 9.9, 10.0, 19.9, 20.0, 60.0)] == [4, 3, 3, 2, 2, 1, 1]


def test_a_leak_running_at_the_start_fires_once_blue_and_is_not_resolved(setup):
    import dataclasses

    det, test, names = setup
    carried = next(p for p in det.signatures.pipes if p != LEAK_PIPE)
    live = dataclasses.replace(det, running=(carried,))
    watch = LeakWatch(live, {c: j for j, c in enumerate(names)})
    trs = feed(watch, test, names)
    assert [(d.time, d.pipe) for d in watch.detections] == [
        (d.time, d.pipe) for d in live.run(test)]
    mine = [t for t in trs if t.asset == carried]
    assert mine[0].kind == TransitionKind.FIRING and mine[0].level_after == 4
    assert mine[0].details["carried"] is True
    assert all(t.kind != TransitionKind.RESOLVED for t in mine)
    assert watch.open_leaks[carried] == 4


def test_a_repaired_leak_is_forgotten_after_forget_checks(setup):
    """``forget_checks``: a found leak fitted below q_min that long is no longer known."""
    import dataclasses

    det, test, names = setup
    keep, forget = [], []
    det.run(test, trace=keep)
    found = dataclasses.replace(det, forget_checks=6).run(test, trace=forget)
    assert found and found[0].time < REPAIR_AT
    assert keep[-1][3] >= 1  # by default the repaired leak stays known (size ~0)
    assert forget[-1][3] == 0
    # live, the same rule: the same detections
    live = dataclasses.replace(det, forget_checks=6)
    watch = LeakWatch(live, {c: j for j, c in enumerate(names)})
    feed(watch, test, names)
    assert [(d.time, d.pipe) for d in watch.detections] == [(d.time, d.pipe) for d in found]


def test_mean_binning_averages_the_readings_of_a_step(setup):
    """``binning="mean"``: several readings in a 5-min step give their mean as the row, so
    three readings per step (v - d, v, v + d, in that order) give the detections of the
    rows of v; with the default ``"last"`` the row is the last reading, v + d."""
    det, test, names = setup
    flows = set(bd.read_sensor_placement().flow)
    ts = (test.index.asi8 // 1_000_000).astype(np.int64)
    vals = test.to_numpy(dtype=float).copy()
    for j, c in enumerate(names):
        if c in flows:
            vals[:, j] /= 3600.0
    d = np.abs(vals) * 0.01 + 0.05  # far above the detector's noise: must average out
    mean_watch = LeakWatch(det, {c: j for j, c in enumerate(names)}, binning="mean")
    last_watch = LeakWatch(det, {c: j for j, c in enumerate(names)})
    s = np.arange(len(names))
    for a in range(0, len(ts), 12):
        parts = [(np.tile(s, len(ts[a:a + 12])), np.repeat(ts[a:a + 12] + off, len(names)), v.ravel())
                 for off, v in ((0, vals[a:a + 12] - d[a:a + 12]), (60_000, vals[a:a + 12]),
                                (120_000, vals[a:a + 12] + d[a:a + 12]))]
        batch = ReadingBatch.of(*(np.concatenate(x) for x in zip(*parts, strict=True)))
        now = int(ts[min(a + 12, len(ts) - 1)]) + 600_000
        mean_watch.ingest(batch, now)
        last_watch.ingest(batch, now)
    end = int(ts[-1]) + 20 * 60_000
    mean_watch.advance(end)
    last_watch.advance(end)
    expected = [(x.time, x.pipe) for x in det.run(test)]
    assert expected and [(x.time, x.pipe) for x in mean_watch.detections] == expected
    shift = np.abs(mean_watch._ring - last_watch._ring).mean()
    assert shift > 0.01, shift  # "last" took v + d
    with pytest.raises(ValueError, match="binning"):
        LeakWatch(det, {c: j for j, c in enumerate(names)}, binning="median")
