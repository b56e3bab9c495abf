"""Rainstorm: a design storm from an intensity-duration-frequency (IDF) curve, or a
measured series, as a hyetograph (rain intensity in mm/h at a fixed step).

The IDF curve is the Chinese storm-intensity formula (暴雨强度公式, GB 50014):

    q = 167 · A1 · (1 + C · lg P) / (t + b)^n        [L/(s·ha)]

with P the return period (years), t the rainfall duration (min) and A1 (mm/min), C,
b (min), n the local parameters. The factor 167 converts a rain intensity in mm/min
to a runoff rate per hectare: 1 mm/min on 1 ha = 10,000 m² × 0.001 m / 60 s =
0.16667 m³/s = 166.67 L/s, rounded to 167 in the code. So the average intensity over
a duration t is

    i(t) = A1 · (1 + C · lg P) / (t + b)^n   [mm/min]  = 60 · A1 · (1 + C · lg P) / (t + b)^n  [mm/h]

and we compute i from A1 exactly; :meth:`IDFCurve.q_ls_ha` gives the code's q = 167 i.
Converting the code's q back with the exact factor, i = q / 166.67 mm/min, is
167/166.67 = 1.002 times our i: the 0.2 % is the code's rounding.
The depth of rain over the duration t is H(t) = i(t) · t (mm, i in mm/min).

Hyetographs (intensity against time), each conserving the IDF depth H(D) for the
storm duration D exactly:

* ``chicago`` — Keifer and Chu (1957): the peak at r · D (the peak ratio r, 0 < r < 1);
  before the peak at time t_b back from it, i = a [(1 − n) t_b/r + b] / (t_b/r + b)^(1+n),
  after it, at t_a, the same with t_a/(1 − r); a = A1 (1 + C lg P). Its cumulative depth
  is r·H(D) − r·H((rD − t)/r) before the peak and r·H(D) + (1 − r)·H((t − rD)/(1 − r))
  after; each step takes the exact depth of its interval from that.
* ``alternating_block`` — (Chow, Maidment and Mays 1988): the increments of H at each
  step, largest first, placed at the peak step (index ⌊r · N⌋) and then alternately
  after and before it.
* ``measured`` — a series given as data (mm/h at the given step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .base import HazardSpec

#: mm/min on one hectare in L/s: 10,000 m² × 0.001 m / 60 s × 1000 L/m³
MM_PER_MIN_TO_L_S_HA = 10_000 * 0.001 / 60.0 * 1000.0  # 166.666...
#: the rounded factor the Chinese code writes
CODE_FACTOR = 167.0


class IDFCurve(BaseModel):
    """Parameters of q = 167 A1 (1 + C lg P) / (t + b)^n (module docstring).

    The default is the classic Beijing formula q = 2001 (1 + 0.811 lg P) / (t + 8)^0.711
    (A1 = 2001/167 mm/min), long quoted in Chinese drainage design handbooks
    (给水排水设计手册, storm-intensity formulas of Chinese cities). It is used here
    as an illustrative default, not as the current local standard: Beijing has since
    published zoned formulas (DB11/685). Give the city's own parameters as data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "Beijing (classic handbook formula, illustrative)"
    a1_mm_min: float = Field(2001.0 / CODE_FACTOR, gt=0, description="A1, mm/min")
    c: float = Field(0.811, ge=0, description="C, dimensionless")
    b_min: float = Field(8.0, ge=0, description="b, minutes")
    n: float = Field(0.711, gt=0, lt=1, description="n, dimensionless")

    def intensity_mm_min(self, t_min: float | np.ndarray, return_period_years: float) -> np.ndarray:
        """Average intensity over a duration ``t_min`` (min): i = A1 (1 + C lg P)/(t + b)^n, mm/min."""
        t = np.asarray(t_min, dtype=float)
        return (
            self.a1_mm_min
            * (1.0 + self.c * math.log10(return_period_years))
            / np.power(t + self.b_min, self.n)
        )

    def intensity_mm_h(self, t_min: float | np.ndarray, return_period_years: float) -> np.ndarray:
        """Average intensity in mm/h (60 × the mm/min value)."""
        return 60.0 * self.intensity_mm_min(t_min, return_period_years)

    def q_ls_ha(self, t_min: float | np.ndarray, return_period_years: float) -> np.ndarray:
        """The code's design storm intensity q = 167 i, L/(s·ha)."""
        return CODE_FACTOR * self.intensity_mm_min(t_min, return_period_years)

    def depth_mm(self, t_min: float | np.ndarray, return_period_years: float) -> np.ndarray:
        """Rain depth over the duration t: H(t) = i(t) · t, mm (H(0) = 0)."""
        t = np.asarray(t_min, dtype=float)
        return self.intensity_mm_min(t, return_period_years) * t


@dataclass(frozen=True)
class Hyetograph:
    """Rain intensity at a fixed step: ``intensity_mm_h[k]`` is the mean intensity over
    [k·step, (k+1)·step) minutes from the storm's start."""

    step_min: float
    intensity_mm_h: np.ndarray
    method: str

    @property
    def duration_min(self) -> float:
        return self.step_min * len(self.intensity_mm_h)

    @property
    def times_min(self) -> np.ndarray:
        """Start of each step (min)."""
        return np.arange(len(self.intensity_mm_h)) * self.step_min

    @property
    def depths_mm(self) -> np.ndarray:
        """Rain depth in each step (mm)."""
        return self.intensity_mm_h * self.step_min / 60.0

    @property
    def total_depth_mm(self) -> float:
        return float(self.depths_mm.sum())

    @property
    def peak_index(self) -> int:
        return int(np.argmax(self.intensity_mm_h))

    @property
    def peak_time_min(self) -> float:
        """Start of the step with the highest intensity (min)."""
        return self.peak_index * self.step_min


