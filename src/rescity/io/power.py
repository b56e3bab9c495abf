"""pandapower power grids: a pandapower net (object or JSON file) <-> a POWER network.

Mapping
-------
Nodes are buses, id ``bus_<index>``, named by the bus name. Their kind says what the
bus is, first match wins:

* ``grid_supply``: a bus with an external grid (``ext_grid``, the slack),
* ``generator``: a bus with a voltage-controlled generator (``gen``),
* ``substation``: the low-voltage side of an HV/MV transformer (high side above 35 kV),
* ``distribution_substation``: the low-voltage side of an MV/LV transformer, or a
  medium-voltage bus (1-35 kV) carrying a load, or a bus whose load's type names a
  station (in ``mv_oberrhein`` every load is an aggregated MV/LV station),
* ``bus``: anything else.

Bus attributes keep pandapower's units in their suffix: ``vn_kv`` (kV), ``in_service``;
and, where the bus has such elements, the sums over its *in-service* elements of
``load_p_mw``/``load_q_mvar``, ``sgen_p_mw``/``sgen_q_mvar``, ``gen_p_mw`` (MW, Mvar;
each element's value times its ``scaling``, i.e. what the power flow uses), ``gen_vm_pu``
and ``ext_grid_vm_pu``/``ext_grid_va_degree`` (per unit, degrees).

Links, ids ``line_<index>``, ``trafo_<index>``, ``switch_<index>``:

* lines (kind ``line``): ``length_m`` (metres), ``std_type``, ``r_ohm_per_km``,
  ``x_ohm_per_km``, ``c_nf_per_km``, ``g_us_per_km``, ``max_i_ka``, ``parallel``,
  ``df``, ``in_service`` and ``construction`` (``cable`` or ``overhead``, from the line
  type or the standard type's name);
* transformers (kind ``transformer``, from the HV bus to the LV bus): rating, voltages,
  short-circuit and tap data under pandapower's column names (``sn_mva``, ``vn_hv_kv``,
  ``vk_percent``, ``tap_pos``, ...);
* bus-bus switches (kind ``switch``): ``closed``, ``switch_type``, ``z_ohm``.

A switch between a bus and a line or transformer is no link of its own: it is the
line's or transformer's ``from_switch_closed``/``to_switch_closed`` attribute (True or
False, absent when there is no switch at that end; ``from`` is the HV side of a
transformer). Three-winding transformers, impedances, DC lines, wards, storage and
controllers are not twin elements; they survive through ``native``.

Geometry
--------
Bus positions come from ``net.bus.geo`` (GeoJSON strings in pandapower 3), line routes
from ``net.line.geo`` (a straight line between the buses when absent); transformers and
switches are straight lines between their buses (zero length when both buses share one
position). ``placement`` says what the coordinates are (:class:`~rescity.model.Placement`):
by default WGS84 lon/lat, refused if they do not look like lon/lat. Schematic
coordinates (the IEEE cases' layouts) need a placement with an ``anchor``.

A bus without geodata is laid out on a circle around ``placement.anchor`` (or, without
an anchor, around the centre of the buses that have geodata), about 100 m apart;
when no bus has geodata an anchor is required. Those buses stay without geodata on
export: their position is a layout, not data.

Round trip
----------
``native`` is the pandapower JSON text of the net (``pandapower.to_json``). On export
:func:`to_pandapower` rebuilds the net from it and applies the twin's values, which are
authoritative: bus geodata (back through ``placement.inverse``), voltages, in-service
flags, load/generation totals (a changed total rescales the bus's in-service elements
proportionally), line lengths (``length_m`` -> ``length_km``) and parameters,
transformer parameters, switch states. Buses, lines, transformers and switches missing
from the twin are dropped with what hangs on them; twin elements unknown to ``native``
are created. A network without ``native`` (read from GeoJSON, say) is built from its
attributes alone: buses need ``vn_kv``; lines need ``r/x/c_*_per_km`` and ``max_i_ka``
or a ``std_type``; transformers their parameters or a ``std_type``. What the
attributes do not carry (load voltage dependence, generator limits, cost functions)
then takes pandapower's defaults.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from shapely.geometry import LineString, Point

from rescity.model import Link, Network, NetworkType, Node, Placement
from rescity.model.geo import looks_like_lonlat

from .errors import FormatError

# pandapower logs a warning about numba (an optional accelerator) at every power flow;
# we run without numba on purpose (it lags NumPy releases), so keep the CLI quiet.
logging.getLogger("pandapower.auxiliary").setLevel(logging.ERROR)

if TYPE_CHECKING:
    from pandapower.auxiliary import pandapowerNet

__all__ = [
    "HV_KV",
    "LV_KV",
    "read_pandapower",
    "to_pandapower",
    "write_pandapower",
]

#: Above this nominal voltage (kV) a bus is high voltage.
HV_KV = 35.0
#: At or below this nominal voltage (kV) a bus is low voltage.
LV_KV = 1.0
#: Distance between neighbouring buses laid out on a circle (metres).
LAYOUT_SPACING_M = 100.0

_LINE_NUMERIC = ("r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km", "g_us_per_km", "max_i_ka", "df")
_TRAFO_NUMERIC = (
    "sn_mva",
    "vn_hv_kv",
    "vn_lv_kv",
    "vk_percent",
    "vkr_percent",
    "pfe_kw",
    "i0_percent",
    "shift_degree",
    "tap_neutral",
    "tap_min",
    "tap_max",
    "tap_step_percent",
    "tap_step_degree",
    "tap_pos",
    "df",
)
_TRAFO_TEXT = ("std_type", "tap_side", "tap_changer_type", "vector_group")
_CABLE_HINTS = ("NAYY", "NA2XS", "N2XS", "NYY", "NAYCWY", "CABLE", "KABEL")
_OVERHEAD_HINTS = ("AL1/", "ST1A", "AL/ST", "ACSR", "OVERHEAD", "OHL")
_ID = re.compile(r"^(bus|line|trafo|switch)_(\d+)$")


# --------------------------------------------------------------------------- helpers
def _present(v: Any) -> bool:
    """True for a real value (not None, NaN or pandas NA)."""
    if v is None or v is pd.NA:
        return False
    if isinstance(v, float | np.floating) and math.isnan(v):
        return False
    return True


def _index_of(element_id: str, prefix: str) -> int | None:
    m = _ID.match(element_id)
    if m is None or m.group(1) != prefix:
        return None
    return int(m.group(2))


def _differs(a: Any, b: Any) -> bool:
    """Whether the twin's value ``a`` differs from the net's ``b`` (floats to 1e-12)."""
    if not _present(b):
        return _present(a)
    if isinstance(a, bool) or isinstance(b, bool | np.bool_):
        return bool(a) != bool(b)
    if isinstance(a, int | float) and isinstance(b, int | float | np.integer | np.floating):
        return not math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-15)
    return bool(a != b)


def _parse_geo(value: Any) -> dict[str, Any] | None:
    if not _present(value):
        return None
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError(f"expected a GeoJSON geometry, found {value!r}")
    return value


def _point_xy(value: Any) -> tuple[float, float] | None:
    g = _parse_geo(value)
    if g is None:
        return None
    if g.get("type") != "Point":
        raise ValueError(f"expected a Point, found {g.get('type')!r}")
    x, y = g["coordinates"][:2]
    return float(x), float(y)


def _line_xy(value: Any) -> np.ndarray | None:
    g = _parse_geo(value)
    if g is None:
        return None
    if g.get("type") != "LineString":
        raise ValueError(f"expected a LineString, found {g.get('type')!r}")
    xy = np.asarray([c[:2] for c in g["coordinates"]], dtype=float)
    if xy.ndim != 2 or len(xy) < 2:
        raise ValueError("a line route needs at least two positions")
    return xy


def _geo_point(xy: Iterable[float]) -> str:
    x, y = (float(v) for v in xy)
    return json.dumps({"coordinates": [x, y], "type": "Point"})


def _geo_line(xy: np.ndarray) -> str:
    return json.dumps({"coordinates": [[float(x), float(y)] for x, y in xy], "type": "LineString"})


def _construction(line_type: Any, std_type: Any) -> str | None:
    t = str(line_type).lower() if _present(line_type) else ""
    if t in ("cs", "cable"):
        return "cable"
    if t in ("ol", "overhead"):
        return "overhead"
    s = str(std_type).upper() if _present(std_type) else ""
    if any(h in s for h in _CABLE_HINTS):
        return "cable"
    if any(h in s for h in _OVERHEAD_HINTS):
        return "overhead"
    return None


def _circle(n: int, anchor: tuple[float, float]) -> np.ndarray:
    """``n`` lon/lat positions on a circle around ``anchor``, ~100 m apart (min radius 100 m)."""
    radius = max(LAYOUT_SPACING_M, n * LAYOUT_SPACING_M / (2.0 * math.pi))
    a = 2.0 * math.pi * np.arange(n) / max(n, 1)
    local = np.column_stack([radius * np.cos(a), radius * np.sin(a)])
    return Placement(anchor=anchor).forward_xy(local)


def _sums(df: pd.DataFrame, column: str) -> dict[int, float]:
    """Per bus: sum of ``column`` x ``scaling`` over the in-service elements."""
    if df is None or len(df) == 0 or column not in df:
        return {}
    d = df[df["in_service"].astype(bool)] if "in_service" in df else df
    scaling = d["scaling"].astype(float) if "scaling" in d else 1.0
    values = (d[column].astype(float) * scaling).groupby(d["bus"]).sum()
    return {int(b): float(v) for b, v in values.items()}  # type: ignore[call-overload]


def _first(df: pd.DataFrame, column: str) -> dict[int, float]:
    """Per bus: ``column`` of the first in-service element."""
    if df is None or len(df) == 0 or column not in df:
        return {}
    d = df[df["in_service"].astype(bool)] if "in_service" in df else df
    out: dict[int, float] = {}
    for b, v in zip(d["bus"], d[column], strict=True):
        if int(b) not in out and _present(v):
            out[int(b)] = float(v)
    return out


# ----------------------------------------------------------------------------- read
def _load(source: Any) -> tuple[pandapowerNet, str | Path, str | None]:
    """The net, the name to use in errors, and a default network name."""
    import pandapower as pp

    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"no such file: {path}")
        try:
            net = pp.from_json(str(path))
        except Exception as e:  # pandapower raises whatever its JSON decoding meets
            raise FormatError(path, f"not a pandapower JSON file: {e}") from None
        if not hasattr(net, "bus"):
            raise FormatError(path, "not a pandapower net")
        return net, path, path.stem
    if not hasattr(source, "bus") or not hasattr(source, "line"):
        raise TypeError(f"expected a pandapower net or a path, found {type(source).__name__}")
    net_name = source.get("name") if hasattr(source, "get") else None
    return source, f"<pandapower net {net_name or ''}>".replace(" >", ">"), None


def _bus_positions(
    net: pandapowerNet, where: str | Path, placement: Placement | None
) -> tuple[dict[int, tuple[float, float]], Placement]:
    """WGS84 position of every bus, and the network's placement."""
    buses = [int(b) for b in net.bus.index]
    raw: dict[int, tuple[float, float]] = {}
    if "geo" in net.bus:
        for b, g in zip(buses, net.bus["geo"], strict=True):
            try:
                xy = _point_xy(g)
            except (ValueError, TypeError, KeyError, IndexError) as e:
                raise FormatError(
                    where, f"bad bus geodata: {e}", feature=f"bus_{b}", field="geo"
                ) from None
            if xy is not None:
                raw[b] = xy
    place = placement if placement is not None else Placement()
    out: dict[int, tuple[float, float]] = {}
    if raw:
        file_xy = np.array(list(raw.values()), dtype=float)
        if placement is None and not looks_like_lonlat(file_xy):
            raise FormatError(
                where,
                "no CRS: bus coordinates look projected; give placement=Placement(source_crs=...) "
                "or, for a schematic layout, placement=Placement(anchor=(lon, lat), unit_m=...)",
                field="geo",
            )
        ll = place.forward_xy(file_xy)
        if not (np.all(np.isfinite(ll)) and looks_like_lonlat(ll)):
            raise FormatError(where, "bus coordinates do not place to lon/lat", field="geo")
        out = {b: (float(x), float(y)) for b, (x, y) in zip(raw, ll, strict=True)}
    missing = [b for b in buses if b not in out]
    if missing:
        if place.anchor is not None:
            centre = place.anchor
        elif out:
            c = np.mean(np.array(list(out.values())), axis=0)
            centre = (float(c[0]), float(c[1]))
        else:
            raise FormatError(
                where,
                "no bus has geodata: give placement=Placement(anchor=(lon, lat)) to lay the "
                "buses out around that point",
                field="geo",
            )
        for b, (x, y) in zip(missing, _circle(len(missing), centre), strict=True):
            out[b] = (float(x), float(y))
    return out, place


