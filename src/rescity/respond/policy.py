"""The response policy as data: units, routing rules, the escalation ladder, deadlines.

Loaded from YAML (default: ``respond/config/response.yaml``; a city points
``$RESCITY_RESPONSE_CONFIG`` at its own) and validated by pydantic; a bad file raises
:class:`PolicyError` naming the file and the field.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rescity.model import Jurisdiction, JurisdictionLevel
from rescity.model.datafile import load_yaml_model
from rescity.model.incident import Tier
from rescity.model.levels import LEVEL_NAMES, WarningLevel

DEFAULT_POLICY = Path(__file__).resolve().parent / "config" / "response.yaml"
ENV_POLICY = "RESCITY_RESPONSE_CONFIG"


class PolicyError(ValueError):
    """A response policy file that cannot be used (names the file and the field)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitSpec(_Strict):
    """A unit, or a template expanded over jurisdictions (``per``)."""

    id: str
    kind: str
    tier: Tier
    name: str
    name_zh: str = ""
    per: JurisdictionLevel | None = None
    networks: tuple[str, ...] = ()

    @field_validator("per")
    @classmethod
    def _per(cls, v: JurisdictionLevel | None) -> JurisdictionLevel | None:
        if v == JurisdictionLevel.GRID:
            raise ValueError("units are per district or per street, not per grid cell")
        return v


class Unit(_Strict):
    """A responsible unit (责任单位): a company, a department, a station, a team.
    ``jurisdiction`` is the code it covers (None: the whole city)."""

    id: str
    kind: str
    tier: Tier
    name: str
    name_zh: str = ""
    jurisdiction: str | None = None
    networks: tuple[str, ...] = ()


class Route(_Strict):
    name: str
    networks: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    jurisdictions: tuple[str, ...] = ()
    levels: tuple[int, ...] = ()
    units: tuple[str, ...] = Field(min_length=1)

    @field_validator("levels", mode="before")
    @classmethod
    def _levels(cls, v: Any) -> Any:
        return tuple(int(WarningLevel.parse(x)) for x in (v or ()))


class TypeRule(_Strict):
    """Alarm models -> incident type; ``level`` caps how severe the incident may be
    (data-quality alarms open blue maintenance incidents, whatever the alarm's level)."""

    models: tuple[str, ...] = Field(min_length=1)
    type: str
    level: int | None = Field(default=None, ge=1, le=4)


class Deadline(_Strict):
    """Seconds from the dispatch at the current tier (for a new incident: its creation)."""

    acknowledge_s: float = Field(gt=0)
    arrive_s: float = Field(gt=0)
    resolve_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _order(self) -> Deadline:
        if not self.acknowledge_s <= self.arrive_s <= self.resolve_s:
            raise ValueError("deadlines must satisfy acknowledge_s <= arrive_s <= resolve_s")
        return self


class HazardRule(_Strict):
    types: tuple[str, ...] = Field(min_length=1)
    hazard: str


class Texts(_Strict):
    en: str
    zh: str


class Publication(_Strict):
    """How public warnings are signed and worded (see :mod:`rescity.service.publication`)."""

    sender: str = Field(default="rescity", pattern=r"^[^\s,<&]+$")
    sender_name: str = "ResCity"
    sender_name_zh: str = "韧城"
    sector_code: str = Field(default="000", pattern=r"^[0-9]{3}$")
    unit_code: str = Field(default="000", pattern=r"^[0-9]{3}$")
    area_level: JurisdictionLevel = JurisdictionLevel.STREET
    expires_h: dict[str, float] = Field(default_factory=lambda: {c: 24.0 for c in LEVEL_NAMES})
    hazards: tuple[HazardRule, ...] = ()
    instructions: dict[str, Texts] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Publication:
        if "default" not in self.instructions:
            raise ValueError("instructions: a 'default' entry is needed")
        missing = [c for c in LEVEL_NAMES if c not in self.expires_h]
        if missing:
            raise ValueError(f"expires_h: missing level(s) {', '.join(missing)}")
        return self


class Policy(_Strict):
    units: tuple[UnitSpec, ...]
    routes: tuple[Route, ...] = Field(min_length=1)
    escalation: dict[Tier, tuple[str, ...]]
    deadlines: dict[str, Deadline]
    type_deadlines: dict[str, Deadline] = Field(default_factory=dict)
    incident_types: tuple[TypeRule, ...] = ()
    auto_incident_level: int = 3
    report_dedup_m: float = Field(default=150.0, ge=0)
    report_dedup_s: float = Field(default=86400.0, ge=0)
    publication: Publication = Field(default_factory=lambda: Publication(
        instructions={"default": Texts(en="Follow the instructions of the authorities.",
                                       zh="请听从有关部门指挥。")}))

    @model_validator(mode="after")
    def _check(self) -> Policy:
        missing = [c for c in LEVEL_NAMES if c not in self.deadlines]
        if missing:
            raise ValueError(f"deadlines: missing level(s) {', '.join(missing)}")
        extra = [c for c in self.deadlines if c not in LEVEL_NAMES]
        if extra:
            raise ValueError(f"deadlines: unknown level(s) {', '.join(extra)}; use {', '.join(LEVEL_NAMES)}")
        kinds = {u.kind for u in self.units}
        for r in self.routes:
            for k in r.units:
                if k not in kinds:
                    raise ValueError(f"route {r.name!r}: unknown unit kind {k!r}")
        for tier, ks in self.escalation.items():
            for k in ks:
                if k not in kinds:
                    raise ValueError(f"escalation {tier.value}: unknown unit kind {k!r}")
        ids = [u.id for u in self.units]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"units: duplicate id(s) {', '.join(sorted(dup))}")
        return self

    def incident_type(self, model: str) -> tuple[str, int | None]:
        """The incident type of an alarm of ``model`` and the most severe level such an
        incident may have (``incident_types``; else the model's name and no cap)."""
        from fnmatch import fnmatchcase

        for r in self.incident_types:
            if any(fnmatchcase(model, p) for p in r.models):
                return r.type, r.level
        return model, None

    def deadline(self, level: int, incident_type: str | None = None) -> Deadline:
        """The deadlines of an incident: its type's own (``type_deadlines``), else its
        level's."""
        if incident_type is not None and incident_type in self.type_deadlines:
            return self.type_deadlines[incident_type]
        return self.deadlines[WarningLevel(level).colour]


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in ``path`` (default ``$RESCITY_RESPONSE_CONFIG``, else the shipped one)."""
    return load_yaml_model(Path(path or os.environ.get(ENV_POLICY) or DEFAULT_POLICY), Policy, PolicyError, "response policy")


def expand_units(policy: Policy, jurisdictions: Iterable[Jurisdiction]) -> dict[str, Unit]:
    """The concrete units of a city: templates expanded over its districts/streets."""
    js = list(jurisdictions)
    out: dict[str, Unit] = {}
    for spec in policy.units:
        if spec.per is None:
            out[spec.id] = Unit(id=spec.id, kind=spec.kind, tier=spec.tier, name=spec.name,
                                name_zh=spec.name_zh, networks=spec.networks)
            continue
        for j in sorted((j for j in js if j.level == spec.per), key=lambda j: j.code):
            fmt = {"code": j.code, "name": j.name, "name_zh": j.name_zh or j.name}
            u = Unit(id=spec.id.format(**fmt), kind=spec.kind, tier=spec.tier,
                     name=spec.name.format(**fmt), name_zh=spec.name_zh.format(**fmt),
                     jurisdiction=j.code, networks=spec.networks)
            out[u.id] = u
    return out
