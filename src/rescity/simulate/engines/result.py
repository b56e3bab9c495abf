"""The shape every engine's result shares: a service table over time.

``service`` is a DataFrame indexed by the report times (seconds from the scenario start,
index name ``t_s``) with one column per served element, named by its asset uid, holding
the element's service level in [0, 1] (1: fully served). ``weights`` says how much each
element counts in the overall level (expected water demand, load in MW, one per node);
it is a Series (constant weights) or a DataFrame shaped like ``service`` (weights that
vary in time). The overall level at time t is the weighted mean

    Q(t) = sum_i w_i(t) s_i(t) / sum_i w_i(t)

(1 where no element has weight), e.g. served water volume over expected volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class ServiceResult:
    """Base of the engine results (see the module docstring)."""

    times_s: np.ndarray
    service: pd.DataFrame
    weights: pd.Series | pd.DataFrame

    def service_level(self, uid: str | None = None) -> pd.Series:
        """Service level over time (0..1) of one element (``uid``) or, without one,
        overall (the weighted mean of the module docstring)."""
        if uid is not None:
            if uid not in self.service.columns:
                raise KeyError(f"no served element {uid!r} in this result")
            return self.service[uid].rename(uid)
        s = self.service.to_numpy(dtype=float)
        if isinstance(self.weights, pd.DataFrame):
            w = self.weights.reindex(index=self.service.index, columns=self.service.columns)
            wa = w.to_numpy(dtype=float)
        else:
            wa = np.broadcast_to(
                self.weights.reindex(self.service.columns).to_numpy(dtype=float), s.shape
            )
        wa = np.nan_to_num(wa)
        total = wa.sum(axis=1)
        num = (wa * np.nan_to_num(s, nan=1.0)).sum(axis=1)
        q = np.where(total > 0, num / np.where(total > 0, total, 1.0), 1.0)
        return pd.Series(np.clip(q, 0.0, 1.0), index=self.service.index, name="service_level")

    def element_levels(self) -> pd.Series:
        """Each element's service level averaged over the horizon (time-weighted by the
        trapezoid rule over ``times_s``; 0..1)."""
        if len(self.times_s) < 2:
            return self.service.iloc[0]
        span = float(self.times_s[-1] - self.times_s[0])
        area = np.trapezoid(self.service.to_numpy(dtype=float), self.times_s, axis=0)
        return pd.Series(area / span, index=self.service.columns)