def _bus_kind(
    b: int,
    vn_kv: float,
    ext_buses: set[int],
    gen_buses: set[int],
    hv_sub: set[int],
    mv_sub: set[int],
    load_buses: set[int],
    station_buses: set[int],
) -> str:
    if b in ext_buses:
        return "grid_supply"
    if b in gen_buses:
        return "generator"
    if b in hv_sub:
        return "substation"
    if b in mv_sub or b in station_buses:
        return "distribution_substation"
    if b in load_buses and LV_KV < vn_kv <= HV_KV:
        return "distribution_substation"
    return "bus"


def _switch_attrs(net: pandapowerNet, et: str) -> dict[tuple[int, int], bool]:
    """(element, bus) -> closed for bus-element switches of type ``et`` (all closed = True)."""
    out: dict[tuple[int, int], bool] = {}
    sw = net.switch
    if sw is None or len(sw) == 0:
        return out
    d = sw[sw["et"] == et]
    for bus, el, closed in zip(d["bus"], d["element"], d["closed"], strict=True):
        key = (int(el), int(bus))
        out[key] = out.get(key, True) and bool(closed)
    return out


def read_pandapower(
    source: Any, *, name: str | None = None, placement: Placement | None = None
) -> Network:
    """A POWER network from a pandapower net or a pandapower JSON file.

    ``placement`` says what the bus and line coordinates are (default: WGS84 lon/lat);
    see the module docstring for the mapping, units and layout of buses without
    geodata. The result's ``native`` is the net's pandapower JSON text.

    Raises :class:`FormatError` for an unreadable file or unusable geodata,
    :class:`FileNotFoundError` for a missing file.
    """
    import pandapower as pp

    net, where, stem = _load(source)
    pos, place = _bus_positions(net, where, placement)
    native = pp.to_json(net)
    net_name = name or (net.name if isinstance(net.name, str) and net.name else None) or stem
    network = Network(
        name=net_name or "power",
        type=NetworkType.POWER,
        placement=place,
        source_format="pandapower",
        native=native,
    )
    for key in ("f_hz", "sn_mva"):
        if key in net and _present(net[key]):
            network.attrs[key] = float(net[key])

    ext_buses = {int(b) for b in net.ext_grid["bus"]} if len(net.ext_grid) else set()
    gen_buses = {int(b) for b in net.gen["bus"]} if len(net.gen) else set()
    hv_sub: set[int] = set()
    mv_sub: set[int] = set()
    for lv, vn_hv in zip(net.trafo["lv_bus"], net.trafo["vn_hv_kv"], strict=True):
        (hv_sub if float(vn_hv) > HV_KV else mv_sub).add(int(lv))
    load_buses = {int(b) for b in net.load["bus"]} if len(net.load) else set()
    station_buses: set[int] = set()
    if len(net.load) and "type" in net.load:
        for b, t in zip(net.load["bus"], net.load["type"], strict=True):
            if _present(t) and "station" in str(t).lower():
                station_buses.add(int(b))
    sums = {
        "load_p_mw": _sums(net.load, "p_mw"),
        "load_q_mvar": _sums(net.load, "q_mvar"),
        "sgen_p_mw": _sums(net.sgen, "p_mw"),
        "sgen_q_mvar": _sums(net.sgen, "q_mvar"),
        "gen_p_mw": _sums(net.gen, "p_mw"),
        "gen_vm_pu": _first(net.gen, "vm_pu"),
        "ext_grid_vm_pu": _first(net.ext_grid, "vm_pu"),
        "ext_grid_va_degree": _first(net.ext_grid, "va_degree"),
    }
    any_of = {
        "load_p_mw": load_buses,
        "load_q_mvar": load_buses,
        "sgen_p_mw": {int(b) for b in net.sgen["bus"]} if len(net.sgen) else set(),
        "sgen_q_mvar": {int(b) for b in net.sgen["bus"]} if len(net.sgen) else set(),
        "gen_p_mw": gen_buses,
    }
    for b, row in zip(net.bus.index, net.bus.to_dict("records"), strict=True):
        b = int(b)
        vn = float(row["vn_kv"])
        attrs: dict[str, Any] = {"vn_kv": vn, "in_service": bool(row.get("in_service", True))}
        if _present(row.get("zone")):
            attrs["zone"] = str(row["zone"])
        for key, per_bus in sums.items():
            if b in per_bus:
                attrs[key] = per_bus[b]
            elif b in any_of.get(key, ()):
                attrs[key] = 0.0  # elements present but all out of service
        kind = _bus_kind(b, vn, ext_buses, gen_buses, hv_sub, mv_sub, load_buses, station_buses)
        bname = str(row["name"]) if _present(row.get("name")) else None
        nid = f"bus_{b}"
        network.nodes[nid] = Node(nid, kind, Point(pos[b]), attrs, bname)

    line_sw = _switch_attrs(net, "l")
    trafo_sw = _switch_attrs(net, "t")
    for i, row in zip(net.line.index, net.line.to_dict("records"), strict=True):
        i = int(i)
        fb, tb = int(row["from_bus"]), int(row["to_bus"])
        route = None
        if "geo" in row:
            try:
                route = _line_xy(row["geo"])
            except (ValueError, TypeError, KeyError, IndexError) as e:
                raise FormatError(
                    where, f"bad line geodata: {e}", feature=f"line_{i}", field="geo"
                ) from None
        if route is not None:
            geom = LineString(place.forward_xy(route))
        else:
            geom = LineString([pos[fb], pos[tb]])
        attrs = {"length_m": float(row["length_km"]) * 1000.0}
        if _present(row.get("std_type")):
            attrs["std_type"] = str(row["std_type"])
        for key in _LINE_NUMERIC:
            if _present(row.get(key)):
                attrs[key] = float(row[key])
        attrs["parallel"] = int(row.get("parallel", 1))
        attrs["in_service"] = bool(row.get("in_service", True))
        construction = _construction(row.get("type"), row.get("std_type"))
        if construction is not None:
            attrs["construction"] = construction
        for end, bus in (("from", fb), ("to", tb)):
            if (i, bus) in line_sw:
                attrs[f"{end}_switch_closed"] = line_sw[(i, bus)]
        lname = str(row["name"]) if _present(row.get("name")) else None
        lid = f"line_{i}"
        network.links[lid] = Link(lid, "line", f"bus_{fb}", f"bus_{tb}", geom, attrs, lname)

    for i, row in zip(net.trafo.index, net.trafo.to_dict("records"), strict=True):
        i = int(i)
        hv, lv = int(row["hv_bus"]), int(row["lv_bus"])
        attrs = {}
        for key in _TRAFO_TEXT:
            if _present(row.get(key)):
                attrs[key] = str(row[key])
        for key in _TRAFO_NUMERIC:
            if _present(row.get(key)):
                attrs[key] = float(row[key])
        attrs["parallel"] = int(row.get("parallel", 1))
        attrs["in_service"] = bool(row.get("in_service", True))
        for end, bus in (("from", hv), ("to", lv)):
            if (i, bus) in trafo_sw:
                attrs[f"{end}_switch_closed"] = trafo_sw[(i, bus)]
        tname = str(row["name"]) if _present(row.get("name")) else None
        tid = f"trafo_{i}"
        geom = LineString([pos[hv], pos[lv]])
        network.links[tid] = Link(tid, "transformer", f"bus_{hv}", f"bus_{lv}", geom, attrs, tname)

    if len(net.switch):
        bb = net.switch[net.switch["et"] == "b"]
        for i, row in zip(bb.index, bb.to_dict("records"), strict=True):
            i = int(i)
            a, c = int(row["bus"]), int(row["element"])
            attrs = {"closed": bool(row["closed"])}
            if _present(row.get("type")):
                attrs["switch_type"] = str(row["type"])
            if _present(row.get("z_ohm")):
                attrs["z_ohm"] = float(row["z_ohm"])
            sname = str(row["name"]) if _present(row.get("name")) else None
            sid = f"switch_{i}"
            geom = LineString([pos[a], pos[c]])
            network.links[sid] = Link(sid, "switch", f"bus_{a}", f"bus_{c}", geom, attrs, sname)
    return network


