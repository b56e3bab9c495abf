"""Physical quantities measured by lifeline sensors, their SI units and plausible ranges.

Inside ResCity every value is SI (m, m3/s, Pa, V, A, ...). Conversions from the
units people and files use happen at the edges (``rescity.io``) through
:func:`to_si`, which refuses units it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnknownUnitError(ValueError):
    """A unit name that ResCity cannot convert."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """A measured quantity.

    ``unit`` is the SI unit stored internally; ``low``/``high`` is the physical range a
    healthy sensor of that kind can report (values outside are rejected as invalid, not
    graded as warnings).
    """

    name: str
    unit: str
    low: float
    high: float
    label_zh: str
    description: str


QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in [
        Quantity("pressure", "m", -10.0, 200.0, "压力", "water pressure head in metres of water"),
        Quantity("flow", "m3/s", -5.0, 5.0, "流量", "volumetric flow in a pipe or conduit"),
        Quantity("level", "m", 0.0, 30.0, "液位", "water level above the invert or tank floor"),
        Quantity("methane", "%LEL", 0.0, 100.0, "甲烷浓度", "methane concentration in % of the lower explosive limit"),
        Quantity("strain", "ue", -3000.0, 3000.0, "应变", "structural strain in microstrain"),
        Quantity("deflection", "m", -0.5, 0.5, "挠度", "vertical deflection of a span"),
        Quantity("vibration", "m/s2", 0.0, 50.0, "振动", "peak acceleration of a structure"),
        Quantity("voltage", "V", 0.0, 40000.0, "电压", "line-to-line voltage"),
        Quantity("current", "A", 0.0, 2000.0, "电流", "line current"),
        Quantity("rainfall", "mm/h", 0.0, 300.0, "降雨强度", "rainfall intensity"),
        Quantity("traffic", "veh/h", 0.0, 10000.0, "交通流量", "vehicles per hour over a section"),
        Quantity("temperature", "degC", -50.0, 150.0, "温度", "temperature"),
    ]
}


# factor and offset to SI: si = value * factor + offset
_UNIT_TO_SI: dict[str, tuple[str, float, float]] = {
    # length
    "m": ("m", 1.0, 0.0),
    "mm": ("m", 1e-3, 0.0),
    "cm": ("m", 1e-2, 0.0),
    "km": ("m", 1e3, 0.0),
    "ft": ("m", 0.3048, 0.0),
    "in": ("m", 0.0254, 0.0),
    # flow
    "m3/s": ("m3/s", 1.0, 0.0),
    "m3/h": ("m3/s", 1.0 / 3600.0, 0.0),
    "l/s": ("m3/s", 1e-3, 0.0),
    "cfs": ("m3/s", 0.028316846592, 0.0),
    "gpm": ("m3/s", 6.30901964e-05, 0.0),
    "mgd": ("m3/s", 0.0438126364, 0.0),
    # pressure as head (m of water) and as Pa
    "mh2o": ("m", 1.0, 0.0),
    "kpa": ("m", 1000.0 / 9806.65, 0.0),
    "mpa": ("m", 1.0e6 / 9806.65, 0.0),
    "psi": ("m", 0.703069578, 0.0),
    "bar": ("m", 1.0e5 / 9806.65, 0.0),
    # electrical
    "v": ("V", 1.0, 0.0),
    "kv": ("V", 1e3, 0.0),
    "a": ("A", 1.0, 0.0),
    "ka": ("A", 1e3, 0.0),
    "mw": ("W", 1e6, 0.0),
    "kw": ("W", 1e3, 0.0),
    # others stored as they are
    "%lel": ("%LEL", 1.0, 0.0),
    "ppm": ("%LEL", 1.0 / 500.0, 0.0),  # methane LEL = 5 % vol = 50,000 ppm
    "ue": ("ue", 1.0, 0.0),
    "m/s2": ("m/s2", 1.0, 0.0),
    "g": ("m/s2", 9.80665, 0.0),
    "mm/h": ("mm/h", 1.0, 0.0),
    "in/h": ("mm/h", 25.4, 0.0),
    "veh/h": ("veh/h", 1.0, 0.0),
    "degc": ("degC", 1.0, 0.0),
    "degf": ("degC", 5.0 / 9.0, -32.0 * 5.0 / 9.0),
}


def si_unit(unit: str) -> str:
    """The SI unit that ``unit`` converts to; raises :class:`UnknownUnitError`."""
    try:
        return _UNIT_TO_SI[unit.strip().lower()][0]
    except KeyError:
        raise UnknownUnitError(
            f"unknown unit {unit!r}; known units: {', '.join(sorted(_UNIT_TO_SI))}"
        ) from None


def to_si(value: float, unit: str) -> float:
    """Convert ``value`` given in ``unit`` to the SI unit of :func:`si_unit`."""
    try:
        _, factor, offset = _UNIT_TO_SI[unit.strip().lower()]
    except KeyError:
        raise UnknownUnitError(
            f"unknown unit {unit!r}; known units: {', '.join(sorted(_UNIT_TO_SI))}"
        ) from None
    return value * factor + offset


def from_si(value: float, unit: str) -> float:
    """Inverse of :func:`to_si`."""
    try:
        _, factor, offset = _UNIT_TO_SI[unit.strip().lower()]
    except KeyError:
        raise UnknownUnitError(f"unknown unit {unit!r}") from None
    return (value - offset) / factor
