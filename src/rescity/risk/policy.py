"""The risk policy as data: the 5-point criteria, the 5x5 matrix, the cell score's
weights, grading thresholds and the vulnerability rules (``risk/config/risk.yaml``, or
``$RESCITY_RISK_CONFIG``). A bad file raises :class:`RiskPolicyError` naming the field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rescity.model.datafile import load_yaml_model
from rescity.model.levels import LEVEL_NAMES

DEFAULT_RISK_POLICY = Path(__file__).resolve().parent / "config" / "risk.yaml"
ENV_RISK_POLICY = "RESCITY_RISK_CONFIG"


class RiskPolicyError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Criterion(_Strict):
    en: str
    zh: str


class ScoreWeights(_Strict):
    alpha: float = Field(ge=0)
    beta: float = Field(ge=0)
    gamma: float = Field(ge=0)
    w_population: float = Field(ge=0, le=1)
    w_facilities: float = Field(ge=0, le=1)
    population_ref: float = Field(gt=0)
    facilities_ref: float = Field(gt=0)
    alarm_weight: dict[str, float]
    incident_weight: dict[str, float]
    rain_weight: float = Field(ge=0)
    rain_ref_mm_h: float = Field(gt=0)
    flood_hazards: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> ScoreWeights:
        if abs(self.w_population + self.w_facilities - 1.0) > 1e-9:
            raise ValueError("w_population + w_facilities must be 1")
        for name, d in (("alarm_weight", self.alarm_weight), ("incident_weight", self.incident_weight)):
            if set(d) != set(LEVEL_NAMES):
                raise ValueError(f"{name}: give exactly {', '.join(LEVEL_NAMES)}")
        return self

    def level_weight(self, table: str, level: int) -> float:
        """The weight of a live alarm or incident of national ``level`` (1 red .. 4 blue)."""
        if not 1 <= level <= 4:
            return 0.0
        d = self.alarm_weight if table == "alarm" else self.incident_weight
        return d[LEVEL_NAMES[4 - level]]


class Grading(_Strict):
    mode: Literal["absolute", "quantiles"] = "absolute"
    absolute: dict[str, float]
    quantiles: dict[str, float]

    @model_validator(mode="after")
    def _check(self) -> Grading:
        for name, d in (("absolute", self.absolute), ("quantiles", self.quantiles)):
            if set(d) != {"red", "orange", "yellow"}:
                raise ValueError(f"grading.{name}: give red, orange and yellow")
        a = self.absolute
        if not a["red"] > a["orange"] > a["yellow"] > 0:
            raise ValueError("grading.absolute: need red > orange > yellow > 0")
        q = self.quantiles
        if not (0 < q["red"] and sum(q.values()) < 1):
            raise ValueError("grading.quantiles: shares must be positive and sum below 1")
        return self


class VulnerabilityRule(_Strict):
    attr: str
    network: str | None = None
    table: dict[str, float] | None = None
    zero: float | None = None
    one: float | None = None

    @model_validator(mode="after")
    def _check(self) -> VulnerabilityRule:
        if (self.table is None) == (self.zero is None or self.one is None):
            raise ValueError(f"vulnerability rule on {self.attr!r}: give a table, or zero and one")
        if self.zero is not None and self.zero == self.one:
            raise ValueError(f"vulnerability rule on {self.attr!r}: zero and one must differ")
        return self

    def value(self, x: Any) -> float | None:
        """The vulnerability 0..1 this rule gives an attribute value (None: no opinion)."""
        if x is None:
            return None
        if self.table is not None:
            v = self.table.get(str(x))
            return None if v is None else float(min(1.0, max(0.0, v)))
        try:
            f = float(x)
        except (TypeError, ValueError):
            return None
        assert self.zero is not None and self.one is not None
        return float(min(1.0, max(0.0, (f - self.zero) / (self.one - self.zero))))


class HazardsFromAlarms(_Strict):
    models: tuple[str, ...] = ()


class RiskPolicy(_Strict):
    likelihood: dict[int, Criterion]
    consequence: dict[int, Criterion]
    matrix: tuple[tuple[int, int, int, int, int], ...]
    score: ScoreWeights
    grading: Grading
    vulnerability: tuple[VulnerabilityRule, ...] = ()
    hidden_hazards_from_alarms: HazardsFromAlarms = HazardsFromAlarms()

    @model_validator(mode="after")
    def _check(self) -> RiskPolicy:
        for name, d in (("likelihood", self.likelihood), ("consequence", self.consequence)):
            if sorted(d) != [1, 2, 3, 4, 5]:
                raise ValueError(f"{name}: give the criteria of 1, 2, 3, 4 and 5")
        if len(self.matrix) != 5:
            raise ValueError("matrix: 5 rows (likelihood 1..5) of 5 levels (consequence 1..5)")
        for i, row in enumerate(self.matrix):
            for j, v in enumerate(row):
                if v not in (1, 2, 3, 4):
                    raise ValueError(f"matrix[{i}][{j}]: level must be 1 (red) .. 4 (blue), found {v}")
                # more likely or more severe is never a lower risk
                if j and v > row[j - 1]:
                    raise ValueError(f"matrix[{i}][{j}]: a worse consequence cannot lower the level")
                if i and v > self.matrix[i - 1][j]:
                    raise ValueError(f"matrix[{i}][{j}]: a higher likelihood cannot lower the level")
        return self

    def grade(self, likelihood: int, consequence: int) -> int:
        """The level (1 red .. 4 blue) of a risk point; both scales 1..5."""
        for name, v in (("likelihood", likelihood), ("consequence", consequence)):
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 5:
                raise ValueError(f"{name} must be an integer 1..5, found {v!r}")
        return self.matrix[likelihood - 1][consequence - 1]


def load_risk_policy(path: str | Path | None = None) -> RiskPolicy:
    """The policy in ``path`` (default ``$RESCITY_RISK_CONFIG``, else the shipped one)."""
    return load_yaml_model(Path(path or os.environ.get(ENV_RISK_POLICY) or DEFAULT_RISK_POLICY), RiskPolicy, RiskPolicyError, "risk policy")