# ---------------------------------------------------------------------------- write
_TOTALS = (
    ("load_p_mw", "load", "p_mw"),
    ("load_q_mvar", "load", "q_mvar"),
    ("sgen_p_mw", "sgen", "p_mw"),
    ("sgen_q_mvar", "sgen", "q_mvar"),
    ("gen_p_mw", "gen", "p_mw"),
)


def _at_bus(df: pd.DataFrame, in_service_only: bool = False) -> dict[int, list[int]]:
    """Per bus: the indices of the elements of ``df`` connected to it."""
    out: dict[int, list[int]] = {}
    if df is None or len(df) == 0:
        return out
    d = df[df["in_service"].astype(bool)] if in_service_only and "in_service" in df else df
    for i, b in zip(d.index, d["bus"], strict=True):
        out.setdefault(int(b), []).append(int(i))
    return out


def _indices(df: pd.DataFrame, wanted: list[int | None]) -> list[int]:
    """Indices for new rows of ``df``: the wanted one where it is free, else the next free."""
    used = {int(i) for i in df.index}
    free_wanted = {w for w in wanted if w is not None and w not in used}
    nxt = max(used | free_wanted, default=-1) + 1
    out: list[int] = []
    taken: set[int] = set()
    for w in wanted:
        if w is not None and w in free_wanted and w not in taken:
            out.append(w)
            taken.add(w)
        else:
            out.append(nxt)
            nxt += 1
    return out


