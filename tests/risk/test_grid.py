"""The risk matrix and the cell aggregation against hand-computed examples; incremental
re-grading equals recomputing from scratch (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rescity.risk.grid import RiskGrid, union_by_cell
from rescity.risk.policy import RiskPolicy, load_risk_policy

P = load_risk_policy()


def test_matrix_corners_and_monotonicity():
    assert P.grade(5, 5) == 1 and P.grade(1, 1) == 4
    assert P.grade(3, 3) == 3 and P.grade(4, 4) == 1 and P.grade(2, 5) == 2
    for L in range(1, 6):
        for C in range(1, 6):
            if L < 5:
                assert P.grade(L + 1, C) <= P.grade(L, C)
            if C < 5:
                assert P.grade(L, C + 1) <= P.grade(L, C)
    with pytest.raises(ValueError, match="likelihood must be an integer 1..5"):
        P.grade(0, 3)
    with pytest.raises(ValueError, match="consequence"):
        P.grade(3, 6)


def test_a_non_monotone_matrix_is_refused():
    doc = P.model_dump()
    doc["matrix"] = [list(r) for r in P.matrix]
    doc["matrix"][4][4] = 4  # L5 C5 blue: lower than its neighbours
    with pytest.raises(ValueError, match="cannot lower the level"):
        RiskPolicy.model_validate(doc)


def test_union_by_cell_by_hand():
    got = union_by_cell(3, np.array([0, 0, 2, 2]), np.array([0.5, 0.5, 1.0, 0.2]))
    assert got[0] == pytest.approx(0.75)  # 1 - 0.5 * 0.5
    assert got[1] == 0.0
    assert got[2] == 1.0  # a certain point makes the cell certain


def _grid(pop, fac, vul, policy=P):
    return RiskGrid(policy, np.array(pop, float), np.array(fac, float), np.array(vul, float))


def test_cell_score_by_hand():
    # cell 0: residents 250 (E = 0.6 * 0.5 = 0.3), 1 critical facility (+ 0.4 * 0.5 = 0.2)
    #         -> E = 0.5; V = 0.4; points L4 C5 (r = 0.8) and L2 C2 (r = 0.16)
    g = _grid([250, 0], [1, 0], [0.4, 0.0])
    g.set_points(np.array([0, 0]), np.array([0.8, 0.16]), np.array([False, True]))
    S = 1 - (1 - 0.8) * (1 - 0.16)  # 0.832
    B = S * (1 + 0.5 * 0.5) * (1 + 0.5 * 0.4) / (1.5 * 1.5)
    assert g.static[0] == pytest.approx(S) and g.flood[0] == pytest.approx(0.16)
    assert g.score[0] == pytest.approx(100 * B)  # 55.47: red (>= 50)
    assert g.level.tolist() == [1, 4]
    # a red alarm in cell 1 (weight 1.0): score 100 * 0.6 * 1 = 60 -> red; resolved -> blue
    changed = g.add_live(np.array([1]), np.array([P.score.level_weight("alarm", 1)]))
    assert changed.tolist() == [1] and g.score[1] == pytest.approx(60.0) and g.level[1] == 1
    changed = g.add_live(np.array([1]), np.array([-1.0]))
    assert changed.tolist() == [1] and g.level[1] == 4 and g.score[1] == 0.0
    # rain at 25 mm/h: rain factor 0.5, D = 0.8 * 0.5 * 0.16 = 0.064 on the flood-prone cell
    g.set_rain(25.0)
    assert g.score[0] == pytest.approx(100 * min(1.0, B + 0.6 * 0.064))


def test_quantile_grading():
    doc = P.model_dump()
    doc["grading"]["mode"] = "quantiles"
    q = RiskPolicy.model_validate(doc)
    g = _grid([0] * 20, [0] * 20, [0] * 20, q)
    g.set_points(np.arange(20), np.linspace(0.05, 1.0, 20), np.zeros(20, bool))
    # 5 % red (1 cell), 15 % orange (3), 30 % yellow (6), the rest blue
    assert np.bincount(g.level, minlength=5)[1:].tolist() == [1, 3, 6, 10]
    assert g.level[19] == 1 and g.level[0] == 4


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_incremental_equals_from_scratch(n, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    g = _grid(rng.integers(0, 2000, n), rng.integers(0, 4, n), rng.random(n))
    k = data.draw(st.integers(0, 3 * n))
    g.set_points(rng.integers(-1, n, k), rng.random(k), rng.random(k) < 0.3)
    for _ in range(data.draw(st.integers(1, 5))):
        m = data.draw(st.integers(1, 10))
        cells = rng.integers(-1, n, m)
        deltas = rng.choice([1.0, 0.6, 0.3, 0.1], m) * rng.choice([1, -1], m)
        before = g.level.copy()
        changed = g.add_live(cells, deltas)
        inc_score, inc_level = g.score.copy(), g.level.copy()
        g.recompute()
        assert np.allclose(inc_score, g.score) and (inc_level == g.level).all()
        assert set(changed.tolist()) == set(np.flatnonzero(before != g.level).tolist())
        assert math.isfinite(float(g.score.sum())) and (g.score >= 0).all() and (g.score <= 100).all()
