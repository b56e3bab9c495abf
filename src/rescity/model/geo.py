"""Coordinates: WGS84 stored, a projected (metric) CRS for distances, and placement.

Every geometry in the model is in WGS84 (EPSG:4326, lon/lat). Distances and areas
are computed in the city's projected CRS (by default the UTM zone of the city
centre), in metres.

Engineering models (EPANET, SWMM) often use a local Cartesian frame. A
:class:`Placement` puts such a frame on the Earth: either the file's coordinates are
in a known CRS (``source_crs``), or they are local coordinates in ``unit_m`` metres per
unit that a similarity transform (scale, rotation, translation) places with the local
point ``origin`` at the WGS84 ``anchor``. The placement is kept with the network so an
export writes the original coordinates back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import shapely
from pyproj import CRS, Transformer
from shapely.geometry.base import BaseGeometry

WGS84 = "EPSG:4326"


EARTH_RADIUS_M = 6371008.8
"""Mean Earth radius (m) of the local distance below."""


def local_distance_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Equirectangular distance in metres between two WGS84 points, exact enough within
    a city: d = R sqrt((dlon cos(mean lat))^2 + dlat^2), angles in radians."""
    k = math.pi / 180.0
    x = (lon2 - lon1) * k * math.cos((lat1 + lat2) / 2.0 * k)
    return EARTH_RADIUS_M * math.hypot(x, (lat2 - lat1) * k)


def utm_crs_for(lon: float, lat: float) -> str:
    """The UTM zone (as ``EPSG:326xx``/``EPSG:327xx``) that contains ``lon``, ``lat``."""
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
        raise ValueError(f"not a WGS84 position: lon={lon}, lat={lat}")
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


@lru_cache(maxsize=64)
def transformer(src: str, dst: str) -> Transformer:
    """A cached always-xy pyproj transformer."""
    return Transformer.from_crs(CRS.from_user_input(src), CRS.from_user_input(dst), always_xy=True)


def transform_geometry(geom: BaseGeometry, src: str, dst: str) -> BaseGeometry:
    """Reproject a shapely geometry (all coordinates at once, vectorised)."""
    if src == dst:
        return geom
    t = transformer(src, dst)

    def _xy(coords: np.ndarray) -> np.ndarray:
        x, y = t.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, _xy)


def project(geom: BaseGeometry, crs: str) -> BaseGeometry:
    """WGS84 -> ``crs`` (metres)."""
    return transform_geometry(geom, WGS84, crs)


def project_many(geoms: list[BaseGeometry], crs: str) -> np.ndarray:
    """WGS84 -> ``crs`` for many geometries at once; returns an object array."""
    arr = np.empty(len(geoms), dtype=object)
    arr[:] = geoms
    if len(arr) == 0:
        return arr
    return np.asarray(transform_geometry(arr, WGS84, crs), dtype=object)  # type: ignore[arg-type]


def unproject(geom: BaseGeometry, crs: str) -> BaseGeometry:
    """``crs`` -> WGS84."""
    return transform_geometry(geom, crs, WGS84)


def looks_like_lonlat(xy: np.ndarray) -> bool:
    """True when every coordinate pair lies in the WGS84 lon/lat ranges."""
    if xy.size == 0:
        return True
    return bool(
        np.all(np.abs(xy[:, 0]) <= 180.0) and np.all(np.abs(xy[:, 1]) <= 90.0)
    )