def _rescale(
    net: pandapowerNet, table: str, column: str, at: list[int], target: float, current: float
) -> None:
    """Make the elements ``at`` of ``table`` sum (x scaling) to ``target`` in ``column``.

    ``current`` is their present sum. A changed total is spread proportionally (equally
    when the present total is zero).
    """
    if not _differs(target, current):
        return
    df = net[table]
    scaling = df.loc[at, "scaling"].astype(float) if "scaling" in df else pd.Series(1.0, index=at)
    if current != 0.0:
        df.loc[at, column] = df.loc[at, column].astype(float) * (target / current)
    else:
        share = target / len(at)
        df.loc[at, column] = [share / s if s else 0.0 for s in scaling]


def _set(df: pd.DataFrame, index: int, column: str, value: Any) -> None:
    if column not in df or _differs(value, df.at[index, column]):
        df.at[index, column] = value


def _num(a: dict[str, Any], key: str) -> float | None:
    v = a.get(key)
    if v is None or not _present(v):
        return None
    return float(v)


class _Pending:
    """Elements to create, made in bulk at the end (pandapower creates one by one slowly)."""

    def __init__(self) -> None:
        self.load: list[tuple[int, float, float]] = []
        self.sgen: list[tuple[int, float, float]] = []
        self.gen: list[tuple[int, float, float]] = []
        self.ext_grid: list[tuple[int, float, float]] = []
        self.switch: list[tuple[int, int, str, bool]] = []

    def create(self, net: pandapowerNet) -> None:
        import pandapower as pp

        for table in ("load", "sgen"):
            rows = getattr(self, table)
            if rows:
                b, p, q = zip(*rows, strict=True)
                getattr(pp, f"create_{table}s")(net, list(b), p_mw=list(p), q_mvar=list(q))
        if self.gen:
            gen_bus, gen_p, gen_vm = zip(*self.gen, strict=True)
            pp.create_gens(net, list(gen_bus), p_mw=list(gen_p), vm_pu=list(gen_vm))
        for bus, vm, va in self.ext_grid:
            pp.create_ext_grid(net, bus, vm_pu=vm, va_degree=va)
        if self.switch:
            sw_bus, el, et, closed = zip(*self.switch, strict=True)
            pp.create_switches(net, list(sw_bus), list(el), et=list(et), closed=list(closed))


