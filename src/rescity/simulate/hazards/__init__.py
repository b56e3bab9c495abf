"""Hazards as data (pydantic specs with a ``kind``): earthquake, rainstorm, pipe burst,
power outage, gas leak; ``load_scenario`` reads one from YAML/JSON."""

from .base import HazardError, HazardSpec, asset_positions, geodesic_distance_m
from .earthquake import Earthquake, repair_rate_ala2001_per_m
from .point_events import GasLeak, PipeBurst, PowerOutage
from .rainstorm import Hyetograph, IDFCurve, MeasuredSeries, Rainstorm, alternating_block, chicago
from .scenario import HAZARD_KINDS, Hazard, load_scenario

__all__ = [
    "HAZARD_KINDS",
    "Earthquake",
    "GasLeak",
    "Hazard",
    "HazardError",
    "HazardSpec",
    "Hyetograph",
    "IDFCurve",
    "MeasuredSeries",
    "PipeBurst",
    "PowerOutage",
    "Rainstorm",
    "alternating_block",
    "asset_positions",
    "chicago",
    "geodesic_distance_m",
    "load_scenario",
    "repair_rate_ala2001_per_m",
]
