"""Earthquake: an epicentre, a magnitude and a depth -> ground motion at any points.

Ground motion is computed by the published attenuation relations as WNTR implements
them (``wntr.scenario.Earthquake``); we call WNTR's own functions so the values are
exactly WNTR's. ``R`` is the epicentral distance, computed here as the geodesic
distance on the WGS84 ellipsoid (metres), so assets are addressed by lon/lat.

Peak ground acceleration, PGA (g), with R and the depth D in km, M the magnitude:

* ``kawashima`` — Kawashima et al. (1984): PGA = 403.8 · 10^(0.265 M) · (R + 30)^-1.218 cm/s²
* ``baag`` — Baag et al. (1998): PGA = exp(0.4 + 1.2 M − 0.76 ln Δ − 0.0094 Δ) cm/s²,
  Δ = sqrt(R² + D²)
* ``lee_cho`` — Lee and Cho (2002): PGA = 10^(−1.83 + 0.386 M − log10 R − 0.0015 R) cm/s²
* ``average`` — the mean of the three

converted to g by /100/9.81 (WNTR's g = 9.81 m/s²).

Peak ground velocity, PGV (m/s), Yu and Jin (2008):

* ``yu_jin_rock``: PGV = 10^(−0.848 + 0.775 M − 1.834 log10(R + 17)) cm/s
* ``yu_jin_soil``: PGV = 10^(−0.285 + 0.711 M − 1.851 log10(R + 17)) cm/s
* ``average`` — the mean of the two

Spectral acceleration at 1.0 s, Sa(1.0) (g), which the Hazus bridge fragilities take,
is not given by these relations; we estimate it from PGV with the Newmark and Hall
(1982) median (50th percentile, 5 % damping) velocity amplification 1.65 in the
velocity-sensitive region of the spectrum: Sa(T) = (2π/T) · 1.65 · PGV, T = 1 s, /9.81.
This is an approximation; a site-specific ground-motion model should replace it where
bridges matter.

Limitations (as WNTR's): one scenario event, no site amplification beyond the rock/soil
choice of the PGV relation, no ground-motion variability (the median motion).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import wntr
from pydantic import Field, field_validator

from rescity.model import City

from .base import HazardError, HazardSpec, asset_positions, geodesic_distance_m

PGA_METHODS: dict[str, int | None] = {"kawashima": 1, "baag": 2, "lee_cho": 3, "average": None}
PGV_METHODS: dict[str, int | None] = {"yu_jin_rock": 1, "yu_jin_soil": 2, "average": None}

#: Newmark and Hall (1982) median velocity amplification, 5 % damping
NEWMARK_HALL_VELOCITY_AMPLIFICATION = 1.65
#: WNTR's standard gravity (m/s²), used for every conversion to g here
G_MS2 = 9.81


def repair_rate_ala2001_per_m(
    pgv_ms: Any, c: Any = 1.0, method: Literal["linear", "power"] = "linear"
) -> np.ndarray:
    """ALA (2001) buried-pipe repair rate (repairs per metre), by WNTR's
    ``Earthquake.repair_rate_model``.

    PGV in m/s is converted to in/s (× 100 / 2.54); then ``linear``:
    RR = C · 0.00187 · PGV, or ``power``: RR = C · 0.00108 · PGV^1.173, in repairs per
    1000 ft, converted to per metre by × 3.28 / 1000. ``C`` is the correction factor
    (ALA's K1 for the pipe material and joints; 1 for cast iron)."""
    eq = wntr.scenario.Earthquake((0.0, 0.0), 0.0, 1.0)
    rr = eq.repair_rate_model(
        np.asarray(pgv_ms, dtype=float), C=c, method=1 if method == "linear" else 2
    )
    return np.asarray(rr, dtype=float)


class Earthquake(HazardSpec):
    """A scenario earthquake: epicentre (WGS84 lon/lat, degrees), magnitude, focal depth (km).

    ``pga_model`` and ``pgv_model`` choose the attenuation relations (module docstring).
    ``max_distance_km`` bounds how far the epicentre may lie from the city centre
    (:meth:`check_city`)."""

    kind: Literal["earthquake"] = "earthquake"
    lon: float = Field(description="epicentre longitude, degrees (WGS84)")
    lat: float = Field(description="epicentre latitude, degrees (WGS84)")
    magnitude: float = Field(description="magnitude (Richter, as WNTR's relations)")
    depth_km: float = Field(10.0, description="focal depth, km")
    pga_model: Literal["kawashima", "baag", "lee_cho", "average"] = "kawashima"
    pgv_model: Literal["yu_jin_rock", "yu_jin_soil", "average"] = "average"
    max_distance_km: float = Field(
        300.0, gt=0, description="largest allowed distance from the city centre, km"
    )

    @field_validator("lon")
    @classmethod
    def _lon(cls, v: float) -> float:
        if not (-180.0 <= v <= 180.0) or math.isnan(v):
            raise ValueError(f"longitude must be in [-180, 180] degrees, got {v}")
        return v

    @field_validator("lat")
    @classmethod
    def _lat(cls, v: float) -> float:
        if not (-90.0 <= v <= 90.0) or math.isnan(v):
            raise ValueError(f"latitude must be in [-90, 90] degrees, got {v}")
        return v

    @field_validator("magnitude")
    @classmethod
    def _magnitude(cls, v: float) -> float:
        if math.isnan(v) or v < 0:
            raise ValueError(f"magnitude must not be negative, got {v}")
        if v > 10:
            raise ValueError(f"magnitude must be at most 10, got {v}")
        return v

    @field_validator("depth_km")
    @classmethod
    def _depth(cls, v: float) -> float:
        if math.isnan(v) or v <= 0:
            raise ValueError(f"depth_km must be positive (km below the surface), got {v}")
        if v > 700:
            raise ValueError(f"depth_km must be at most 700 km (deepest earthquakes), got {v}")
        return v

    # -- the WNTR model ---------------------------------------------------------------
    def _wntr(self) -> Any:
        # WNTR's epicentre is in the network's metric frame; we pass distances directly
        return wntr.scenario.Earthquake((0.0, 0.0), self.magnitude, self.depth_km * 1000.0)

    def distance_m(self, lon: Any, lat: Any) -> np.ndarray:
        """Epicentral distance R (m): geodesic, WGS84 ellipsoid."""
        return geodesic_distance_m(self.lon, self.lat, lon, lat)

    def pga_g_at_distance(self, r_m: Any, model: str | None = None) -> np.ndarray:
        """PGA (g) at epicentral distances ``r_m`` (m), by WNTR's ``pga_attenuation_model``."""
        m = model or self.pga_model
        if m not in PGA_METHODS:
            raise HazardError(f"unknown PGA model {m!r}; expected one of {', '.join(PGA_METHODS)}")
        r = np.asarray(r_m, dtype=float)
        return np.asarray(self._wntr().pga_attenuation_model(r, method=PGA_METHODS[m]), dtype=float)

    def pgv_ms_at_distance(self, r_m: Any, model: str | None = None) -> np.ndarray:
        """PGV (m/s) at epicentral distances ``r_m`` (m), by WNTR's ``pgv_attenuation_model``."""
        m = model or self.pgv_model
        if m not in PGV_METHODS:
            raise HazardError(f"unknown PGV model {m!r}; expected one of {', '.join(PGV_METHODS)}")
        r = np.asarray(r_m, dtype=float)
        return np.asarray(self._wntr().pgv_attenuation_model(r, method=PGV_METHODS[m]), dtype=float)

    def pga_g(self, lon: Any, lat: Any) -> np.ndarray:
        """PGA (g) at points (arrays of lon/lat, degrees)."""
        return self.pga_g_at_distance(self.distance_m(lon, lat))

    def pgv_ms(self, lon: Any, lat: Any) -> np.ndarray:
        """PGV (m/s) at points (arrays of lon/lat, degrees)."""
        return self.pgv_ms_at_distance(self.distance_m(lon, lat))

    def intensities(self, lon: Any, lat: Any) -> dict[str, np.ndarray]:
        """The intensity measures the fragility curves take, at points:
        ``distance_m`` (m), ``pga_g`` (g), ``pgv_ms`` (m/s), ``pgv_cms`` (cm/s) and
        ``sa1_g`` (g, Sa(1.0 s) by Newmark-Hall from PGV)."""
        r = self.distance_m(lon, lat)
        pgv = self.pgv_ms_at_distance(r)
        return {
            "distance_m": r,
            "pga_g": self.pga_g_at_distance(r),
            "pgv_ms": pgv,
            "pgv_cms": pgv * 100.0,
            "sa1_g": 2.0 * math.pi * NEWMARK_HALL_VELOCITY_AMPLIFICATION * pgv / G_MS2,
        }

    def at_assets(self, city: City, uids: list[str]) -> dict[str, np.ndarray]:
        """:meth:`intensities` at the assets ``uids`` of ``city`` (node points, link midpoints)."""
        lon, lat = asset_positions(city, uids)
        return self.intensities(lon, lat)

    def check_city(self, city: City) -> None:
        """Reject an epicentre farther than ``max_distance_km`` from the city centre."""
        d_km = (
            float(geodesic_distance_m(city.center[0], city.center[1], self.lon, self.lat)[0])
            / 1000.0
        )
        if d_km > self.max_distance_km:
            raise HazardError(
                f"epicentre far outside the city: ({self.lon}, {self.lat}) is {d_km:.1f} km from "
                f"the centre of {city.name!r} {city.center}; at most {self.max_distance_km:g} km "
                "is allowed (field 'max_distance_km')"
            )