class _BusElements:
    """What hangs on each bus of a net, looked up once (before the twin's values go in)."""

    def __init__(self, net: pandapowerNet) -> None:
        self.in_service = {t: _at_bus(net[t], True) for t in ("load", "sgen", "gen")}
        self.gen = _at_bus(net.gen)
        self.ext_grid = _at_bus(net.ext_grid)
        self.totals = {key: _sums(net[t], c) for key, t, c in _TOTALS}


def _apply_bus(net: pandapowerNet, b: int, node: Node, el: _BusElements, pending: _Pending) -> None:
    a = node.attrs
    if "vn_kv" in a:
        _set(net.bus, b, "vn_kv", float(a["vn_kv"]))
    if "in_service" in a:
        _set(net.bus, b, "in_service", bool(a["in_service"]))
    if node.name is not None:
        _set(net.bus, b, "name", node.name)
    for table in ("load", "sgen"):
        p, q = _num(a, f"{table}_p_mw"), _num(a, f"{table}_q_mvar")
        at = el.in_service[table].get(b, [])
        if not at:
            if p or q:
                getattr(pending, table).append((b, p or 0.0, q or 0.0))
            continue
        for value, key, column in ((p, f"{table}_p_mw", "p_mw"), (q, f"{table}_q_mvar", "q_mvar")):
            if value is not None:
                _rescale(net, table, column, at, value, el.totals[key].get(b, 0.0))
    p, vm = _num(a, "gen_p_mw"), _num(a, "gen_vm_pu")
    at = el.in_service["gen"].get(b, [])
    if at and p is not None:
        _rescale(net, "gen", "p_mw", at, p, el.totals["gen_p_mw"].get(b, 0.0))
    if vm is not None:
        for i in el.gen.get(b, []):
            _set(net.gen, i, "vm_pu", vm)
    if not el.gen.get(b) and p is not None:
        pending.gen.append((b, p, 1.0 if vm is None else vm))
    if node.kind == "grid_supply" or "ext_grid_vm_pu" in a:
        vm = _num(a, "ext_grid_vm_pu")
        va = _num(a, "ext_grid_va_degree")
        grids = el.ext_grid.get(b, [])
        for i in grids:
            if vm is not None:
                _set(net.ext_grid, i, "vm_pu", vm)
            if va is not None:
                _set(net.ext_grid, i, "va_degree", va)
        if not grids:
            pending.ext_grid.append((b, 1.0 if vm is None else vm, 0.0 if va is None else va))


