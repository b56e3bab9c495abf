"""The BattLeDIM scoring rule (KIOS-Research/BattLeDIM Scoring_Algorithm.m)."""

from __future__ import annotations

import pandas as pd
import pytest
import wntr

from rescity.monitor import battledim as bd


@pytest.fixture(scope="module")
def world():
    wn = wntr.network.WaterNetworkModel(str(bd.ltown_inp()))
    return bd.read_leaks(), bd.read_leak_outflow(), bd.PipeDistance(wn), wn


def _score(world, detections):
    leaks, outflow, distance, _ = world
    return bd.score_detections(detections, leaks, outflow, distance)


def test_perfect_team_scores_the_published_523153_82_eur(world):
    rep = _score(world, bd.perfect_detections(world[0]))
    assert rep.total_eur == pytest.approx(bd.PERFECT_SCORE_EUR, abs=0.005)
    assert (rep.true_detections, rep.false_detections, rep.missed) == (23, 0, 0)


def test_each_false_detection_costs_500_eur(world):
    far = [(pd.Timestamp("2019-03-01 12:00"), "p1"), (pd.Timestamp("2019-06-01"), "p1")]
    perfect = bd.perfect_detections(world[0])
    rep = _score(world, pd.concat([perfect, pd.DataFrame(far, columns=["time", "pipe"])]))
    assert rep.false_detections == 2
    assert rep.total_eur == pytest.approx(bd.PERFECT_SCORE_EUR - 1000, abs=0.01)


def test_detection_before_the_leak_starts_is_false(world):
    rep = _score(world, [(pd.Timestamp("2019-04-20 10:05"), "p331")])  # starts 10:10
    assert rep.false_detections == 1 and rep.total_eur == -500


def test_distance_penalty_is_500_eur_per_300_m(world):
    leaks, outflow, distance, wn = world
    start = pd.Timestamp("2019-04-20 10:10")
    exact = _score(world, [(start, "p331")]).total_eur
    node = wn.get_link("p331").end_node_name
    other = next(p for p in wn.get_links_for_node(node) if p != "p331" and p in wn.pipe_name_list)
    d = distance("p331", other)
    assert d == pytest.approx((wn.get_link("p331").length + wn.get_link(other).length) / 2)
    near = _score(world, [(start, other)])
    assert near.total_eur == pytest.approx(exact - 500 * d / 300, abs=0.01)
    assert near.mean_distance_m == pytest.approx(d)


def test_repeated_detection_scores_zero_and_2018_detections_are_ignored(world):
    t = pd.Timestamp("2019-04-21")
    once = _score(world, [(t, "p331")]).total_eur
    rep = _score(world, [(t, "p331"), (t + pd.Timedelta(days=1), "p331"),
                         (pd.Timestamp("2018-12-31"), "p331")])
    assert rep.total_eur == pytest.approx(once)
    assert list(rep.rows["kind"]) == ["ignored", "true", "repeat"]


def test_detection_more_than_300_m_away_is_false(world):
    _, _, distance, wn = world
    far = next(p for p in sorted(wn.pipe_name_list) if 300 < distance("p331", p) < 1e9)
    rep = _score(world, [(pd.Timestamp("2019-04-21"), far)])
    assert rep.false_detections == 1
