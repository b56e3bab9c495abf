"""Typed conditions the engines apply to a network over a scenario's time.

Time is explicit: seconds from the scenario start. A condition is active on
``start_s <= t < end_s``; ``end_s = None`` means until the end of the horizon (no repair
within the run). ``end_s`` is when the element is back: a repaired pipe, a restored
substation, a reopened road.

Every condition names its element by its asset uid ``<network>:<element id>``
(``water:p123``, ``power:bus_44``, ``roads:23920367-0``). An engine applies the
conditions on its own network and ignores those naming another network, so one event
table (the cascade's timeline) can be handed to every engine; an uid that names the
engine's network but no element of it is an :class:`UnknownElementError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from rescity.model.network import split_uid

if TYPE_CHECKING:
    from rescity.model.network import Network


class UnknownElementError(ValueError):
    """A condition names an element its network does not have, or one of a kind the
    engine cannot apply it to."""


class _Timed:
    """Shared behaviour of the conditions (``uid``, ``start_s``, ``end_s``)."""

    uid: str
    start_s: float
    end_s: float | None

    def _check(self) -> None:
        split_uid(self.uid)
        if not np.isfinite(self.start_s) or self.start_s < 0:
            raise ValueError(f"{self.uid}: start_s must be >= 0 s, found {self.start_s}")
        if self.end_s is not None and not self.end_s > self.start_s:
            raise ValueError(
                f"{self.uid}: end_s must be after start_s ({self.start_s} s), found {self.end_s}"
            )

    @property
    def network(self) -> str:
        """The name of the network the element belongs to."""
        return split_uid(self.uid)[0]

    @property
    def element(self) -> str:
        """The element id inside its network."""
        return split_uid(self.uid)[1]

    def active(self, t_s: float) -> bool:
        """Whether the condition holds at ``t_s`` (``start_s <= t_s < end_s``)."""
        return self.start_s <= t_s and (self.end_s is None or t_s < self.end_s)

    def active_mask(self, times_s: np.ndarray) -> np.ndarray:
        """:meth:`active` over an array of times (bool array)."""
        t = np.asarray(times_s, dtype=float)
        end = np.inf if self.end_s is None else self.end_s
        return (t >= self.start_s) & (t < end)


@dataclass(frozen=True, slots=True)
class Outage(_Timed):
    """An element out of service: a de-energised pump, a tank or reservoir unavailable,
    a bus/substation, line or transformer tripped or flooded, a drainage pump stopped."""

    uid: str
    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        self._check()


@dataclass(frozen=True, slots=True)
class Closure(_Timed):
    """A link closed on purpose or by damage: a pipe isolated by its valves, a valve
    shut, a road flooded or a bridge closed, an orifice or weir gate shut."""

    uid: str
    start_s: float = 0.0
    end_s: float | None = None

    def __post_init__(self) -> None:
        self._check()


@dataclass(frozen=True, slots=True)
class Leak(_Timed):
    """A leak of orifice area ``area_m2`` (m2) on a pipe (at its midpoint) or at a
    junction. Outflow q = Cd * A * sqrt(2 g h) (m3/s; h the pressure head in m, g = 9.81
    m/s2, ``discharge_coeff`` Cd, 0.75 by default as in WNTR)."""

    uid: str
    area_m2: float
    start_s: float = 0.0
    end_s: float | None = None
    discharge_coeff: float = 0.75

    def __post_init__(self) -> None:
        self._check()
        if not self.area_m2 > 0:
            raise ValueError(f"{self.uid}: leak area must be > 0 m2, found {self.area_m2}")
        if not 0 < self.discharge_coeff <= 1:
            raise ValueError(
                f"{self.uid}: discharge coefficient must be in (0, 1], found {self.discharge_coeff}"
            )


@dataclass(frozen=True, slots=True)
class Break(_Timed):
    """A pipe broken through: the two ends are disconnected and each discharges through
    the full pipe section (A = pi d^2 / 4 unless ``area_m2`` is given) as a
    :class:`Leak` does, until the repair at ``end_s`` reconnects the pipe."""

    uid: str
    start_s: float = 0.0
    end_s: float | None = None
    area_m2: float | None = None
    discharge_coeff: float = 0.75

    def __post_init__(self) -> None:
        self._check()
        if self.area_m2 is not None and not self.area_m2 > 0:
            raise ValueError(f"{self.uid}: break area must be > 0 m2, found {self.area_m2}")


Condition = Outage | Closure | Leak | Break

C = TypeVar("C", Outage, Closure, Leak, Break)


def for_network(network: Network, conditions: Iterable[Condition]) -> list[Condition]:
    """The conditions naming ``network`` (those naming other networks are dropped);
    raises :class:`UnknownElementError` for an element the network does not have."""
    out: list[Condition] = []
    for c in conditions:
        if c.network != network.name:
            continue
        if c.element not in network.nodes and c.element not in network.links:
            raise UnknownElementError(
                f"{type(c).__name__} names {c.uid!r}: network {network.name!r} has no "
                f"element {c.element!r}"
            )
        out.append(c)
    return out


def of_type(conditions: Sequence[Condition], cls: type[C]) -> list[C]:
    """The conditions of one type, in order."""
    return [c for c in conditions if isinstance(c, cls)]


def time_grid(horizon_s: float, step_s: float) -> np.ndarray:
    """Report times 0, step, 2 step, ..., horizon (s); the horizon must be a whole number
    of steps."""
    if not step_s > 0 or not horizon_s > 0:
        raise ValueError(f"horizon and step must be > 0 s, found {horizon_s} and {step_s}")
    n = horizon_s / step_s
    if abs(n - round(n)) > 1e-9:
        raise ValueError(f"the horizon ({horizon_s} s) must be a multiple of the step ({step_s} s)")
    return np.arange(int(round(n)) + 1, dtype=float) * step_s


def states(conditions: Sequence[_Timed], times_s: np.ndarray) -> list[frozenset[int]]:
    """For each time, the indices of the conditions active then (engines that solve a
    steady state, power flow and routing, solve once per distinct set)."""
    masks = [c.active_mask(times_s) for c in conditions]
    return [frozenset(i for i, m in enumerate(masks) if m[k]) for k in range(len(times_s))]
