"""The sensor registry: sensor ids <-> dense indices, and per-sensor facts as arrays.

The engine and the validator keep their state in arrays indexed by sensor; the registry
is the one place that maps the ids people and devices use (``water.n54.pressure``) to
those indices, in a fixed order (sorted by id) so every process of a deployment agrees.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from rescity.model import City, Sensor, split_uid


@dataclass(frozen=True)
class SensorRegistry:
    """Per-sensor arrays, indexed by the sensor's position in ``ids``.

    ``low``/``high``: physical range (SI); ``quantity``: index into ``quantities``;
    ``network``: the asset's network name (or ``facility``); ``asset``: the asset uid;
    ``lon``/``lat``: position (WGS84).
    """

    ids: tuple[str, ...]
    quantities: tuple[str, ...]
    quantity: np.ndarray  # int16 index into quantities
    low: np.ndarray  # float64
    high: np.ndarray  # float64
    asset: tuple[str, ...]
    network: tuple[str, ...]
    lon: np.ndarray
    lat: np.ndarray

    @classmethod
    def from_sensors(cls, sensors: Iterable[Sensor]) -> SensorRegistry:
        ss = sorted(sensors, key=lambda s: s.id)
        quantities = tuple(sorted({s.quantity for s in ss}))
        qi = {q: i for i, q in enumerate(quantities)}
        return cls(
            ids=tuple(s.id for s in ss),
            quantities=quantities,
            quantity=np.array([qi[s.quantity] for s in ss], dtype=np.int16),
            low=np.array([s.low for s in ss], dtype=float),
            high=np.array([s.high for s in ss], dtype=float),
            asset=tuple(s.asset for s in ss),
            network=tuple(split_uid(s.asset)[0] for s in ss),
            lon=np.array([s.geometry.x for s in ss], dtype=float),
            lat=np.array([s.geometry.y for s in ss], dtype=float),
        )

    @classmethod
    def from_city(cls, city: City) -> SensorRegistry:
        return cls.from_sensors(city.sensors.values())

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> dict[str, int]:
        """id -> index (built once, cached on the instance)."""
        cached = self.__dict__.get("_index")
        if cached is None:
            cached = {sid: i for i, sid in enumerate(self.ids)}
            object.__setattr__(self, "_index", cached)
        return cached

    def lookup(self, ids: Iterable[str]) -> np.ndarray:
        """Indices of ``ids``; -1 where the id is unknown."""
        idx = self.index
        return np.fromiter((idx.get(s, -1) for s in ids), dtype=np.int32)

    def of_quantity(self, quantity: str) -> np.ndarray:
        """Indices of the sensors measuring ``quantity``."""
        if quantity not in self.quantities:
            return np.array([], dtype=np.int32)
        return np.flatnonzero(self.quantity == self.quantities.index(quantity)).astype(np.int32)
