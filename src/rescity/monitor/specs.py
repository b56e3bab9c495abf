"""Warning models declared as data: pydantic specs loaded from YAML, checked and explained.

A warning model grades a value derived from sensor readings on the national four
levels (红橙黄蓝). **Level 1 = red is the highest**; every output and every document
speaks that convention:

====================  =======  ==============  ===========================
level (national)      colour   label_zh        internal severity (0..4)
====================  =======  ==============  ===========================
0                     normal   正常            0
4                     blue     蓝色            1
3                     yellow   黄色            2
2                     orange   橙色            3
1                     red      红色            4
====================  =======  ==============  ===========================

The engine keeps severities (larger = worse) in its arrays because they order
naturally; :class:`WarningLevel` converts at the edges.

One YAML file may hold many models::

    models:
      - name: pressure_low
        kind: threshold
        title: Water supply pressure too low
        select: {quantity: pressure, network: water}
        direction: low
        thresholds: {blue: 20, yellow: 14, orange: 10, red: 5}   # m of head
        hysteresis: 1.0
        for_s: 300
    inhibit:
      - {source: main_break, target: pressure_low, scope: members}
    grouping: {window_s: 1800, distance_m: 800, same_network: true}

Model kinds live in a registry (:func:`register_kind`) so other modules add kinds
(statistical anomaly, leak detection) by registering a spec class here and an
evaluator in :mod:`rescity.monitor.engine`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rescity.model import QUANTITIES, DependencyKind, NetworkType, split_uid, to_si
from rescity.model.levels import LEVEL_NAMES, WarningLevel
from rescity.model.units import UnknownUnitError, si_unit

if TYPE_CHECKING:
    from rescity.model import City
    from rescity.monitor.registry import SensorRegistry

__all__ = [
    "KINDS",
    "LEVEL_NAMES",
    "AccumulationSpec",
    "Catalogue",
    "ClusterSpec",
    "CompositeSpec",
    "Condition",
    "DriftSpec",
    "GradedSpec",
    "GroupingRule",
    "InhibitRule",
    "LevelWindows",
    "ModelSpec",
    "Near",
    "Override",
    "Parameter",
    "RaiseRule",
    "RateSpec",
    "RelativeTo",
    "Selector",
    "SilenceRule",
    "SilenceSpec",
    "SpecError",
    "StepSpec",
    "StuckSpec",
    "ThresholdSpec",
    "Thresholds",
    "WarningLevel",
    "default_catalogue_dir",
    "load_catalogue",
    "load_specs",
    "parse_model",
    "register_kind",
]


# -- levels (the national scale lives in the model: rescity.model.levels) ---------------------------
def level_of(severity: int) -> int:
    """National level (0 normal, 1 red .. 4 blue) of an internal severity (0..4, 4 = red)."""
    return 0 if severity == 0 else 5 - severity


class SpecError(ValueError):
    """A warning model, or a catalogue of them, that does not validate."""


# -- small parts -----------------------------------------------------------------------------------
class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a model as ``rescity models show`` lists it."""

    name: str
    value: Any
    unit: str
    description: str


def _fmt(x: float) -> str:
    return f"{x:g}"


class Near(_Part):
    """Sensors whose asset lies within ``within_m`` metres of an asset of ``network``
    (name or type) and of kind ``asset_kind``, according to the city's
    ``spatial_adjacency`` interdependencies (the hazard source is the supporting asset)."""

    network: str
    asset_kind: list[str] | None = None
    within_m: float = Field(gt=0)