def _same_place(placement: Placement, old_file_xy: np.ndarray | None, lonlat: np.ndarray) -> bool:
    """Whether file coordinates ``old_file_xy`` place to ``lonlat`` (to 1e-10 degree)."""
    if old_file_xy is None or old_file_xy.shape != lonlat.shape:
        return False
    placed = placement.forward_xy(old_file_xy)
    return bool(np.all(np.abs(placed - lonlat) <= 1e-10))


_LINE_PARAMS = ("r_ohm_per_km", "x_ohm_per_km", "c_nf_per_km", "max_i_ka")


def _create_lines(
    net: pandapowerNet, new: list[tuple[Link, int, int, int | None]]
) -> dict[str, int]:
    """Create the new lines in bulk; returns link id -> line index."""
    import pandapower as pp

    out: dict[str, int] = {}
    by_params: list[tuple[Link, int, int, int | None]] = []
    by_type: list[tuple[Link, int, int, int | None]] = []
    for n in new:
        complete = all(_present(n[0].attrs.get(k)) for k in _LINE_PARAMS)
        (by_params if complete else by_type).append(n)
    for link, _, _, _ in by_type:
        if not _present(link.attrs.get("std_type")):
            raise ValueError(
                f"line {link.id!r}: needs r_ohm_per_km, x_ohm_per_km, c_nf_per_km and max_i_ka, "
                "or a std_type"
            )
    index = _indices(net.line, [w for _, _, _, w in by_params + by_type])
    common_index = iter(index)
    for group, bulk in ((by_params, True), (by_type, False)):
        if not group:
            continue
        idx = [next(common_index) for _ in group]
        links = [g[0] for g in group]
        kwargs: dict[str, Any] = {
            "name": [lk.name for lk in links],
            "index": idx,
            "in_service": [bool(lk.attrs.get("in_service", True)) for lk in links],
            "parallel": [int(lk.attrs.get("parallel", 1)) for lk in links],
            "df": [float(lk.attrs.get("df", 1.0)) for lk in links],
        }
        lengths = [float(lk.attrs.get("length_m", 1000.0)) / 1000.0 for lk in links]
        fb, tb = [g[1] for g in group], [g[2] for g in group]
        if bulk:
            pp.create_lines_from_parameters(
                net,
                fb,
                tb,
                lengths,
                *([float(lk.attrs[k]) for lk in links] for k in _LINE_PARAMS),
                type=[
                    {"cable": "cs", "overhead": "ol"}.get(str(lk.attrs.get("construction")))
                    for lk in links
                ],
                g_us_per_km=[float(lk.attrs.get("g_us_per_km", 0.0)) for lk in links],
                **kwargs,
            )
            std = [(i, lk.attrs.get("std_type")) for i, lk in zip(idx, links, strict=True)]
            std = [(i, str(t)) for i, t in std if _present(t)]
            if std:
                net.line.loc[[i for i, _ in std], "std_type"] = [t for _, t in std]
        else:
            pp.create_lines(
                net, fb, tb, lengths, [str(lk.attrs["std_type"]) for lk in links], **kwargs
            )
        out.update({lk.id: i for lk, i in zip(links, idx, strict=True)})
    return out


