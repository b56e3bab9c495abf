"""The city: jurisdictions, networks, critical facilities, interdependencies, sensors."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from .enums import DependencyKind, FacilityKind, JurisdictionLevel
from .geo import utm_crs_for
from .network import UID_SEP, Link, Network, Node, split_uid
from .units import QUANTITIES


class ModelError(ValueError):
    """An inconsistent city model."""


@dataclass(slots=True)
class Jurisdiction:
    """A district, a street/town or a grid cell, with its polygon (WGS84).

    ``code`` is unique in the city; ``parent`` is the code of the enclosing
    jurisdiction (None for a district). ``population`` is residents (persons).
    """

    code: str
    name: str
    level: JurisdictionLevel
    geometry: BaseGeometry
    parent: str | None = None
    population: int = 0
    name_zh: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Facility:
    """A critical facility and the population it serves (persons)."""

    id: str
    kind: FacilityKind
    name: str
    geometry: BaseGeometry
    population_served: int = 0
    name_zh: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def uid(self) -> str:
        return f"facility:{self.id}"


@dataclass(frozen=True, slots=True)
class Interdependency:
    """``dependent`` needs ``supporting`` in the way ``kind`` says (asset uids).

    For spatial adjacency the relation is symmetric in fact; we store it from the
    hazard source (the gas pipe, as ``supporting``) to the exposed space (the manhole,
    as ``dependent``). ``distance_m`` is the distance between them in metres.
    """

    dependent: str
    supporting: str
    kind: DependencyKind
    distance_m: float | None = None


@dataclass(slots=True)
class Sensor:
    """A sensor on an asset. ``quantity`` is a key of :data:`rescity.model.units.QUANTITIES`;
    ``low``/``high`` is its physical range in ``unit`` (the quantity's SI unit)."""

    id: str
    asset: str
    quantity: str
    geometry: Point
    unit: str = ""
    low: float = float("nan")
    high: float = float("nan")
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        q = QUANTITIES.get(self.quantity)
        if q is None:
            raise ModelError(
                f"sensor {self.id!r}: unknown quantity {self.quantity!r}; "
                f"expected one of {', '.join(QUANTITIES)}"
            )
        if not self.unit:
            self.unit = q.unit
        elif self.unit != q.unit:
            raise ModelError(
                f"sensor {self.id!r}: unit {self.unit!r} is not the SI unit {q.unit!r} of {q.name}"
            )
        if self.low != self.low:  # NaN: take the quantity's range
            self.low = q.low
        if self.high != self.high:
            self.high = q.high
        if not self.low < self.high:
            raise ModelError(f"sensor {self.id!r}: empty range [{self.low}, {self.high}]")


@dataclass
class City:
    """One city: the single model every part of ResCity shares."""

    name: str
    center: tuple[float, float]
    name_zh: str | None = None
    admin_code: str = "000000"
    crs: str = ""
    jurisdictions: dict[str, Jurisdiction] = field(default_factory=dict)
    networks: dict[str, Network] = field(default_factory=dict)
    facilities: dict[str, Facility] = field(default_factory=dict)
    interdependencies: list[Interdependency] = field(default_factory=list)
    sensors: dict[str, Sensor] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.crs:
            self.crs = utm_crs_for(*self.center)

    # -- building -----------------------------------------------------------------
    def add_network(self, net: Network) -> Network:
        if UID_SEP in net.name or net.name == "facility" or not net.name:
            raise ModelError(
                f"network name {net.name!r} is not allowed: it must be non-empty, contain no "
                f"{UID_SEP!r} and not be 'facility' (names are the first part of asset uids)"
            )
        if net.name in self.networks:
            raise ModelError(f"city {self.name!r} already has a network named {net.name!r}")
        self.networks[net.name] = net
        return net

    def add_jurisdiction(self, j: Jurisdiction) -> Jurisdiction:
        if j.code in self.jurisdictions:
            raise ModelError(f"duplicate jurisdiction code {j.code!r}")
        if j.parent is not None:
            parent = self.jurisdictions.get(j.parent)
            if parent is None:
                raise ModelError(f"jurisdiction {j.code!r}: unknown parent {j.parent!r}")
            if parent.level.child != j.level:
                raise ModelError(
                    f"jurisdiction {j.code!r}: a {j.level.value} cannot sit under a "
                    f"{parent.level.value}"
                )
        elif j.level != JurisdictionLevel.DISTRICT:
            raise ModelError(f"jurisdiction {j.code!r}: a {j.level.value} needs a parent")
        self.jurisdictions[j.code] = j
        return j

    def add_facility(self, f: Facility) -> Facility:
        if f.id in self.facilities:
            raise ModelError(f"duplicate facility id {f.id!r}")
        self.facilities[f.id] = f
        return f

    def add_sensor(self, s: Sensor) -> Sensor:
        if s.id in self.sensors:
            raise ModelError(f"duplicate sensor id {s.id!r}")
        if self.asset(s.asset) is None:
            raise ModelError(f"sensor {s.id!r}: unknown asset {s.asset!r}")
        self.sensors[s.id] = s
        return s

    def add_interdependency(self, d: Interdependency) -> Interdependency:
        for uid in (d.dependent, d.supporting):
            if self.asset(uid) is None:
                raise ModelError(f"interdependency {d}: unknown asset {uid!r}")
        self.interdependencies.append(d)
        return d

    # -- lookup -------------------------------------------------------------------
    def asset(self, uid: str) -> Node | Link | Facility | None:
        """The node, link or facility with this uid, or None."""
        try:
            net, eid = split_uid(uid)
        except ValueError:
            return None
        if net == "facility":
            return self.facilities.get(eid)
        n = self.networks.get(net)
        if n is None:
            return None
        return n.nodes.get(eid) or n.links.get(eid)

    def children(self, code: str) -> list[Jurisdiction]:
        return [j for j in self.jurisdictions.values() if j.parent == code]

    def level(self, level: JurisdictionLevel) -> list[Jurisdiction]:
        return [j for j in self.jurisdictions.values() if j.level == level]

    # -- summary ------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Counts as ``rescity info --json`` prints them."""
        networks: dict[str, dict[str, int]] = {}
        for net in self.networks.values():
            c = networks.setdefault(net.type.value, {"networks": 0, "nodes": 0, "links": 0})
            c["networks"] += 1
            c["nodes"] += len(net.nodes)
            c["links"] += len(net.links)
        return {
            "city": self.name,
            "networks": networks,
            "assets": sum(c["nodes"] + c["links"] for c in networks.values())
            + len(self.facilities),
            "sensors": dict(Counter(s.quantity for s in self.sensors.values())),
            "jurisdictions": dict(Counter(j.level.value for j in self.jurisdictions.values())),
            "interdependencies": dict(Counter(d.kind.value for d in self.interdependencies)),
            "facilities": dict(Counter(f.kind.value for f in self.facilities.values())),
        }