def chicago(
    idf: IDFCurve,
    return_period_years: float,
    duration_min: float,
    step_min: float,
    peak_ratio: float,
) -> Hyetograph:
    """The Chicago hyetograph (Keifer and Chu 1957), integrated exactly over each step."""
    n_steps = _n_steps(duration_min, step_min)
    r = peak_ratio
    d = duration_min
    t_peak = r * d

    def cumulative(t: np.ndarray) -> np.ndarray:
        t = np.clip(t, 0.0, d)
        before = r * idf.depth_mm(d, return_period_years) - r * idf.depth_mm(
            (t_peak - np.minimum(t, t_peak)) / r, return_period_years
        )
        after = (1.0 - r) * idf.depth_mm(
            np.maximum(t - t_peak, 0.0) / (1.0 - r), return_period_years
        )
        return np.asarray(before + after, dtype=float)

    edges = np.arange(n_steps + 1) * step_min
    depths = np.diff(cumulative(edges))
    return Hyetograph(step_min, depths * 60.0 / step_min, "chicago")


def alternating_block(
    idf: IDFCurve,
    return_period_years: float,
    duration_min: float,
    step_min: float,
    peak_ratio: float,
) -> Hyetograph:
    """The alternating-block hyetograph: IDF depth increments, largest at the peak step,
    then alternately after and before it (the side that runs out gives way)."""
    n_steps = _n_steps(duration_min, step_min)
    edges = np.arange(n_steps + 1) * step_min
    increments = np.diff(idf.depth_mm(edges, return_period_years))
    order = np.sort(increments)[::-1]
    peak = min(int(math.floor(peak_ratio * n_steps)), n_steps - 1)
    slots = [peak]
    after, before = peak + 1, peak - 1
    turn_after = True
    while len(slots) < n_steps:
        if (turn_after and after < n_steps) or before < 0:
            slots.append(after)
            after += 1
        else:
            slots.append(before)
            before -= 1
        turn_after = not turn_after
    depths = np.empty(n_steps)
    depths[np.asarray(slots)] = order
    return Hyetograph(step_min, depths * 60.0 / step_min, "alternating_block")


def _n_steps(duration_min: float, step_min: float) -> int:
    n = duration_min / step_min
    if abs(n - round(n)) > 1e-9 or round(n) < 1:
        raise ValueError(
            f"duration_min ({duration_min}) must be a whole number of steps of {step_min} min"
        )
    return int(round(n))


class MeasuredSeries(BaseModel):
    """A measured rain series: mean intensity (mm/h) in each step of ``step_min`` minutes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step_min: float = Field(gt=0)
    intensity_mm_h: list[float] = Field(min_length=1)

    @field_validator("intensity_mm_h")
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        bad = [(i, x) for i, x in enumerate(v) if not (x >= 0) or math.isinf(x)]
        if bad:
            i, x = bad[0]
            raise ValueError(f"intensities must be finite and non-negative mm/h; step {i} is {x}")
        return v


class Rainstorm(HazardSpec):
    """A rainstorm: a design storm (``chicago`` or ``alternating_block``) of return period
    ``return_period_years`` and duration ``duration_min`` from the IDF curve ``idf``, or a
    ``measured`` series. ``step_min`` is the hyetograph step (min); ``peak_ratio`` r places
    the peak at r × duration (Chinese practice: 0.35-0.45)."""

    kind: Literal["rainstorm"] = "rainstorm"
    method: Literal["chicago", "alternating_block", "measured"] = "chicago"
    return_period_years: float = Field(10.0, description="return period P, years")
    duration_min: float = Field(120.0, gt=0, description="storm duration, minutes")
    step_min: float = Field(5.0, gt=0, description="hyetograph step, minutes")
    peak_ratio: float = Field(
        0.4, gt=0, lt=1, description="peak position as a fraction of the duration"
    )
    idf: IDFCurve = IDFCurve.model_validate({})
    measured: MeasuredSeries | None = None

    @field_validator("return_period_years")
    @classmethod
    def _period(cls, v: float) -> float:
        if math.isnan(v) or v <= 0:
            raise ValueError(f"return_period_years must be positive, got {v}")
        if v > 10_000:
            raise ValueError(f"return_period_years must be at most 10,000 years, got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Rainstorm:
        if self.method == "measured":
            if self.measured is None:
                raise ValueError(
                    "method 'measured' needs the field 'measured' (step_min, intensity_mm_h)"
                )
            return self
        if self.measured is not None:
            raise ValueError(
                f"field 'measured' is given but method is {self.method!r}; use method 'measured'"
            )
        if 1.0 + self.idf.c * math.log10(self.return_period_years) <= 0:
            raise ValueError(
                f"return_period_years {self.return_period_years} makes 1 + C lg P <= 0 for C = {self.idf.c}"
            )
        _n_steps(self.duration_min, self.step_min)
        return self

    def design_depth_mm(self) -> float:
        """The IDF depth H(D) for the storm duration (mm); for a measured series, its total."""
        if self.method == "measured":
            return self.hyetograph().total_depth_mm
        return float(self.idf.depth_mm(self.duration_min, self.return_period_years))

    def hyetograph(self) -> Hyetograph:
        """The storm's intensity series (mm/h at ``step_min``)."""
        if self.method == "measured":
            assert self.measured is not None
            return Hyetograph(
                self.measured.step_min,
                np.asarray(self.measured.intensity_mm_h, dtype=float),
                "measured",
            )
        fn = chicago if self.method == "chicago" else alternating_block
        return fn(
            self.idf, self.return_period_years, self.duration_min, self.step_min, self.peak_ratio
        )
