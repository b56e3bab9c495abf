"""The statistical anomaly model as a warning-model kind (``kind: anomaly``).

Each selected sensor gets its own online :class:`~rescity.monitor.models.anomaly.SeasonalAnomalyDetector`
state (one row per (model, sensor) slot); the graded value is the anomaly score in [0, 1]
(dimensionless), so thresholds are scores: the defaults of
:data:`~rescity.monitor.models.anomaly.DEFAULT_GRADE_THRESHOLDS` were set on NAB.
Importing this module registers the kind with the specs and the engine.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np

from .engine import GradedEvaluator, register_evaluator
from .models.anomaly import SeasonalAnomalyDetector
from .specs import Direction, GradedSpec, register_kind


@register_kind
class AnomalySpec(GradedSpec):
    """Deviation from the sensor's own learnt daily and weekly pattern, scored in [0, 1]
    by the seasonal anomaly detector (see ``monitor/models/anomaly.py``)."""

    summary: ClassVar[str] = "statistical anomaly against the sensor's learnt daily and weekly pattern"
    kind: Literal["anomaly"] = "anomaly"
    direction: Direction = "high"
    value_name: ClassVar[str] = "anomaly score"

    def graded_unit(self) -> str:
        return "1"  # dimensionless: a score in [0, 1]

    def _to_si(self, x: float) -> float:
        return x

    def _delta_to_si(self, x: float) -> float:
        return x


@register_evaluator("anomaly")
class AnomalyEvaluator(GradedEvaluator):
    """One detector over all anomaly slots (its rows are the slots)."""

    def setup_state(self) -> None:
        self.detector = SeasonalAnomalyDetector(self.n_slots)

    def derive(self, sl: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        return self.detector.update(sl.astype(np.int64), t, v)

    def ref_init(self) -> list[dict[str, Any]]:
        self._ref = SeasonalAnomalyDetector(self.n_slots)
        return super().ref_init()  # type: ignore[no-any-return]

    def ref_derive(self, slot: int, st: dict[str, Any], t: int, v: float) -> float:
        out = self._ref.update(np.array([slot], dtype=np.int64), np.array([t], dtype=np.int64),
                               np.array([v], dtype=np.float64))
        x = float(out[0])
        return x if math.isfinite(x) else math.nan