class Selector(_Part):
    """Which sensors a model watches. All given criteria must hold (AND); a list means any
    of its values (OR). ``network`` matches a network name or a network type
    (``water``, ``drainage`` ...); ``asset_kind`` matches the kind of the sensor's asset
    (``junction``, ``main``, ``bridge_span`` ...); ``sensors`` lists sensor ids."""

    quantity: list[str] | None = None
    network: list[str] | None = None
    asset_kind: list[str] | None = None
    sensors: list[str] | None = None
    exclude: list[str] = Field(default_factory=list)
    near: Near | None = None

    @field_validator("quantity", "network", "asset_kind", "sensors", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("quantity")
    @classmethod
    def _known_quantity(cls, v: list[str] | None) -> list[str] | None:
        for q in v or []:
            if q not in QUANTITIES:
                raise ValueError(f"unknown quantity {q!r}; expected one of {', '.join(QUANTITIES)}")
        return v

    def needs_city(self) -> bool:
        return self.asset_kind is not None or self.near is not None

    def describe(self) -> str:
        parts = []
        if self.quantity:
            parts.append("measuring " + " or ".join(self.quantity))
        if self.network:
            parts.append("on network " + " or ".join(self.network))
        if self.asset_kind:
            parts.append("on assets of kind " + " or ".join(self.asset_kind))
        if self.near:
            kinds = f" {'/'.join(self.near.asset_kind)}" if self.near.asset_kind else ""
            parts.append(f"within {_fmt(self.near.within_m)} m of a {self.near.network}{kinds}")
        if self.sensors:
            parts.append(f"among {len(self.sensors)} listed sensors")
        if self.exclude:
            parts.append(f"except {len(self.exclude)} excluded sensors")
        return "sensors " + ", ".join(parts) if parts else "every sensor"

    def resolve(self, registry: SensorRegistry, city: City | None = None) -> np.ndarray:
        """Indices (int32, ascending) of the selected sensors of ``registry``."""
        n = len(registry)
        mask = np.ones(n, dtype=bool)
        if self.quantity:
            qm = np.zeros(n, dtype=bool)
            for q in self.quantity:
                qm[registry.of_quantity(q)] = True
            mask &= qm
        if self.network:
            ok = {net: _network_matches(net, self.network, city) for net in set(registry.network)}
            mask &= np.fromiter((ok[net] for net in registry.network), dtype=bool, count=n)
        if self.needs_city() and city is None:
            raise SpecError("selection by asset_kind or near needs the city model")
        if self.asset_kind and city is not None:
            kinds = set(self.asset_kind)
            mask &= np.array(
                [m and _asset_kind(city, a) in kinds for m, a in zip(mask, registry.asset, strict=True)],
                dtype=bool,
            )
        if self.near is not None and city is not None:
            near_assets = _near_assets(city, self.near)
            mask &= np.array([a in near_assets for a in registry.asset], dtype=bool)
        if self.sensors is not None:
            sm = np.zeros(n, dtype=bool)
            idx = registry.lookup(self.sensors)
            sm[idx[idx >= 0]] = True
            mask &= sm
        if self.exclude:
            idx = registry.lookup(self.exclude)
            mask[idx[idx >= 0]] = False
        return np.flatnonzero(mask).astype(np.int32)


def _network_matches(net: str, wanted: Sequence[str], city: City | None) -> bool:
    if net in wanted:
        return True
    if city is not None and net in city.networks:
        return city.networks[net].type.value in wanted
    return False


def _asset_kind(city: City, uid: str) -> str | None:
    a = city.asset(uid)
    if a is None:
        return None
    kind = a.kind
    return kind.value if hasattr(kind, "value") else str(kind)


def _near_assets(city: City, near: Near) -> set[str]:
    types = {t.value for t in NetworkType}
    out = set()
    for d in city.interdependencies:
        if d.kind != DependencyKind.SPATIAL_ADJACENCY:
            continue
        if d.distance_m is not None and d.distance_m > near.within_m:
            continue
        net, _ = split_uid(d.supporting)
        if near.network in types:
            n = city.networks.get(net)
            if n is None or n.type.value != near.network:
                continue
        elif net != near.network:
            continue
        if near.asset_kind and _asset_kind(city, d.supporting) not in near.asset_kind:
            continue
        out.add(d.dependent)
    return out


class Thresholds(_Part):
    """Graded thresholds; at least one level. Omitted levels are skipped (a value past
    ``orange`` with no ``yellow`` goes straight from blue, or normal, to orange)."""

    blue: float | None = None
    yellow: float | None = None
    orange: float | None = None
    red: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Thresholds:
        if all(getattr(self, k) is None for k in LEVEL_NAMES):
            raise ValueError("thresholds: give at least one of blue, yellow, orange, red")
        for k in LEVEL_NAMES:
            v = getattr(self, k)
            if v is not None and not math.isfinite(v):
                raise ValueError(f"thresholds: {k} must be a finite number, found {v}")
        return self

    def given(self) -> list[tuple[str, float]]:
        """(level name, value) of the given levels, blue first."""
        return [(k, v) for k in LEVEL_NAMES if (v := getattr(self, k)) is not None]

    def scaled(self, f: Any) -> Thresholds:
        return Thresholds(**{k: f(v) for k, v in self.given()})

    def check_order(self, increasing: bool) -> None:
        vals = self.given()
        for (ka, a), (kb, b) in zip(vals, vals[1:], strict=False):
            if (increasing and not a < b) or (not increasing and not a > b):
                names = [k for k, _ in vals]
                rel = " < " if increasing else " > "
                found = ", ".join(f"{k}={_fmt(v)}" for k, v in vals)
                raise ValueError(
                    f"thresholds must {'increase' if increasing else 'decrease'} "
                    f"{rel.join(names)} (found {found}: {ka}={_fmt(a)} vs {kb}={_fmt(b)})"
                )

    def filled(self, sign: float = 1.0) -> np.ndarray:
        """Four thresholds (blue..red) in sign-adjusted space, non-decreasing: a missing
        level takes the next higher given level's value, +inf above the highest."""
        out = np.full(4, np.inf)
        nxt = np.inf
        for i in range(3, -1, -1):
            v = getattr(self, LEVEL_NAMES[i])
            if v is not None:
                nxt = sign * v
            out[i] = nxt
        return out


class RelativeTo(_Part):
    """Grade the value relative to an attribute of the sensor's asset: ``ratio`` grades
    ``value / (attr * scale)``; ``deviation_pct`` grades ``100 * (value / (attr * scale) - 1)``.
    Sensors whose asset lacks the attribute are left out (and reported)."""

    attr: str
    scale: float = 1.0
    mode: Literal["ratio", "deviation_pct"] = "ratio"

    @property
    def unit(self) -> str:
        return "1" if self.mode == "ratio" else "%"


class Override(_Part):
    """Other thresholds (and optionally hysteresis / duration) for some of the model's
    sensors: by sensor id or by asset kind (the asset class). The first matching override
    wins."""

    sensors: list[str] | None = None
    asset_kind: list[str] | None = None
    thresholds: Thresholds
    hysteresis: float | None = Field(default=None, ge=0)
    for_s: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _matches_something(self) -> Override:
        if not self.sensors and not self.asset_kind:
            raise ValueError("an override needs sensors or asset_kind")
        return self


# -- model specs ------------------------------------------------------------------------------------
class ModelSpec(BaseModel):
    """The fields every warning model has. Subclasses set ``kind`` to a Literal."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    summary: ClassVar[str] = "a warning model"

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    kind: str
    title: str = ""
    title_zh: str | None = None
    description: str = ""
    source: str = ""
    enabled: bool = True
    select: Selector = Field(default_factory=Selector)
    origin: str | None = Field(default=None, exclude=True)

    def explain(self) -> str:
        """Plain English, as ``rescity models show NAME`` prints it."""
        head = f"{self.name} ({self.kind}): {self.title or self.summary}"
        if self.title_zh:
            head += f" / {self.title_zh}"
        lines = [head, ""]
        if self.description:
            lines += [self.description.strip(), ""]
        lines += self._explain_body()
        lines += ["", "Parameters:"]
        for p in self.parameters():
            unit = f" {p.unit}" if p.unit and p.unit != "1" else ""
            lines.append(f"  {p.name} = {p.value}{unit}  -- {p.description}")
        if self.source:
            lines += ["", f"Source / assumption: {self.source.strip()}"]
        if self.origin:
            lines += [f"Declared in: {self.origin}"]
        lines.append("Levels follow the national scale: level 1 = red (highest), 2 = orange, 3 = yellow, 4 = blue.")
        return "\n".join(lines)

    def _explain_body(self) -> list[str]:
        return [f"Watches {self.select.describe()}."]

    def parameters(self) -> list[Parameter]:
        return []

    def quantity_unit(self) -> str:
        """The SI unit of the selected quantity (``""`` when the selection mixes quantities)."""
        qs = self.select.quantity or []
        units = {QUANTITIES[q].unit for q in qs}
        return units.pop() if len(units) == 1 else ""

    def references(self) -> list[str]:
        """Names of other models this one needs (checked by :func:`load_catalogue`)."""
        return []


Direction = Literal["high", "low", "both"]


class GradedSpec(ModelSpec):
    """A model grading a derived value on graded thresholds with hysteresis and a minimum
    duration (pending -> firing). ``direction``: ``high`` grades ``x >= threshold``,
    ``low`` grades ``x <= threshold``, ``both`` grades ``|x| >= threshold``.

    Hysteresis: once at a level, the value must fall back past ``threshold - hysteresis``
    (``+`` for ``low``) to leave it. Minimum duration: the condition must hold ``for_s``
    seconds (pending) before the alarm fires; level changes while firing are immediate.
    ``unit``: the unit the thresholds are written in (converted to SI); default SI.
    """

    direction: Direction = "high"
    thresholds: Thresholds
    hysteresis: float = Field(default=0.0, ge=0)
    for_s: float = Field(default=0.0, ge=0)
    unit: str | None = None
    overrides: list[Override] = Field(default_factory=list)

    value_name: ClassVar[str] = "value"
    magnitudes: ClassVar[bool] = False
    """True when thresholds are magnitudes whatever the direction (rate, step)."""

    @model_validator(mode="before")
    @classmethod
    def _rise_fall(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("direction") in ("fall", "rise"):
            data = {**data, "direction": "low" if data["direction"] == "fall" else "high"}
        return data

    @model_validator(mode="after")
    def _check_graded(self) -> GradedSpec:
        self.check_graded()
        return self

    def check_graded(self) -> None:
        """The checks of the graded parts (thresholds order, unit); kinds may replace them."""
        increasing = self.direction != "low" or self.magnitudes
        if self.magnitudes and any(v < 0 for _, v in self.thresholds.given()):
            raise ValueError("thresholds: these thresholds are magnitudes and must be >= 0")
        for where, th in [("", self.thresholds)] + [
            (f"overrides[{i}].", o.thresholds) for i, o in enumerate(self.overrides)
        ]:
            try:
                th.check_order(increasing)
            except ValueError as e:
                extra = " for direction low" if not increasing else ""
                raise ValueError(f"{where}{e}{extra}") from None
            if self.direction == "both" and any(v < 0 for _, v in th.given()):
                raise ValueError(f"{where}thresholds must be >= 0 for direction both (grading |x|)")
        if self.unit is not None:
            try:
                su = si_unit(self.unit)
            except UnknownUnitError as e:
                raise ValueError(f"unit: {e}") from None
            want = self.graded_unit()
            if want and su != want:
                raise ValueError(f"unit: {self.unit!r} converts to {su!r}, but this model grades {want!r}")

    # -- what is graded ----------------------------------------------------------------------------
    def graded_unit(self) -> str:
        """SI unit of the graded value."""
        return self.quantity_unit()

    def _to_si(self, x: float) -> float:
        return to_si(x, self.unit) if self.unit else x

    def _delta_to_si(self, x: float) -> float:
        return (to_si(x, self.unit) - to_si(0.0, self.unit)) if self.unit else x

    def si_thresholds(self, th: Thresholds | None = None) -> Thresholds:
        return (th or self.thresholds).scaled(self._to_si)

    def si_hysteresis(self, h: float | None = None) -> float:
        return self._delta_to_si(self.hysteresis if h is None else h)

    def describe_value(self) -> str:
        return self.value_name

    def levels_text(self) -> str:
        """The graded thresholds as ``rescity models list`` shows them (blue first)."""
        u = self.unit or self.graded_unit()
        return " / ".join(_fmt(v) for _, v in self.thresholds.given()) + (f" {u}" if u and u != "1" else "")

    def _explain_body(self) -> list[str]:
        u = self.unit or self.graded_unit()
        us = f" {u}" if u and u != "1" else ""
        vn = self.describe_value()
        lines = [f"Watches {self.select.describe()}.", f"Grades the {vn}:"]
        for k, v in reversed(self.thresholds.given()):
            lvl = WarningLevel.from_severity(LEVEL_NAMES.index(k) + 1)
            if self.magnitudes:
                op = {"high": "rising by >=", "low": "falling by >=", "both": "magnitude >="}[self.direction]
            else:
                op = {"high": ">=", "low": "<=", "both": "magnitude >="}[self.direction]
            lines.append(f"  {lvl.describe():18s} when {vn} {op} {_fmt(v)}{us}")
        if self.hysteresis:
            side = "below" if self.direction != "low" or self.magnitudes else "above"
            lines.append(
                f"A level is left only when the {vn} is back {side} its threshold by more "
                f"than {_fmt(self.hysteresis)}{us} (hysteresis)."
            )
        if self.for_s:
            lines.append(
                f"The condition must hold {_fmt(self.for_s)} s before the alarm fires (pending until "
                "then); while firing, level changes take effect at once."
            )
        else:
            lines.append("The alarm fires at the first reading past a threshold.")
        for o in self.overrides:
            who = ", ".join((o.sensors or []) + [f"kind {k}" for k in o.asset_kind or []])
            vals = ", ".join(f"{k}={_fmt(v)}" for k, v in o.thresholds.given())
            lines.append(f"Override for {who}: {vals}")
        return lines

    def parameters(self) -> list[Parameter]:
        u = self.unit or self.graded_unit()
        ps = [Parameter("direction", self.direction, "", "which side of the thresholds is bad")]
        for k, v in self.thresholds.given():
            lvl = WarningLevel.from_severity(LEVEL_NAMES.index(k) + 1)
            ps.append(Parameter(f"thresholds.{k}", v, u, f"{lvl.describe()} threshold"))
        ps.append(Parameter("hysteresis", self.hysteresis, u, "dead band to leave a level"))
        ps.append(Parameter("for_s", self.for_s, "s", "minimum duration before firing"))
        return ps


_KINDS: dict[str, type[ModelSpec]] = {}
KINDS = _KINDS
"""kind name -> spec class. Add kinds with :func:`register_kind`."""


def register_kind(cls: type[ModelSpec]) -> type[ModelSpec]:
    """Register a spec class under its ``kind`` (the Literal default of its ``kind`` field).
    Usable as a class decorator; registering a second class for a kind replaces the first."""
    default = cls.model_fields["kind"].default
    if not isinstance(default, str) or not default:
        raise TypeError(f"{cls.__name__}: the kind field needs a string default (its kind name)")
    _KINDS[default] = cls
    return cls


@register_kind
class ThresholdSpec(GradedSpec):
    """Graded thresholds on the reading itself (optionally relative to an asset attribute)."""

    summary: ClassVar[str] = "graded thresholds on the reading"
    kind: Literal["threshold"] = "threshold"
    relative_to: RelativeTo | None = None

    def describe_value(self) -> str:
        if self.relative_to is None:
            return "reading"
        r = self.relative_to
        base = f"asset {r.attr}" + (f" x {_fmt(r.scale)}" if r.scale != 1 else "")
        return f"reading / ({base})" if r.mode == "ratio" else f"deviation from {base} in %"

    def graded_unit(self) -> str:
        return self.relative_to.unit if self.relative_to else self.quantity_unit()

    def parameters(self) -> list[Parameter]:
        ps = super().parameters()
        if self.relative_to:
            r = self.relative_to
            ps.append(Parameter("relative_to", f"{r.mode} of asset attribute {r.attr} x {_fmt(r.scale)}", "",
                                "reference the reading is graded against"))
        return ps


_PER_S = {"s": 1.0, "min": 60.0, "h": 3600.0}


@register_kind
class RateSpec(GradedSpec):
    """Rate of change between consecutive readings of a sensor, in unit per ``per``.
    ``direction``: ``high`` = rise, ``low`` = fall (thresholds written as positive
    magnitudes of the fall), ``both`` = either."""

    summary: ClassVar[str] = "rate of change between consecutive readings"
    kind: Literal["rate"] = "rate"
    per: Literal["s", "min", "h"] = "min"
    value_name: ClassVar[str] = "rate of change"
    magnitudes: ClassVar[bool] = True

    def graded_unit(self) -> str:
        u = self.quantity_unit()
        return f"{u}/{self.per}" if u else ""

    def _explain_body(self) -> list[str]:
        body = super()._explain_body()
        what = {"high": "rise", "low": "fall", "both": "rise or fall"}[self.direction]
        body.insert(1, f"The rate is (value - previous value) / elapsed time, per {self.per}; "
                       f"a {what} is graded (magnitudes).")
        return body

    def parameters(self) -> list[Parameter]:
        return [*super().parameters(), Parameter("per", self.per, "", "time unit of the rate")]


@register_kind
class StepSpec(GradedSpec):
    """Step change: the difference between a reading and the previous reading of the sensor
    (thresholds are magnitudes; ``direction`` high = step up, low = step down)."""

    summary: ClassVar[str] = "step change between consecutive readings"
    kind: Literal["step"] = "step"
    value_name: ClassVar[str] = "step (value - previous value)"
    magnitudes: ClassVar[bool] = True


@register_kind
class SilenceSpec(GradedSpec):
    """Data quality: a sensor silent for longer than the thresholds (seconds since its last
    reading; evaluated by ``tick``; a reading resolves it)."""

    summary: ClassVar[str] = "sensor silent (no reading) for too long"
    kind: Literal["silence"] = "silence"
    value_name: ClassVar[str] = "time since the last reading"

    def graded_unit(self) -> str:
        return "s"

    @model_validator(mode="after")
    def _high(self) -> SilenceSpec:
        if self.direction != "high":
            raise ValueError("direction: a silence model grades time since the last reading: use high")
        if any(v <= 0 for _, v in self.thresholds.given()):
            raise ValueError("thresholds: silence thresholds are durations in seconds and must be > 0")
        return self


@register_kind
class StuckSpec(GradedSpec):
    """Data quality: a stuck value: readings keep arriving but none differs from the value
    at the last change by more than ``tolerance`` (SI unit of the quantity); graded on the
    seconds since that change."""

    summary: ClassVar[str] = "sensor value stuck (readings arrive but do not change)"
    kind: Literal["stuck"] = "stuck"
    tolerance: float = Field(default=0.0, ge=0)
    value_name: ClassVar[str] = "time without change"

    def graded_unit(self) -> str:
        return "s"

    def parameters(self) -> list[Parameter]:
        return [*super().parameters(),
                Parameter("tolerance", self.tolerance, self.quantity_unit(), "largest change still counted as no change")]


@register_kind
class DriftSpec(GradedSpec):
    """Data quality: drift of a sensor from its own long-term baseline: the difference
    between a fast and a slow time-aware exponential moving average
    (``alpha = 1 - exp(-dt / tau)``), graded on its magnitude (direction ``both``)."""

    summary: ClassVar[str] = "slow drift from the sensor's own long-term baseline"
    kind: Literal["drift"] = "drift"
    direction: Direction = "both"
    fast_tau_s: float = Field(default=86400.0, gt=0)
    slow_tau_s: float = Field(default=14 * 86400.0, gt=0)
    value_name: ClassVar[str] = "drift (fast mean - slow mean)"

    @model_validator(mode="after")
    def _taus(self) -> DriftSpec:
        if not self.fast_tau_s < self.slow_tau_s:
            raise ValueError(f"fast_tau_s ({self.fast_tau_s}) must be shorter than slow_tau_s ({self.slow_tau_s})")
        return self

    def parameters(self) -> list[Parameter]:
        return [*super().parameters(),
                Parameter("fast_tau_s", self.fast_tau_s, "s", "time constant of the fast mean"),
                Parameter("slow_tau_s", self.slow_tau_s, "s", "time constant of the slow (baseline) mean")]


# -- rolling accumulation ------------------------------------------------------------------------------
class LevelWindows(_Part):
    """Sliding window length per level, in hours (blue .. red)."""

    blue: float | None = Field(default=None, gt=0)
    yellow: float | None = Field(default=None, gt=0)
    orange: float | None = Field(default=None, gt=0)
    red: float | None = Field(default=None, gt=0)

    def given(self) -> list[tuple[str, float]]:
        return [(k, v) for k in LEVEL_NAMES if (v := getattr(self, k)) is not None]

    def filled_s(self) -> np.ndarray:
        """Four windows (blue..red) in seconds: a missing level takes the next higher given
        level's window (as :meth:`Thresholds.filled` does for thresholds), levels above the
        highest given one the highest's (their threshold is +inf)."""
        out = np.zeros(4)
        given = self.given()
        nxt = given[-1][1] if given else 1.0
        for i in range(3, -1, -1):
            v = getattr(self, LEVEL_NAMES[i])
            if v is not None:
                nxt = v
            out[i] = nxt * 3600.0
        return out


@register_kind
class AccumulationSpec(GradedSpec):
    """Rolling accumulation of an intensity (rainfall in mm/h) over a sliding window per
    level, as the China Meteorological Administration rainstorm warning signals are
    defined (暴雨预警信号: blue 50 mm in 12 h .. red 100 mm in 3 h).

    The accumulation at time ``t`` over a window ``W`` is
    ``A_W(t) = C(t) - C(t - W)``, with the cumulative amount ``C`` (mm) piecewise linear
    between readings: a reading of intensity ``r`` (mm/h) at ``t_i`` adds
    ``max(r, 0) * (t_i - t_(i-1)) / 3600 s`` over the interval since the sensor's previous
    reading (so ``C(t - W)`` is interpolated exactly inside an interval); the first reading
    of a sensor and a reading more than ``max_gap_s`` after the previous one add nothing
    (rain during a gap is unknown, not assumed). After the last reading no rain is added:
    :meth:`~rescity.monitor.engine.WarningEngine.tick` slides the windows on (a level is
    left as the storm's rain leaves the window).

    Level ``k`` holds while ``A_(W_k) >= T_k``. Levels must be nested (a more severe level
    has a window no longer and an amount no smaller than a less severe one, and differs in
    one of them), so holding a level implies holding the ones below it. Hysteresis (mm): a
    level is left when its accumulation falls to ``T_k - hysteresis`` or below.
    """

    summary: ClassVar[str] = "rolling accumulation over a sliding window per level (rainstorm signals)"
    kind: Literal["accumulation"] = "accumulation"
    windows_h: LevelWindows
    max_gap_s: float = Field(default=3600.0, gt=0)
    value_name: ClassVar[str] = "accumulation"

    def check_graded(self) -> None:
        if self.direction != "high":
            raise ValueError("direction: an accumulation grades amounts that grow with rain: use high")
        if self.overrides:
            raise ValueError("overrides: not supported for kind accumulation (declare another model)")
        qs = self.select.quantity or []
        if not qs or any(not QUANTITIES[q].unit.endswith("/h") for q in qs):
            found = ", ".join(f"{q} ({QUANTITIES[q].unit})" for q in qs) or "none"
            raise ValueError(f"select.quantity: an accumulation needs an intensity per hour (rainfall, mm/h); found {found}")
        th = self.thresholds.given()
        win = self.windows_h.given()
        if [k for k, _ in th] != [k for k, _ in win]:
            raise ValueError(f"windows_h: give a window for exactly the levels with thresholds "
                             f"({', '.join(k for k, _ in th)}); found {', '.join(k for k, _ in win) or 'none'}")
        if any(v < 0 for _, v in th):
            raise ValueError("thresholds: amounts must be >= 0")
        for (ka, ta), (kb, tb), (_, wa), (_, wb) in zip(th, th[1:], win, win[1:], strict=False):
            if tb < ta or wb > wa or (tb == ta and wb == wa):
                raise ValueError(
                    f"levels must be nested: {kb} needs an amount >= {ka}'s and a window <= {ka}'s, and must "
                    f"differ in one (found {ka}={_fmt(ta)} in {_fmt(wa)} h, {kb}={_fmt(tb)} in {_fmt(wb)} h)")
        if self.unit is not None and self.unit != self.graded_unit():
            raise ValueError(f"unit: amounts are written in {self.graded_unit()!r} (found {self.unit!r})")

    def graded_unit(self) -> str:
        u = self.quantity_unit()
        return u.removesuffix("/h") if u else ""

    def _to_si(self, x: float) -> float:
        return x

    def _delta_to_si(self, x: float) -> float:
        return x

    def windows_ms(self) -> np.ndarray:
        """Four windows (blue..red), int64 ms."""
        return (self.windows_h.filled_s() * 1000.0).round().astype(np.int64)

    def levels_text(self) -> str:
        u = self.graded_unit()
        w = dict(self.windows_h.given())
        return " / ".join(f"{_fmt(v)} {u} in {_fmt(w[k])} h" for k, v in self.thresholds.given())

    def _explain_body(self) -> list[str]:
        u = self.graded_unit()
        w = dict(self.windows_h.given())
        lines = [f"Watches {self.select.describe()}.",
                 f"Grades the rolling accumulation A_W(t) = C(t) - C(t - W) over each level's sliding window W, "
                 f"C being the cumulative amount ({u}) from the intensity readings (intensity x time since the "
                 f"previous reading; negative readings count as 0):"]
        for k, v in reversed(self.thresholds.given()):
            lvl = WarningLevel.from_severity(LEVEL_NAMES.index(k) + 1)
            lines.append(f"  {lvl.describe():18s} when >= {_fmt(v)} {u} fell in the last {_fmt(w[k])} h")
        lines.append(f"A reading more than {_fmt(self.max_gap_s)} s after the previous one adds nothing (rain in a gap "
                     "is unknown); after the last reading the windows slide on with the clock (tick).")
        if self.hysteresis:
            lines.append(f"A level is left when its accumulation is back below its amount by more than "
                         f"{_fmt(self.hysteresis)} {u} (hysteresis).")
        if self.for_s:
            lines.append(f"The condition must hold {_fmt(self.for_s)} s before the alarm fires.")
        else:
            lines.append("The alarm fires as soon as an amount is reached.")
        return lines

    def parameters(self) -> list[Parameter]:
        u = self.graded_unit()
        w = dict(self.windows_h.given())
        ps = []
        for k, v in self.thresholds.given():
            lvl = WarningLevel.from_severity(LEVEL_NAMES.index(k) + 1)
            ps.append(Parameter(f"thresholds.{k}", v, u, f"{lvl.describe()} amount"))
            ps.append(Parameter(f"windows_h.{k}", w[k], "h", f"{lvl.describe()} sliding window"))
        ps.append(Parameter("hysteresis", self.hysteresis, u, "dead band to leave a level"))
        ps.append(Parameter("for_s", self.for_s, "s", "minimum duration before firing"))
        ps.append(Parameter("max_gap_s", self.max_gap_s, "s", "longest interval between readings that is counted"))
        return ps


# -- composite models --------------------------------------------------------------------------------
class Condition(_Part):
    """A condition on the latest reading of related sensors of ``quantity``:
    ``same_asset`` (a sensor on the same asset), ``nearest`` (the nearest such sensor),
    ``within_m`` (any such sensor within ``within_m`` m) or ``any`` (any such sensor in the
    city). Readings older than ``max_age_s`` do not count."""

    quantity: str
    scope: Literal["same_asset", "nearest", "within_m", "any"] = "nearest"
    within_m: float | None = Field(default=None, gt=0)
    op: Literal[">=", ">", "<=", "<"] = ">="
    value: float
    unit: str | None = None
    max_age_s: float = Field(default=3600.0, gt=0)

    @field_validator("quantity")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in QUANTITIES:
            raise ValueError(f"unknown quantity {v!r}; expected one of {', '.join(QUANTITIES)}")
        return v

    @model_validator(mode="after")
    def _scope(self) -> Condition:
        if self.scope == "within_m" and self.within_m is None:
            raise ValueError("scope within_m needs within_m (metres)")
        if self.unit is not None:
            try:
                su = si_unit(self.unit)
            except UnknownUnitError as e:
                raise ValueError(f"unit: {e}") from None
            if su != QUANTITIES[self.quantity].unit:
                raise ValueError(f"unit: {self.unit!r} is not a unit of {self.quantity} ({QUANTITIES[self.quantity].unit})")
        return self

    def si_value(self) -> float:
        return to_si(self.value, self.unit) if self.unit else self.value

    def describe(self) -> str:
        where = {"same_asset": "on the same asset", "nearest": "at the nearest gauge",
                 "within_m": f"within {_fmt(self.within_m or 0)} m", "any": "anywhere in the city"}[self.scope]
        u = self.unit or QUANTITIES[self.quantity].unit
        return f"{self.quantity} {where} {self.op} {_fmt(self.value)} {u} (readings up to {_fmt(self.max_age_s)} s old)"


class RaiseRule(_Part):
    """Raise the graded level by ``levels`` (capped at red) while ``when`` holds."""

    when: Condition
    levels: int = Field(default=1, ge=1, le=3)


@register_kind
class CompositeSpec(GradedSpec):
    """Cross-domain coupling: graded thresholds on the selected sensors that count only
    while every ``require`` condition holds, raised by ``raise`` rules while theirs hold
    (methane in a manhole next to a gas main, raised a level during heavy rain; bridge
    strain while heavy traffic is measured)."""

    summary: ClassVar[str] = "graded thresholds coupled with conditions on related sensors"
    kind: Literal["composite"] = "composite"
    require: list[Condition] = Field(default_factory=list)
    raise_: list[RaiseRule] = Field(default_factory=list, alias="raise")
    value_name: ClassVar[str] = "reading"

    @model_validator(mode="after")
    def _coupled(self) -> CompositeSpec:
        if not self.require and not self.raise_:
            raise ValueError("a composite model needs at least one require or raise condition (else use kind threshold)")
        return self

    def _explain_body(self) -> list[str]:
        body = super()._explain_body()
        for c in self.require:
            body.append(f"Counts only while {c.describe()}.")
        for r in self.raise_:
            body.append(f"Raised {r.levels} level(s) (towards red) while {r.when.describe()}.")
        return body

    def parameters(self) -> list[Parameter]:
        ps = super().parameters()
        for i, c in enumerate(self.require):
            ps.append(Parameter(f"require[{i}]", f"{c.quantity} {c.op} {_fmt(c.value)} ({c.scope})",
                                c.unit or QUANTITIES[c.quantity].unit, "condition that must hold"))
        for i, r in enumerate(self.raise_):
            c = r.when
            ps.append(Parameter(f"raise[{i}]", f"+{r.levels} when {c.quantity} {c.op} {_fmt(c.value)} ({c.scope})",
                                c.unit or QUANTITIES[c.quantity].unit, "condition that raises the level"))
        return ps


@register_kind
class ClusterSpec(GradedSpec):
    """Fold several adjacent alarms of another model into one: the firing alarms of
    ``of_model`` whose sensors lie within ``within_m`` metres of each other (single
    linkage) form a cluster; the cluster is graded on its member count (a suspected main
    break from several adjacent low-pressure alarms). Its identity is the asset of the
    member that started it; its details list the members (used by inhibition)."""

    summary: ClassVar[str] = "several adjacent alarms of another model folded into one"
    kind: Literal["cluster"] = "cluster"
    of_model: str
    within_m: float = Field(gt=0)
    value_name: ClassVar[str] = "number of adjacent firing alarms"

    def graded_unit(self) -> str:
        return "1"

    def references(self) -> list[str]:
        return [self.of_model]

    @model_validator(mode="after")
    def _counts(self) -> ClusterSpec:
        if self.direction != "high":
            raise ValueError("direction: a cluster grades a member count: use high")
        if any(v < 1 for _, v in self.thresholds.given()):
            raise ValueError("thresholds: member counts must be >= 1")
        return self

    def _explain_body(self) -> list[str]:
        body = super()._explain_body()
        body[0] = (f"Watches the firing alarms of model {self.of_model!r}; alarms whose sensors lie within "
                   f"{_fmt(self.within_m)} m of each other form one cluster.")
        return body

    def parameters(self) -> list[Parameter]:
        return [Parameter("of_model", self.of_model, "", "model whose alarms are folded"),
                Parameter("within_m", self.within_m, "m", "linkage distance between member sensors"),
                *super().parameters()]


# -- alarm policy as data -------------------------------------------------------------------------------
class InhibitRule(_Part):
    """While an alarm of ``source`` fires (at ``min_level`` or more severe), alarms of
    ``target`` are muted on assets in its scope: ``members`` (the assets the source alarm
    lists, a cluster's members), ``same_asset``, ``within_m`` (target within ``within_m``
    metres of the source), ``downstream`` (assets the source's asset supplies, resolved by
    a callable given to the alarm book)."""

    source: str
    target: str
    scope: Literal["members", "same_asset", "within_m", "downstream"] = "members"
    within_m: float | None = Field(default=None, gt=0)
    min_level: int = Field(default=4, ge=1, le=4, description="national level: 4 = blue or worse")

    @model_validator(mode="after")
    def _scope(self) -> InhibitRule:
        if self.scope == "within_m" and self.within_m is None:
            raise ValueError("scope within_m needs within_m (metres)")
        return self


class Matcher(_Part):
    """Glob patterns (fnmatch) on an alarm's model, asset and network; all given must match."""

    model: str | None = None
    asset: str | None = None
    network: str | None = None


class SilenceRule(_Part):
    """A silence or a maintenance window: alarms matching ``matchers`` (any of them) are
    muted from ``start_ms`` to ``end_ms`` (ms since epoch UTC)."""

    id: str
    matchers: list[Matcher] = Field(min_length=1)
    start_ms: int
    end_ms: int
    kind: Literal["silence", "maintenance"] = "silence"
    created_by: str = ""
    comment: str = ""

    @model_validator(mode="after")
    def _order(self) -> SilenceRule:
        if not self.start_ms < self.end_ms:
            raise ValueError(f"start_ms ({self.start_ms}) must be before end_ms ({self.end_ms})")
        return self


class GroupingRule(_Part):
    """Alarms fold into one incident candidate when they fire within ``window_s`` of the
    candidate's last alarm, and are near: within ``distance_m`` of a member, or (if
    ``same_jurisdiction``) in the same jurisdiction code; with ``same_network`` the networks
    must match too."""

    window_s: float = Field(default=1800.0, gt=0)
    distance_m: float = Field(default=800.0, ge=0)
    same_network: bool = True
    same_jurisdiction: bool = True


# -- loading -------------------------------------------------------------------------------------------
def _format_validation(err: ValidationError, origin: str, name: str) -> str:
    lines = [f"{origin}: model {name!r} is not valid:"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"] if x not in KINDS)
        msg = str(e["msg"]).removeprefix("Value error, ")
        inp = e.get("input")
        found = "" if isinstance(inp, dict) or e["type"] == "value_error" else f" (found {inp!r})"
        lines.append(f"  {loc or 'model'}: {msg}{found}")
    return "\n".join(lines)


def parse_model(data: Any, origin: str = "<memory>") -> ModelSpec:
    """One model spec from a mapping, validated; errors name the origin and the model."""
    if not isinstance(data, dict):
        raise SpecError(f"{origin}: each model must be a mapping, found {type(data).__name__}")
    name = str(data.get("name", "?"))
    kind = data.get("kind")
    cls = KINDS.get(str(kind))
    if cls is None:
        raise SpecError(f"{origin}: model {name!r}: kind: unknown kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    try:
        spec = cls.model_validate({**data, "origin": origin})
    except ValidationError as e:
        raise SpecError(_format_validation(e, origin, name)) from None
    return spec


@dataclass
class Catalogue:
    """Warning models and the alarm policy (inhibition rules, grouping), from YAML files."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    inhibit: list[InhibitRule] = field(default_factory=list)
    grouping: GroupingRule = field(default_factory=GroupingRule)
    files: list[str] = field(default_factory=list)

    def enabled(self) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.enabled]

    def rows(self) -> list[dict[str, str]]:
        """One row per model for ``rescity models list``."""
        out = []
        for m in self.models.values():
            levels = ""
            if isinstance(m, GradedSpec):
                levels = m.levels_text()
            out.append({"name": m.name, "kind": m.kind, "title": m.title or m.summary,
                        "selects": m.select.describe(), "thresholds": levels,
                        "enabled": "yes" if m.enabled else "no"})
        return out


_TOP_KEYS = {"models", "inhibit", "grouping"}


def load_specs(path: str | Path) -> list[ModelSpec]:
    """The models of one YAML file (a ``models:`` list)."""
    cat = Catalogue()
    _load_into(cat, Path(path))
    return list(cat.models.values())


def _load_into(cat: Catalogue, path: Path) -> None:
    origin = str(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(f"{origin}: not valid YAML: {e}") from None
    if doc is None:
        return
    if not isinstance(doc, dict):
        raise SpecError(f"{origin}: expected a mapping with 'models' (and optionally 'inhibit', 'grouping')")
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise SpecError(f"{origin}: unknown top-level key(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_TOP_KEYS))}")
    models = doc.get("models") or []
    if not isinstance(models, list):
        raise SpecError(f"{origin}: 'models' must be a list")
    for data in models:
        spec = parse_model(data, origin)
        prev = cat.models.get(spec.name)
        if prev is not None:
            raise SpecError(f"{origin}: model {spec.name!r} is already declared in {prev.origin}")
        cat.models[spec.name] = spec
    for i, rule in enumerate(doc.get("inhibit") or []):
        try:
            cat.inhibit.append(InhibitRule.model_validate(rule))
        except ValidationError as e:
            raise SpecError(_format_validation(e, origin, f"inhibit[{i}]").replace("model 'inhibit", "rule 'inhibit")) from None
    if "grouping" in doc:
        try:
            cat.grouping = GroupingRule.model_validate(doc["grouping"])
        except ValidationError as e:
            raise SpecError(_format_validation(e, origin, "grouping").replace("model 'grouping'", "grouping")) from None
    cat.files.append(origin)


def default_catalogue_dir() -> Path:
    """The directory of the default catalogue (``rescity/monitor/warning_models``)."""
    return Path(str(resources.files("rescity.monitor") / "warning_models"))


def _load_builtin_kinds() -> None:
    """Import the kinds that live in their own modules (they register themselves)."""
    from . import anomaly_model  # noqa: F401


def load_catalogue(paths: Iterable[str | Path] | None = None) -> Catalogue:
    """Load and cross-check YAML files (directories: every ``*.yaml`` in name order).
    Default: the packaged catalogue of the demo city."""
    _load_builtin_kinds()
    if paths is None:
        paths = [default_catalogue_dir()]
    files: list[Path] = []
    searched: list[str] = []
    for p in paths:
        p = Path(p)
        searched.append(str(p))
        if p.is_dir():
            files.extend(sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")))
        elif p.exists():
            files.append(p)
        else:
            raise SpecError(f"no such warning model file or directory: {p}")
    if not files:
        raise SpecError(f"no warning model files (*.yaml) found in: {', '.join(searched)}")
    cat = Catalogue()
    for f in files:
        _load_into(cat, f)
    for m in cat.models.values():
        for ref in m.references():
            other = cat.models.get(ref)
            if other is None:
                raise SpecError(f"{m.origin}: model {m.name!r}: of_model: unknown model {ref!r}")
            if not isinstance(other, GradedSpec):
                raise SpecError(f"{m.origin}: model {m.name!r}: of_model: {ref!r} is not a graded model")
    for r in cat.inhibit:
        for role, name in (("source", r.source), ("target", r.target)):
            if name not in cat.models:
                raise SpecError(f"inhibit rule {r.source} -> {r.target}: {role}: unknown model {name!r}")
    return cat