def _create_trafo(net: pandapowerNet, link: Link, hv: int, lv: int, index: int | None) -> int:
    import pandapower as pp

    a = link.attrs
    needed = ("sn_mva", "vn_hv_kv", "vn_lv_kv", "vk_percent", "vkr_percent", "pfe_kw", "i0_percent")
    common = {
        "name": link.name,
        "index": index if index is None or index not in net.trafo.index else None,
        "in_service": bool(a.get("in_service", True)),
        "parallel": int(a.get("parallel", 1)),
        "df": float(a.get("df", 1.0)),
    }
    if all(_present(a.get(k)) for k in needed):
        extra: dict[str, Any] = {
            k: float(a[k]) for k in _TRAFO_NUMERIC if k not in needed and k != "df" and k in a
        }
        extra.update(
            {k: str(a[k]) for k in ("tap_side", "tap_changer_type", "vector_group") if k in a}
        )
        i = pp.create_transformer_from_parameters(
            net,
            hv,
            lv,
            sn_mva=float(a["sn_mva"]),
            vn_hv_kv=float(a["vn_hv_kv"]),
            vn_lv_kv=float(a["vn_lv_kv"]),
            vkr_percent=float(a["vkr_percent"]),
            vk_percent=float(a["vk_percent"]),
            pfe_kw=float(a["pfe_kw"]),
            i0_percent=float(a["i0_percent"]),
            **extra,
            **common,
        )
        if _present(a.get("std_type")):
            net.trafo.at[i, "std_type"] = str(a["std_type"])
        return int(i)
    if _present(a.get("std_type")):
        tap = float(a["tap_pos"]) if _present(a.get("tap_pos")) else math.nan
        return int(pp.create_transformer(net, hv, lv, str(a["std_type"]), tap_pos=tap, **common))
    raise ValueError(
        f"transformer {link.id!r}: needs its parameters ({', '.join(needed)}) or a std_type"
    )


def _end_switches(
    net: pandapowerNet,
    existing: dict[tuple[int, int], list[int]],
    et: str,
    element: int,
    link: Link,
    buses: tuple[int, int],
    pending: _Pending,
) -> None:
    """Apply ``from_switch_closed``/``to_switch_closed`` to the switches at the link's ends."""
    for end, bus in zip(("from", "to"), buses, strict=True):
        key = f"{end}_switch_closed"
        if key not in link.attrs:
            continue
        closed = bool(link.attrs[key])
        found = existing.get((element, bus), [])
        for i in found:
            _set(net.switch, i, "closed", closed)
        if not found:
            pending.switch.append((bus, element, et, closed))


def _switch_index(net: pandapowerNet, et: str) -> dict[tuple[int, int], list[int]]:
    out: dict[tuple[int, int], list[int]] = {}
    if len(net.switch) == 0:
        return out
    d = net.switch[net.switch["et"] == et]
    for i, el, b in zip(d.index, d["element"], d["bus"], strict=True):
        out.setdefault((int(el), int(b)), []).append(int(i))
    return out


