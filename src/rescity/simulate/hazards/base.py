"""What every hazard spec shares: the error type, the base model and asset positions.

A hazard is declared as data (a pydantic model with a ``kind`` field), validated on
its own (ranges, units) and then against a :class:`~rescity.model.City` (the assets it
names exist, its place lies in the city). Errors name the field and say what was
expected and what was found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from pyproj import Geod
from shapely.geometry import LineString, Point

from rescity.model import City, split_uid

#: the WGS84 ellipsoid; distances on it are geodesic, in metres
GEOD = Geod(ellps="WGS84")


class HazardError(ValueError):
    """A hazard spec that is invalid, or that does not fit the city it is run on."""


class HazardSpec(BaseModel):
    """Base of every hazard spec: strict fields (an unknown key is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str

    def check_city(self, city: City) -> None:
        """Raise :class:`HazardError` when the hazard does not fit ``city``.

        The base spec names no asset and has no place; subclasses override this."""


def format_validation_error(exc: ValidationError, what: str = "scenario") -> str:
    """One line per problem, each naming the field: ``scenario field 'magnitude': ...``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        got = err.get("input")
        if err["type"] in ("missing",):
            lines.append(f"{what} field {loc!r}: required field is missing")
        elif err["type"] == "extra_forbidden":
            lines.append(f"{what} field {loc!r}: unknown field")
        elif "got" in msg:
            lines.append(f"{what} field {loc!r}: {msg}")
        else:
            lines.append(f"{what} field {loc!r}: {msg} (got {got!r})")
    return "; ".join(lines)


def geodesic_distance_m(lon0: float, lat0: float, lon: Any, lat: Any) -> np.ndarray:
    """Geodesic distance on the WGS84 ellipsoid from (lon0, lat0) to each point (m)."""
    lon_a = np.atleast_1d(np.asarray(lon, dtype=float))
    lat_a = np.atleast_1d(np.asarray(lat, dtype=float))
    if lon_a.shape != lat_a.shape:
        raise HazardError(f"lon and lat differ in shape: {lon_a.shape} vs {lat_a.shape}")
    if lon_a.size == 0:
        return np.zeros(lon_a.shape)
    _, _, dist = GEOD.inv(np.full(lon_a.shape, lon0), np.full(lat_a.shape, lat0), lon_a, lat_a)
    return np.asarray(dist, dtype=float)


def asset_positions(city: City, uids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) arrays of where each asset feels a hazard: a node's point, a link's
    midpoint (half way along its WGS84 line), a facility's point or centroid."""
    lon = np.empty(len(uids))
    lat = np.empty(len(uids))
    for i, uid in enumerate(uids):
        a = city.asset(uid)
        if a is None:
            net, eid = split_uid(uid)
            raise HazardError(f"unknown asset {eid!r} in network {net!r}")
        g = a.geometry
        if isinstance(g, LineString):
            p = g.interpolate(0.5, normalized=True)
        elif isinstance(g, Point):
            p = g
        else:
            p = g.centroid
        lon[i], lat[i] = p.x, p.y
    return lon, lat
