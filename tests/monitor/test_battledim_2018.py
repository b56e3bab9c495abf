"""The 2018 training year of the BattLeDIM reconstruction: schedule, orifice leaks,
calibration with known leaks, scoring another period."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import wntr

from rescity.monitor import battledim as bd
from rescity.monitor.models.leak import ResidualModel


def test_the_2018_schedule_has_the_competition_s_14_leaks():
    leaks = bd.read_leaks(year=2018)
    assert len(leaks) == 14
    first = leaks.iloc[0]
    assert (first["pipe"], first["type"]) == ("p257", "incipient")
    assert first["diameter_m"] == pytest.approx(0.011843)
    assert first["start"] == pd.Timestamp("2018-01-08 13:30")
    # the four leaks that run on into 2019 are in both schedules
    still = set(leaks.loc[leaks["end"] == pd.Timestamp("2018-12-31 23:55"), "pipe"])
    old_2019 = set(bd.read_leaks().query("start < '2019-01-01'")["pipe"])
    assert still == old_2019 == {"p257", "p427", "p654", "p810"}


def test_leak_diameters_grow_linearly_for_incipient_leaks_and_stop_at_the_end():
    leaks = pd.DataFrame({"pipe": ["a", "b"], "diameter_m": [0.02, 0.01],
                          "type": ["incipient", "abrupt"],
                          "start": pd.to_datetime(["2018-01-01 01:00", "2018-01-01 02:00"]),
                          "end": pd.to_datetime(["2018-01-01 05:00", "2018-01-01 03:00"]),
                          "peak": pd.to_datetime(["2018-01-01 03:00", "2018-01-01 02:00"])})
    idx = pd.date_range("2018-01-01", periods=72, freq="5min")
    d = bd.leak_diameters(leaks, idx)
    assert d.loc["2018-01-01 00:55", "a"] == 0.0
    assert d.loc["2018-01-01 02:00", "a"] == pytest.approx(0.01)  # half the rise
    assert d.loc["2018-01-01 04:00", "a"] == pytest.approx(0.02)
    assert d.loc["2018-01-01 05:05", "a"] == 0.0
    assert d.loc["2018-01-01 02:30", "b"] == 0.01 and d.loc["2018-01-01 03:05", "b"] == 0.0
    s = bd.leak_shapes(leaks, idx)
    assert s.loc["2018-01-01 02:00", "a"] == pytest.approx(0.25)  # area share


def test_orifice_leak_outflow_follows_the_pressure_and_matches_the_2019_data():
    """p257 at its 2018 plateau delivers what the published 2019 outflow says (6.8 m3/h)."""
    cfg = bd.RealityConfig()
    placement = bd.read_sensor_placement()
    leaks = bd.read_leaks(year=2018)
    idx = pd.date_range("2018-02-01", periods=288, freq="5min")
    diam = bd.leak_diameters(leaks[leaks["pipe"] == "p257"], idx)
    flows: dict[str, np.ndarray] = {}
    with_leak = bd.simulate_sensors(bd.build_reality(cfg, ["p257"]), idx, placement, seed=3,
                                    leak_diameter=diam, leak_flow_out=flows)
    without = bd.simulate_sensors(bd.build_reality(cfg, []), idx, placement, seed=3)
    q = flows["p257"]
    published = bd.read_leak_outflow()["p257"].iloc[:288].mean()
    assert q.mean() == pytest.approx(published, rel=0.03)
    assert q.std() > 0  # pressure-driven: varies over the day
    extra = (with_leak[list(placement.inflow)].sum(axis=1)
             - without[list(placement.inflow)].sum(axis=1)).mean()
    assert extra == pytest.approx(q.mean(), rel=0.2)


def test_known_leak_regressors_keep_the_baseline_leak_free():
    """Training on days that contain a known leak still gives ~0 residuals without it."""
    cfg = bd.RealityConfig(seed=5)
    placement = bd.read_sensor_placement()
    idx = pd.date_range("2019-03-05", periods=4 * 288, freq="5min")
    leaks = pd.DataFrame({"pipe": ["p331"], "diameter_m": [0.02], "type": ["abrupt"],
                          "start": [idx[2 * 288]], "end": [idx[-1]], "peak": [idx[2 * 288]]})
    diam = bd.leak_diameters(leaks, idx)
    train = bd.add_sensor_noise(bd.simulate_sensors(
        bd.build_reality(cfg, ["p331"]), idx, placement, seed=1, leak_diameter=diam),
        placement, cfg, seed=1)
    idx_t = pd.date_range("2019-03-12", periods=288, freq="5min")
    test = bd.add_sensor_noise(bd.simulate_sensors(bd.build_reality(cfg, []), idx_t, placement,
                                                   seed=2), placement, cfg, seed=2)
    shapes = bd.leak_shapes(leaks, idx).to_numpy()
    aware = ResidualModel.fit(train, placement, known=shapes)
    naive = ResidualModel.fit(train, placement)
    assert aware.known_coef is not None and aware.known_coef.shape == (1, len(placement.pressure))
    err_aware = np.abs(aware.residuals(test).mean(axis=0)).max()
    err_naive = np.abs(naive.residuals(test).mean(axis=0)).max()
    assert err_aware < 0.5 * err_naive


def test_scoring_another_period_counts_from_its_start():
    leaks = bd.read_leaks(year=2018)
    y0 = pd.Timestamp("2018-07-01")
    idx = pd.date_range(y0, "2018-12-31 23:55", freq="5min")
    outflow = pd.DataFrame({p: np.ones(len(idx)) for p in leaks["pipe"]}, index=idx)
    wn = wntr.network.WaterNetworkModel(str(bd.ltown_inp()))
    dist = bd.PipeDistance(wn)
    perfect = bd.perfect_detections(leaks, y0)
    assert set(perfect["pipe"]) == set(leaks.loc[leaks["end"] >= y0, "pipe"])
    rep = bd.score_detections(perfect, leaks, outflow, dist, year_start=y0)
    assert rep.false_detections == 0 and rep.true_detections == len(perfect)
    # p257 runs from before the period: 1 m3/h from the first step to the end, x 0.8 EUR
    p257 = rep.rows.set_index("leak").loc["p257", "score_eur"]
    assert p257 == pytest.approx(0.8 * len(idx) / 12, rel=1e-9)
    before = bd.score_detections([(pd.Timestamp("2018-06-30"), "p257")], leaks, outflow, dist,
                                 year_start=y0)
    assert before.rows["kind"].tolist() == ["ignored"]