def to_pandapower(network: Network) -> pandapowerNet:
    """The pandapower net of ``network``: ``native`` with the twin's values applied, or
    built from the attributes alone when there is no ``native`` (see the module docstring).

    Raises :class:`ValueError` when an element lacks what pandapower needs (a new bus
    without ``vn_kv``, a line without parameters or standard type, a link kind other
    than line, transformer or switch).
    """
    import pandapower as pp
    import pandapower.toolbox as tb

    if network.native is not None:
        net = pp.from_json_string(network.native)
    else:
        net = pp.create_empty_network(
            name=network.name,
            f_hz=float(network.attrs.get("f_hz", 50.0)),
            sn_mva=float(network.attrs.get("sn_mva", 1.0)),
        )
    if "geo" not in net.bus:
        net.bus["geo"] = None
    if "geo" not in net.line:
        net.line["geo"] = None
    by_kind: dict[str, list[Link]] = {"line": [], "transformer": [], "switch": []}
    for link in network.links.values():
        if link.kind not in by_kind:
            raise ValueError(
                f"link {link.id!r}: kind {link.kind!r} has no pandapower element "
                "(expected line, transformer or switch)"
            )
        by_kind[link.kind].append(link)

    # -- drop what the twin no longer has -----------------------------------------
    wanted = {_index_of(nid, "bus") for nid in network.nodes} - {None}
    gone = [int(b) for b in net.bus.index if int(b) not in wanted]
    if gone:
        tb.drop_buses(net, gone)
    for kind, table, drop in (
        ("line", "line", tb.drop_lines),
        ("transformer", "trafo", tb.drop_trafos),
    ):
        keep = {_index_of(lk.id, table) for lk in by_kind[kind]} - {None}
        gone = [int(i) for i in net[table].index if int(i) not in keep]
        if gone:
            drop(net, gone)
    keep_sw = {_index_of(lk.id, "switch") for lk in by_kind["switch"]} - {None}
    if len(net.switch):
        bb = net.switch.index[net.switch["et"] == "b"]
        gone = [int(i) for i in bb if int(i) not in keep_sw]
        if gone:
            net.switch.drop(index=gone, inplace=True)

    # -- buses ----------------------------------------------------------------------
    new_nodes = []
    bus_of: dict[str, int] = {}
    for node in network.nodes.values():
        b = _index_of(node.id, "bus")
        if b is not None and b in net.bus.index:
            bus_of[node.id] = b
        else:
            if not _present(node.attrs.get("vn_kv")):
                raise ValueError(f"node {node.id!r}: a new bus needs vn_kv (kV)")
            new_nodes.append((node, b))
    if new_nodes:
        idx = _indices(net.bus, [b for _, b in new_nodes])
        pp.create_buses(
            net,
            len(new_nodes),
            [float(n.attrs["vn_kv"]) for n, _ in new_nodes],
            index=idx,
            name=[n.name if n.name is not None else n.id for n, _ in new_nodes],
            zone=[n.attrs.get("zone") for n, _ in new_nodes],
        )
        bus_of.update({n.id: i for (n, _), i in zip(new_nodes, idx, strict=True)})
    new_ids = {n.id for n, _ in new_nodes}
    elements = _BusElements(net)
    pending = _Pending()
    for node in network.nodes.values():
        b = bus_of[node.id]
        _apply_bus(net, b, node, elements, pending)
        # buses laid out on read (no geodata in native) keep no geodata
        if network.native is None or node.id in new_ids or _present(net.bus.at[b, "geo"]):
            lonlat = np.asarray([node.lonlat], dtype=float)
            try:
                old = _point_xy(net.bus.at[b, "geo"])
            except (ValueError, TypeError, KeyError, IndexError):
                old = None
            old_xy = None if old is None else np.asarray([old], dtype=float)
            if not _same_place(network.placement, old_xy, lonlat):
                net.bus.at[b, "geo"] = _geo_point(network.placement.inverse_xy(lonlat)[0])

    # -- lines ----------------------------------------------------------------------
    line_sw = _switch_index(net, "l")
    new_lines = []
    line_of: dict[str, int] = {}
    for link in by_kind["line"]:
        fb, tb_ = bus_of[link.start], bus_of[link.end]
        i = _index_of(link.id, "line")
        if i is None or i not in net.line.index:
            new_lines.append((link, fb, tb_, i))
            continue
        line_of[link.id] = i
        a = link.attrs
        _set(net.line, i, "from_bus", fb)
        _set(net.line, i, "to_bus", tb_)
        if "length_m" in a:
            _set(net.line, i, "length_km", float(a["length_m"]) / 1000.0)
        for key in _LINE_NUMERIC:
            if _present(a.get(key)):
                _set(net.line, i, key, float(a[key]))
        for key, cast in (("parallel", int), ("in_service", bool)):
            if key in a:
                _set(net.line, i, key, cast(a[key]))
        if _present(a.get("std_type")):
            _set(net.line, i, "std_type", str(a["std_type"]))
    line_of.update(_create_lines(net, new_lines))
    created = {lk.id for lk, _, _, _ in new_lines}
    for link in by_kind["line"]:
        i = line_of[link.id]
        has_geo = _present(net.line.at[i, "geo"])
        if network.native is None or link.id in created or has_geo or len(link.geometry.coords) > 2:
            lonlat = np.asarray(link.geometry.coords, dtype=float)[:, :2]
            try:
                old_route = _line_xy(net.line.at[i, "geo"])
            except (ValueError, TypeError, KeyError, IndexError):
                old_route = None
            if not _same_place(network.placement, old_route, lonlat):
                net.line.at[i, "geo"] = _geo_line(network.placement.inverse_xy(lonlat))
        _end_switches(net, line_sw, "l", i, link, (bus_of[link.start], bus_of[link.end]), pending)

    # -- transformers ---------------------------------------------------------------
    trafo_sw = _switch_index(net, "t")
    for link in by_kind["transformer"]:
        hv, lv = bus_of[link.start], bus_of[link.end]
        i = _index_of(link.id, "trafo")
        a = link.attrs
        if i is None or i not in net.trafo.index:
            i = _create_trafo(net, link, hv, lv, i)
        else:
            _set(net.trafo, i, "hv_bus", hv)
            _set(net.trafo, i, "lv_bus", lv)
            for key in _TRAFO_NUMERIC:
                if _present(a.get(key)):
                    _set(net.trafo, i, key, float(a[key]))
            for key, cast in (("parallel", int), ("in_service", bool)):
                if key in a:
                    _set(net.trafo, i, key, cast(a[key]))
        _end_switches(net, trafo_sw, "t", i, link, (hv, lv), pending)

    # -- bus-bus switches -----------------------------------------------------------
    for link in by_kind["switch"]:
        a_bus, b_bus = bus_of[link.start], bus_of[link.end]
        i = _index_of(link.id, "switch")
        closed = bool(link.attrs.get("closed", True))
        if i is None or i not in net.switch.index:
            pp.create_switch(
                net,
                a_bus,
                b_bus,
                et="b",
                closed=closed,
                type=link.attrs.get("switch_type"),
                name=link.name,
                index=_indices(net.switch, [i])[0],
                z_ohm=float(link.attrs.get("z_ohm", 0.0)),
            )
        else:
            _set(net.switch, i, "bus", a_bus)
            _set(net.switch, i, "element", b_bus)
            _set(net.switch, i, "closed", closed)
    pending.create(net)
    return net


def write_pandapower(network: Network, path: str | Path) -> Path:
    """Write ``network`` as a pandapower JSON file (see :func:`to_pandapower`); returns the path."""
    import pandapower as pp

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pp.to_json(to_pandapower(network), str(path))
    return path
