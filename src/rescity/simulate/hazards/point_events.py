"""Point events: a pipe burst or leak, a power outage, a gas leak.

Each names the asset it hits by its uid (``network:id``) and is checked against a
:class:`~rescity.model.City` by :meth:`check_city`: an unknown or wrong-kind asset is
an error that says so ("unknown pipe 'x' in network 'water'").

The leak of a pipe follows the orifice equation WNTR uses for leaks,
Q = Cd · A · sqrt(2 g h) (m³/s; A in m², h the pressure head in m, g = 9.81 m/s²).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from rescity.model import City, NetworkType, split_uid

from .base import HazardError, HazardSpec

#: link kinds a burst may hit, by network type
PIPE_KINDS = {
    NetworkType.WATER: {"pipe"},
    NetworkType.GAS: {"main", "pipe", "service"},
    NetworkType.DRAINAGE: {"conduit"},
}
SUBSTATION_KINDS = {"substation", "distribution_substation", "bus", "grid_supply"}
FEEDER_KINDS = {"line", "transformer"}


def _split(field: str, uid: str) -> tuple[str, str]:
    try:
        return split_uid(uid)
    except ValueError:
        raise ValueError(f"{field} must be an asset uid 'network:id', got {uid!r}") from None


class PipeBurst(HazardSpec):
    """A burst (``mode='break'``: the full bore opens) or a leak (``mode='leak'``) at a pipe.

    ``leak_area_m2`` is the opening (m²); for a break it defaults to the pipe's bore
    π d²/4, for a leak it is required. ``discharge_coeff`` Cd (WNTR's default 0.75).
    ``start_s`` is when it starts (s from the scenario start); ``duration_s`` None means
    until repaired."""

    kind: Literal["pipe_burst"] = "pipe_burst"
    pipe: str = Field(description="asset uid of the pipe, e.g. 'water:p1'")
    mode: Literal["break", "leak"] = "break"
    leak_area_m2: float | None = Field(None, gt=0)
    discharge_coeff: float = Field(0.75, gt=0, le=1)
    start_s: float = Field(0.0, ge=0)
    duration_s: float | None = Field(None, gt=0)

    @field_validator("pipe")
    @classmethod
    def _uid(cls, v: str) -> str:
        _split("pipe", v)
        return v

    @model_validator(mode="after")
    def _area(self) -> PipeBurst:
        if self.mode == "leak" and self.leak_area_m2 is None:
            raise ValueError("a leak needs leak_area_m2 (the opening, m²)")
        return self

    def opening_area_m2(self, city: City) -> float:
        """The opening (m²): ``leak_area_m2``, or the bore π d²/4 for a break."""
        if self.leak_area_m2 is not None:
            return self.leak_area_m2
        d = self._link(city).attrs.get("diameter_m")
        if not d:
            raise HazardError(f"pipe {self.pipe!r} has no diameter_m: give leak_area_m2")
        return math.pi * float(d) ** 2 / 4.0

    def discharge_m3s(self, city: City, pressure_head_m: float) -> float:
        """Orifice outflow Q = Cd A sqrt(2 g h) (m³/s) at pressure head ``pressure_head_m`` (m)."""
        if pressure_head_m <= 0:
            return 0.0
        return (
            self.discharge_coeff
            * self.opening_area_m2(city)
            * math.sqrt(2 * 9.81 * pressure_head_m)
        )

    def _link(self, city: City):  # type: ignore[no-untyped-def]
        net_name, eid = split_uid(self.pipe)
        net = city.networks.get(net_name)
        if net is None:
            raise HazardError(
                f"unknown network {net_name!r} (field 'pipe'); the city has "
                f"{', '.join(sorted(city.networks))}"
            )
        kinds = PIPE_KINDS.get(net.type)
        if kinds is None:
            raise HazardError(
                f"network {net_name!r} is a {net.type.value} network, which has no pipes "
                "(field 'pipe')"
            )
        link = net.links.get(eid)
        if link is None or link.kind not in kinds:
            what = f" (it is a {link.kind})" if link is not None else ""
            raise HazardError(f"unknown pipe {eid!r} in network {net_name!r}{what}")
        return link

    def check_city(self, city: City) -> None:
        link = self._link(city)
        if self.leak_area_m2 is not None and link.attrs.get("diameter_m"):
            bore = math.pi * float(link.attrs["diameter_m"]) ** 2 / 4.0
            if self.leak_area_m2 > bore * (1 + 1e-9):
                raise HazardError(
                    f"leak_area_m2 {self.leak_area_m2} is larger than the bore of pipe {self.pipe!r} "
                    f"({bore:.6g} m² for diameter {link.attrs['diameter_m']} m)"
                )


class PowerOutage(HazardSpec):
    """A power outage at a substation (a bus-type node) or a feeder (a line or transformer).

    Exactly one of ``substation`` and ``feeder`` (asset uids). ``duration_s`` None means
    until repaired."""

    kind: Literal["power_outage"] = "power_outage"
    substation: str | None = Field(None, description="asset uid, e.g. 'power:bus_39'")
    feeder: str | None = Field(None, description="asset uid of a line or transformer")
    start_s: float = Field(0.0, ge=0)
    duration_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> PowerOutage:
        if (self.substation is None) == (self.feeder is None):
            raise ValueError("give exactly one of 'substation' and 'feeder'")
        if self.substation is not None:
            _split("substation", self.substation)
        if self.feeder is not None:
            _split("feeder", self.feeder)
        return self

    @property
    def asset(self) -> str:
        """The uid of the asset taken out of service."""
        return self.substation if self.substation is not None else self.feeder  # type: ignore[return-value]

    def check_city(self, city: City) -> None:
        field, kinds = (
            ("substation", SUBSTATION_KINDS) if self.substation else ("feeder", FEEDER_KINDS)
        )
        net_name, eid = split_uid(self.asset)
        net = city.networks.get(net_name)
        if net is None or net.type != NetworkType.POWER:
            raise HazardError(
                f"unknown {field} {eid!r}: {net_name!r} is not a power network of the city"
            )
        el = net.nodes.get(eid) if field == "substation" else net.links.get(eid)
        if el is None or el.kind not in kinds:
            what = f" (it is a {el.kind})" if el is not None else ""
            raise HazardError(f"unknown {field} {eid!r} in network {net_name!r}{what}")


class GasLeak(HazardSpec):
    """Gas escaping at a point (WGS84 lon/lat) at ``release_rate_kg_s`` (kg/s), optionally
    from a named gas main (``pipe``, asset uid). ``max_distance_m`` bounds how far the
    point may lie from the pipe (or, without a pipe, from the nearest gas asset)."""

    kind: Literal["gas_leak"] = "gas_leak"
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    release_rate_kg_s: float = Field(gt=0, le=1000)
    pipe: str | None = None
    start_s: float = Field(0.0, ge=0)
    duration_s: float | None = Field(None, gt=0)
    max_distance_m: float = Field(50.0, gt=0)

    @model_validator(mode="after")
    def _uid(self) -> GasLeak:
        if self.pipe is not None:
            _split("pipe", self.pipe)
        return self

    def check_city(self, city: City) -> None:
        import shapely
        from shapely.geometry import Point

        from rescity.model.geo import project, project_many

        if self.pipe is not None:
            net_name, eid = split_uid(self.pipe)
            net = city.networks.get(net_name)
            link = net.links.get(eid) if net is not None and net.type == NetworkType.GAS else None
            if link is None or link.kind not in PIPE_KINDS[NetworkType.GAS]:
                raise HazardError(f"unknown pipe {eid!r} in network {net_name!r}")
            geoms = [link.geometry]
            what = f"pipe {self.pipe!r}"
        else:
            geoms = [
                e.geometry
                for net in city.networks.values()
                if net.type == NetworkType.GAS
                for e in net.elements()
            ]
            if not geoms:
                raise HazardError("the city has no gas network for a gas leak")
            what = "the nearest gas asset"
        p = project(Point(self.lon, self.lat), city.crs)
        dist = float(np.min(shapely.distance(project_many(geoms, city.crs), p)))
        if dist > self.max_distance_m:
            raise HazardError(
                f"gas leak at ({self.lon}, {self.lat}) is {dist:.0f} m from {what}; "
                f"at most {self.max_distance_m:g} m is allowed (field 'max_distance_m')"
            )