@dataclass(frozen=True, slots=True)
class Placement:
    """How a network's file coordinates map to WGS84.

    Two modes:

    * ``source_crs`` set, ``anchor`` unset: file coordinates are in that CRS and are
      reprojected as they are.
    * ``anchor`` set: file coordinates (in ``source_crs`` if given, else local Cartesian
      with ``unit_m`` metres per unit) are moved so that ``origin`` lands on
      ``anchor`` (lon, lat), after a uniform ``scale`` and a counter-clockwise
      ``rotation_deg`` about ``origin``. Offsets from the origin are taken in metres
      (``unit_m`` per local unit, or the UTM zone of the origin for a ``source_crs``)
      and laid out in the UTM zone of the anchor.

    The default (no CRS, no anchor) means the coordinates are already lon/lat.
    """

    source_crs: str | None = None
    anchor: tuple[float, float] | None = None
    origin: tuple[float, float] = (0.0, 0.0)
    unit_m: float = 1.0
    scale: float = 1.0
    rotation_deg: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Placement:
        if not d:
            return cls()
        anchor = d.get("anchor")
        return cls(
            source_crs=d.get("source_crs"),
            anchor=tuple(anchor) if anchor is not None else None,  # type: ignore[arg-type]
            origin=tuple(d.get("origin", (0.0, 0.0))),  # type: ignore[arg-type]
            unit_m=float(d.get("unit_m", 1.0)),
            scale=float(d.get("scale", 1.0)),
            rotation_deg=float(d.get("rotation_deg", 0.0)),
        )

    @property
    def is_identity(self) -> bool:
        return self.source_crs in (None, WGS84) and self.anchor is None

    def _work_crs(self) -> str:
        assert self.anchor is not None
        return utm_crs_for(*self.anchor)

    def _source_local_crs(self) -> str:
        assert self.source_crs is not None
        lon, lat = transformer(self.source_crs, WGS84).transform(*self.origin)
        return utm_crs_for(lon, lat)

    def forward_xy(self, xy: np.ndarray) -> np.ndarray:
        """File coordinates (N x 2) -> WGS84 lon/lat (N x 2)."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        if self.anchor is None:
            if self.source_crs in (None, WGS84):
                return xy.copy()
            x, y = transformer(self.source_crs, WGS84).transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])
        work = self._work_crs()
        if self.source_crs is not None:
            # metres about the origin, in the UTM zone of the origin (not of the anchor:
            # the source may lie far away from where it is placed)
            local_crs = self._source_local_crs()
            x, y = transformer(self.source_crs, local_crs).transform(xy[:, 0], xy[:, 1])
            ox, oy = transformer(self.source_crs, local_crs).transform(*self.origin)
            local = np.column_stack([x - ox, y - oy])
        else:
            local = (xy - np.asarray(self.origin)) * self.unit_m
        c, s = math.cos(math.radians(self.rotation_deg)), math.sin(math.radians(self.rotation_deg))
        rot = local @ np.array([[c, s], [-s, c]]) * self.scale
        ax, ay = transformer(WGS84, work).transform(*self.anchor)
        x, y = transformer(work, WGS84).transform(rot[:, 0] + ax, rot[:, 1] + ay)
        return np.column_stack([x, y])

    def inverse_xy(self, lonlat: np.ndarray) -> np.ndarray:
        """WGS84 lon/lat (N x 2) -> file coordinates (N x 2)."""
        ll = np.asarray(lonlat, dtype=float).reshape(-1, 2)
        if self.anchor is None:
            if self.source_crs in (None, WGS84):
                return ll.copy()
            x, y = transformer(WGS84, self.source_crs).transform(ll[:, 0], ll[:, 1])
            return np.column_stack([x, y])
        work = self._work_crs()
        ax, ay = transformer(WGS84, work).transform(*self.anchor)
        x, y = transformer(WGS84, work).transform(ll[:, 0], ll[:, 1])
        rot = np.column_stack([x - ax, y - ay]) / self.scale
        c, s = math.cos(math.radians(self.rotation_deg)), math.sin(math.radians(self.rotation_deg))
        local = rot @ np.array([[c, -s], [s, c]])
        if self.source_crs is not None:
            local_crs = self._source_local_crs()
            ox, oy = transformer(self.source_crs, local_crs).transform(*self.origin)
            x, y = transformer(local_crs, self.source_crs).transform(
                local[:, 0] + ox, local[:, 1] + oy
            )
            return np.column_stack([x, y])
        return local / self.unit_m + np.asarray(self.origin)

    def forward(self, geom: BaseGeometry) -> BaseGeometry:
        """Place a geometry given in file coordinates."""
        return shapely.transform(geom, self.forward_xy)

    def inverse(self, geom: BaseGeometry) -> BaseGeometry:
        """Back from WGS84 to file coordinates."""
        return shapely.transform(geom, self.inverse_xy)
