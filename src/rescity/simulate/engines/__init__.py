"""Simulation engines with one shape: ``run_*(network, conditions, horizon_s, step_s)``
returns a :class:`ServiceResult` with time-indexed frames and ``service_level()``.

* :func:`run_water`: WNTR, pressure-driven demand, leaks, breaks, closures, outages;
* :func:`run_drainage`: SWMM through pyswmm, rainfall, flooding per node;
* :func:`run_power`: pandapower power flow, islanding, MW lost;
* :func:`run_roads`: travel times on the road graph with closures.

Conditions (:mod:`.conditions`) name elements by asset uid and hold for
``start_s <= t < end_s`` seconds from the scenario start.
"""

from .conditions import (
    Break,
    Closure,
    Condition,
    Leak,
    Outage,
    UnknownElementError,
    for_network,
    time_grid,
)
from .drainage import DrainageResult, run_drainage
from .power import PowerModel, PowerResult, run_power
from .result import ServiceResult
from .roads import RoadGraph, RoadResult, run_roads
from .water import WaterResult, run_water, water_model

__all__ = [
    "Break", "Closure", "Condition", "DrainageResult", "Leak", "Outage", "PowerModel",
    "PowerResult", "RoadGraph", "RoadResult", "ServiceResult", "UnknownElementError",
    "WaterResult", "for_network", "run_drainage", "run_power", "run_roads", "run_water",
    "time_grid", "water_model",
]
