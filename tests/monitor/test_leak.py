"""Model-based leak detector on a short L-Town simulation with one injected leak."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import wntr

from rescity.monitor import battledim as bd
from rescity.monitor.models.leak import LeakDetector, pipe_graph

LEAK_PIPE = "p331"
LEAK_AT = pd.Timestamp("2019-04-05 12:00")


@pytest.fixture(scope="module")
def setup():
    """7 leak-free training days, then 2 days with a 15 m3/h leak starting at noon."""
    cfg = bd.RealityConfig(seed=7)
    placement = bd.read_sensor_placement()
    wn = wntr.network.WaterNetworkModel(str(bd.ltown_inp()))
    idx_train = pd.date_range("2019-03-26", periods=7 * 288, freq="5min")
    train = bd.simulate_sensors(bd.build_reality(cfg, []), idx_train, placement, seed=1)
    train = bd.add_sensor_noise(train, placement, cfg, seed=1)
    idx = pd.date_range("2019-04-04", periods=2 * 288, freq="5min")
    q = pd.DataFrame({LEAK_PIPE: np.where(idx >= LEAK_AT, 15.0, 0.0)}, index=idx)
    test = bd.simulate_sensors(bd.build_reality(cfg, [LEAK_PIPE]), idx, placement, q, seed=2)
    test = bd.add_sensor_noise(test, placement, cfg, seed=2)
    # candidate leak sites: every junction within 1 km of the leak (keeps the test fast)
    g = pipe_graph(wn)
    link = wn.get_link(LEAK_PIPE)
    near = nx.multi_source_dijkstra_path_length(
        g, {link.start_node_name, link.end_node_name}, cutoff=1000.0, weight="length")
    cands = tuple(n for n in near if n in wn.junction_name_list)
    det = LeakDetector(wn, placement, candidates=cands).fit(train)
    return det, test, bd.PipeDistance(wn)


def test_single_large_leak_is_detected_after_it_starts_and_localised(setup):
    det, test, distance = setup
    found = det.run(test)
    assert found, "no detection"
    first = found[0]
    assert LEAK_AT < first.time < LEAK_AT + pd.Timedelta(hours=12)
    assert distance(first.pipe, LEAK_PIPE) < 300.0
    assert first.q_m3h > 1.0
    assert len(found) <= 2


def test_no_alarm_before_the_leak(setup):
    det, test, _ = setup
    assert det.run(test.loc[: LEAK_AT - pd.Timedelta(minutes=5)]) == []


def test_detections_are_causal(setup):
    """Cutting the data at the first detection gives the same detection."""
    det, test, _ = setup
    first = det.run(test)[0]
    again = det.run(test.loc[: first.time])
    assert again and again[0] == first


def test_leaks_running_at_the_start_are_reported_once_and_then_tracked(setup):
    """``running`` (labelled, unrepaired leaks): reported at the first check, carried."""
    import dataclasses

    det, test, distance = setup
    far = max(det.signatures.pipes, key=lambda p: distance(p, LEAK_PIPE))
    found = dataclasses.replace(det, running=(far,)).run(test)
    first_check = test.index[0] + pd.Timedelta(hours=24) - pd.Timedelta(minutes=5)
    assert found[0].carried and found[0].pipe == far and found[0].time == first_check
    assert [d for d in found if d.carried] == [found[0]]
    new = [d for d in found if not d.carried]
    assert new and distance(new[0].pipe, LEAK_PIPE) < 300.0 and new[0].time > LEAK_AT
    # a pipe without a signature (not a candidate) is not reported
    assert not any(d.carried for d in dataclasses.replace(det, running=("nope",)).run(test))


def test_a_baseline_that_contains_the_leak_explains_it_away(setup):
    """``baseline_m``: the expected residual of leaks already known (m per sensor)."""
    import dataclasses

    det, test, distance = setup
    short = dataclasses.replace(det, window_h=6.0, min_window_h=6.0)
    after = test.loc[LEAK_AT:]  # 12 h, every window all leak
    found = short.run(after)
    assert found and distance(found[0].pipe, LEAK_PIPE) < 300.0, "the leak alone is detected"
    # the leak's measured mean effect as the baseline (as a calibrated known leak gives)
    effect = short.residual_model.residuals(after).mean(axis=0)
    plain, based = [], []
    short.run(after, trace=plain)
    dataclasses.replace(short, baseline_m=effect).run(after, trace=based)
    assert max(t for _, t, _, _ in based) < 0.2 * max(t for _, t, _, _ in plain)
