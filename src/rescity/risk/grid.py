"""The risk of every grid cell, as arrays, re-graded incrementally as live events arrive.

Per cell c (formula and weights in ``risk/config/risk.yaml``)::

    r_i   = L_i C_i / 25                                    risk points i in the cell
    S_c   = 1 - prod_i (1 - r_i)                            static hazard (0..1)
    F_c   = 1 - prod_{i flood-prone} (1 - r_i)              flood-prone part of S_c
    E_c   = w_pop min(1, pop_c / pop_ref) + w_fac min(1, fac_c / fac_ref)      exposure
    V_c   = mean vulnerability of the cell's assets (0 without assets)
    B_c   = S_c (1 + alpha E_c)(1 + beta V_c) / ((1 + alpha)(1 + beta))       static score
    D_c   = sum of live contributions (alarms, open incidents) + rain_w rain F_c
    score = 100 min(1, B_c + gamma min(1, D_c))

Grading: absolute thresholds on the score (red >= t_red, ...), or quantiles (the top
q_red share of cells red, ...). The product over points is computed as a sum of
``log(1 - r)`` with ``np.add.at``; a point with r = 1 makes its cell's S exactly 1.

:meth:`RiskGrid.add_live` adds contributions to some cells and re-grades only those
(absolute grading) — the path a batch of alarms takes; :meth:`RiskGrid.recompute`
is the same result from scratch. Both return the indices of the cells whose level
changed.
"""

from __future__ import annotations

import numpy as np

from .policy import RiskPolicy

_EPS = 1e-12


def union_by_cell(n_cells: int, cells: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``1 - prod (1 - r)`` of the values ``r`` falling in each cell (0 for none)."""
    out = np.zeros(n_cells)
    if len(cells):
        r = np.clip(np.asarray(r, dtype=float), 0.0, 1.0)
        sure = r >= 1.0 - _EPS
        np.add.at(out, cells[~sure], np.log1p(-r[~sure]))
        out = 1.0 - np.exp(out)
        out[np.unique(cells[sure])] = 1.0
    return out


class RiskGrid:
    """Cells' static parts, live parts, scores and levels (1 red .. 4 blue)."""

    def __init__(self, policy: RiskPolicy, population: np.ndarray, facilities: np.ndarray,
                 vulnerability: np.ndarray) -> None:
        self.policy = policy
        n = len(population)
        self.n = n
        w = policy.score
        self.exposure = (w.w_population * np.minimum(1.0, np.asarray(population, float) / w.population_ref)
                         + w.w_facilities * np.minimum(1.0, np.asarray(facilities, float) / w.facilities_ref))
        self.vulnerability = np.clip(np.asarray(vulnerability, float), 0.0, 1.0)
        self.static = np.zeros(n)  # S
        self.flood = np.zeros(n)  # F
        self.base = np.zeros(n)  # B
        self.live = np.zeros(n)  # sum of live contributions (alarms, incidents)
        self.rain = 0.0  # rain factor 0..1
        self.score = np.zeros(n)
        self.level = np.full(n, 4, dtype=np.int8)
        self._k = (1 + w.alpha) * (1 + w.beta)

    # -- static part ---------------------------------------------------------------------------
    def set_points(self, cells: np.ndarray, ratings: np.ndarray, flood: np.ndarray) -> np.ndarray:
        """The register's points (cell index, r = L C / 25, flood-prone?) -> S, F, B;
        points outside every cell (index < 0) are ignored. Re-grades everything."""
        cells = np.asarray(cells, dtype=np.int64)
        ratings = np.asarray(ratings, dtype=float)
        flood = np.asarray(flood, dtype=bool)
        inside = cells >= 0
        self.static = union_by_cell(self.n, cells[inside], ratings[inside])
        self.flood = union_by_cell(self.n, cells[inside & flood], ratings[inside & flood])
        w = self.policy.score
        self.base = self.static * (1 + w.alpha * self.exposure) * (1 + w.beta * self.vulnerability) / self._k
        return self.recompute()

    # -- scores and levels ---------------------------------------------------------------------
    def _scores(self, idx: np.ndarray | slice) -> np.ndarray:
        w = self.policy.score
        d = self.live[idx] + w.rain_weight * self.rain * self.flood[idx]
        return 100.0 * np.minimum(1.0, self.base[idx] + w.gamma * np.minimum(1.0, np.maximum(d, 0.0)))

    def _grade(self, scores: np.ndarray) -> np.ndarray:
        g = self.policy.grading
        if g.mode == "absolute":
            t = g.absolute
            lv = np.full(len(scores), 4, dtype=np.int8)
            lv[scores >= t["yellow"]] = 3
            lv[scores >= t["orange"]] = 2
            lv[scores >= t["red"]] = 1
            return lv
        return self._grade_quantiles(scores)

    def _grade_quantiles(self, scores: np.ndarray) -> np.ndarray:
        q = self.policy.grading.quantiles
        n = len(scores)
        order = np.argsort(-scores, kind="stable")
        lv = np.full(n, 4, dtype=np.int8)
        k_red = int(round(q["red"] * n))
        k_or = k_red + int(round(q["orange"] * n))
        k_ye = k_or + int(round(q["yellow"] * n))
        lv[order[:k_ye]] = 3
        lv[order[:k_or]] = 2
        lv[order[:k_red]] = 1
        lv[scores <= 0] = 4  # a cell with no risk at all is never coloured up by rank
        return lv

    def recompute(self) -> np.ndarray:
        """Every cell's score and level from the parts; the cells whose level changed."""
        old = self.level
        self.score = self._scores(slice(None))
        self.level = self._grade(self.score)
        return np.flatnonzero(old != self.level)

    # -- live part ----------------------------------------------------------------------------
    def add_live(self, cells: np.ndarray, deltas: np.ndarray) -> np.ndarray:
        """Add live contributions (a firing alarm +w, its resolution -w) to cells and
        re-grade: with absolute thresholds only the touched cells are recomputed."""
        cells = np.asarray(cells, dtype=np.int64)
        ok = cells >= 0
        cells, deltas = cells[ok], np.asarray(deltas, dtype=float)[ok]
        if not len(cells):
            return np.empty(0, dtype=np.int64)
        np.add.at(self.live, cells, deltas)
        idx = np.unique(cells)
        # a contribution added and removed again leaves exactly nothing (no rounding remainder)
        v = self.live[idx]
        self.live[idx] = np.where(v < 1e-9, 0.0, v)
        if self.policy.grading.mode != "absolute":
            return self.recompute()
        self.score[idx] = self._scores(idx)
        new = self._grade(self.score[idx])
        changed = idx[new != self.level[idx]]
        self.level[idx] = new
        return changed

    def set_rain(self, intensity_mm_h: float) -> np.ndarray:
        """The city's rain (observed or forecast, mm/h) -> rain factor; re-grades the
        flood-prone cells (all cells with quantile grading)."""
        self.rain = float(min(1.0, max(0.0, intensity_mm_h / self.policy.score.rain_ref_mm_h)))
        if self.policy.grading.mode != "absolute":
            return self.recompute()
        idx = np.flatnonzero(self.flood > 0)
        self.score[idx] = self._scores(idx)
        new = self._grade(self.score[idx])
        changed = idx[new != self.level[idx]]
        self.level[idx] = new
        return changed
