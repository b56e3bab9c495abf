"""EPANET INP water networks: import into the twin and export back.

:func:`read_epanet` validates the file line by line with the shared INP tokenizer
(:mod:`rescity.io.inp`), then lets WNTR parse it and builds a water
:class:`~rescity.model.Network`. The WNTR dictionary of the whole model (SI units:
metres, cubic metres per second, seconds) is kept as ``network.native`` so patterns,
curves, controls and options survive; :func:`write_epanet` updates that dictionary from
the twin (which is authoritative for the nodes and links it holds, their attributes and
coordinates, including elements added or removed in the twin) and lets WNTR write the INP
file in the original flow units.

Twin attributes (SI, unit in the suffix):

* junction: ``elevation_m``, ``base_demand_m3s`` (first demand category),
  ``demand_pattern``
* tank: ``elevation_m``, ``init_level_m``, ``min_level_m``, ``max_level_m``,
  ``diameter_m``, ``min_vol_m3``, ``vol_curve``, ``overflow``
* reservoir: ``base_head_m``, ``head_pattern``
* pipe: ``length_m``, ``diameter_m``, ``roughness`` (Hazen-Williams C, Darcy-Weisbach
  roughness in metres or Chezy-Manning n, per the model's headloss formula),
  ``minor_loss``, ``initial_status``, ``check_valve``
* pump: ``pump_type`` (HEAD or POWER), ``pump_curve``, ``power_w``, ``speed``,
  ``speed_pattern``, ``initial_status``
* valve: ``valve_type``, ``diameter_m``, ``initial_setting`` (m of head for PRV/PSV/PBV,
  m3/s for FCV, a loss coefficient for TCV), ``headloss_curve`` (GPV), ``minor_loss``,
  ``initial_status``
"""

from __future__ import annotations

import copy
import json
import math
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import LineString, Point

from rescity.model.enums import NetworkType
from rescity.model.geo import Placement
from rescity.model.network import Link, Network, NetworkError, Node

from .errors import FormatError
from .inp import (
    IdRegistry,
    InpFile,
    RowSpec,
    check_count,
    check_refs,
    check_rows,
    enum_field,
    export_xy,
    locate,
    parse_number,
    read_inp,
    resolve_placement,
)

SOURCE_FORMAT = "epanet-inp"

#: flow units EPANET accepts in [OPTIONS] UNITS (GPM when absent)
FLOW_UNITS = ("CFS", "GPM", "MGD", "IMGD", "AFD", "LPS", "LPM", "MLD", "CMH", "CMD")
DEFAULT_UNITS = "GPM"
#: flow units of a network exported without a native model
NEW_MODEL_UNITS = "LPS"

SECTIONS = frozenset({
    "TITLE", "JUNCTIONS", "RESERVOIRS", "TANKS", "PIPES", "PUMPS", "VALVES", "EMITTERS",
    "CURVES", "PATTERNS", "ENERGY", "STATUS", "CONTROLS", "RULES", "DEMANDS", "QUALITY",
    "REACTIONS", "SOURCES", "MIXING", "OPTIONS", "TIMES", "REPORT", "COORDINATES",
    "VERTICES", "LABELS", "BACKDROP", "TAGS",
})
NODE_SECTIONS = ("JUNCTIONS", "RESERVOIRS", "TANKS")
LINK_SECTIONS = ("PIPES", "PUMPS", "VALVES")

_SPECS: dict[str, RowSpec] = {
    "JUNCTIONS": RowSpec(("ID", "Elev", "Demand", "Pattern"), 2, 4, (1, 2)),
    "RESERVOIRS": RowSpec(("ID", "Head", "Pattern"), 2, 3, (1,)),
    "TANKS": RowSpec(
        ("ID", "Elevation", "InitLevel", "MinLevel", "MaxLevel", "Diameter", "MinVol",
         "VolCurve", "Overflow"), 6, 9, (1, 2, 3, 4, 5, 6),
    ),
    "PIPES": RowSpec(
        ("ID", "Node1", "Node2", "Length", "Diameter", "Roughness", "MinorLoss", "Status"),
        6, 8, (3, 4, 5, 6),
    ),
    "PUMPS": RowSpec(("ID", "Node1", "Node2", "Keyword", "Value"), 5),
    "VALVES": RowSpec(
        ("ID", "Node1", "Node2", "Diameter", "Type", "Setting", "MinorLoss"), 6, 7, (3, 6)
    ),
    "EMITTERS": RowSpec(("Junction", "Coefficient"), 2, 2, (1,)),
    "DEMANDS": RowSpec(("Junction", "Demand", "Pattern", "Category"), 2, 4, (1,)),
    "STATUS": RowSpec(("ID", "Status/Setting"), 2, 2),
    "PATTERNS": RowSpec(("ID", "Multiplier"), 2),
    "CURVES": RowSpec(("ID", "X-Value", "Y-Value"), 3, 3, (1, 2)),
    "QUALITY": RowSpec(("Node", "InitQual"), 2, 2, (1,)),
    "SOURCES": RowSpec(("Node", "Type", "Quality", "Pattern"), 3, 4, (2,)),
    "MIXING": RowSpec(("Tank", "Model", "Fraction"), 2, 3, (2,)),
    "COORDINATES": RowSpec(("Node", "X-Coord", "Y-Coord"), 3, 3, (1, 2)),
    "VERTICES": RowSpec(("Link", "X-Coord", "Y-Coord"), 3, 3, (1, 2)),
    "LABELS": RowSpec(("X-Coord", "Y-Coord", "Label", "Anchor"), 3, None, (0, 1)),
}

_PIPE_STATUS = ("OPEN", "CLOSED", "CV")
_VALVE_TYPES = ("PRV", "PSV", "PBV", "FCV", "TCV", "GPV")
_PUMP_KEYWORDS = ("HEAD", "POWER", "SPEED", "PATTERN")
_LINK_WORDS = ("LINK", "PIPE", "PUMP", "VALVE")
_NODE_WORDS = ("NODE", "JUNCTION", "TANK", "RESERVOIR")
_ELEMENT_WORDS = frozenset(_LINK_WORDS + _NODE_WORDS)

#: twin kind <-> WNTR type
_NODE_TYPES = {"junction": "Junction", "tank": "Tank", "reservoir": "Reservoir"}
_LINK_TYPES = {"pipe": "Pipe", "pump": "Pump", "valve": "Valve"}

#: twin attribute <-> WNTR dictionary key, per kind (values SI on both sides)
_NODE_ATTRS: dict[str, tuple[tuple[str, str], ...]] = {
    "junction": (("elevation_m", "elevation"),),
    "tank": (
        ("elevation_m", "elevation"), ("init_level_m", "init_level"),
        ("min_level_m", "min_level"), ("max_level_m", "max_level"),
        ("diameter_m", "diameter"), ("min_vol_m3", "min_vol"),
        ("vol_curve", "vol_curve_name"), ("overflow", "overflow"),
    ),
    "reservoir": (("base_head_m", "base_head"), ("head_pattern", "head_pattern_name")),
}
_LINK_ATTRS: dict[str, tuple[tuple[str, str], ...]] = {
    "pipe": (
        ("length_m", "length"), ("diameter_m", "diameter"), ("roughness", "roughness"),
        ("minor_loss", "minor_loss"), ("initial_status", "initial_status"),
        ("check_valve", "check_valve"),
    ),
    "pump": (
        ("pump_type", "pump_type"), ("pump_curve", "pump_curve_name"), ("power_w", "power"),
        ("speed", "base_speed"), ("speed_pattern", "speed_pattern_name"),
        ("initial_status", "initial_status"),
    ),
    "valve": (
        ("valve_type", "valve_type"), ("diameter_m", "diameter"),
        ("initial_setting", "initial_setting"), ("headloss_curve", "headloss_curve_name"),
        ("minor_loss", "minor_loss"), ("initial_status", "initial_status"),
    ),
}


# -- reading ------------------------------------------------------------------------


def read_epanet(
    path: str | Path, *, name: str | None = None, placement: Placement | None = None
) -> Network:
    """Import an EPANET INP file as a water network.

    ``name`` defaults to the file's stem. ``placement`` maps the file's coordinates to
    WGS84; without one they must already be lon/lat. Every fault in the file (missing
    file, unknown section, wrong field count, a non-number where a number belongs, unknown
    flow units, duplicate ids, references to undefined elements, anything WNTR refuses)
    is a :class:`~rescity.io.errors.FormatError` naming the file and, where known, the
    line, section and field.
    """
    p = Path(path)
    inp = read_inp(p, canonical=_canonical_section, end_marker="END")
    units = _validate(inp)
    data = _load_model(inp)
    xy, lines = _file_points(inp, data)
    placed = resolve_placement(inp, xy, lines, placement)
    net = Network(
        name=name or p.stem,
        type=NetworkType.WATER,
        placement=placed,
        source_format=SOURCE_FORMAT,
        native={"format": SOURCE_FORMAT, "units": units, "wntr": data},
    )
    _build(net, data, placed.forward_xy(xy) if len(xy) else xy)
    return net


def _canonical_section(written: str) -> str | None:
    """EPANET section names, accepting a missing or extra plural S as WNTR does."""
    for cand in (written, written + "S", written[:-1] if written.endswith("S") else written):
        if cand in SECTIONS:
            return cand
    return None


def _validate(inp: InpFile) -> str:
    """Check every record the twin relies on; return the file's flow units."""
    for section, spec in _SPECS.items():
        check_rows(inp, section, spec)
    units = _flow_units(inp)
    nodes = IdRegistry(inp, "node")
    nodes.add_all(NODE_SECTIONS)
    links = IdRegistry(inp, "link")
    links.add_all(LINK_SECTIONS)
    patterns, curves = _named_tables(inp)
    _check_links(inp, nodes, curves, patterns)
    _check_patterns(inp)
    _check_references(inp, nodes, links, patterns, curves)
    _check_controls(inp, nodes, links)
    _check_rules(inp, nodes, links)
    return units


def _flow_units(inp: InpFile) -> str:
    """The UNITS option; a FormatError for an unknown value or none at all (EPANET would
    assume GPM, WNTR cannot read a file without it)."""
    units = None
    for line in inp.section("OPTIONS"):
        if line.fields[0].upper() == "UNITS":
            check_count(inp, line, "OPTIONS", RowSpec(("UNITS", "Value"), 2, 2))
            units = enum_field(inp, line, "OPTIONS", 1, "UNITS", FLOW_UNITS)
    if units is None:
        raise inp.error(
            "no UNITS option in [OPTIONS]: the flow units are needed (is the file "
            "truncated?)", inp.n_lines, "OPTIONS", field="UNITS",
        )
    return units


def _named_tables(inp: InpFile) -> tuple[set[str], set[str]]:
    """Ids of the patterns and of the curves (several lines may share one id)."""
    return (
        {line.fields[0] for line in inp.section("PATTERNS")},
        {line.fields[0] for line in inp.section("CURVES")},
    )


def _check_links(
    inp: InpFile, nodes: IdRegistry, curves: set[str], patterns: set[str]
) -> None:
    """End nodes of every link, pipe status, valve type and pump keywords."""
    for section in LINK_SECTIONS:
        for line in inp.section(section):
            start = nodes.require(line.fields[1], line, section, "Node1")
            end = nodes.require(line.fields[2], line, section, "Node2")
            if start == end:
                raise inp.error(
                    f"link {line.fields[0]!r} starts and ends at the same node {start!r}",
                    line, section, field="Node2", feature=line.fields[0],
                )
    for line in inp.section("PIPES"):
        for i, what in ((3, "Length"), (4, "Diameter"), (5, "Roughness")):
            if parse_number(inp, line, "PIPES", i, what) <= 0:
                raise inp.error(
                    f"{what.lower()} must be greater than zero, found {line.fields[i]}",
                    line, "PIPES", field=what, feature=line.fields[0],
                )
        if len(line.fields) == 8:
            enum_field(inp, line, "PIPES", 7, "Status", _PIPE_STATUS)
    for line in inp.section("VALVES"):
        vtype = enum_field(inp, line, "VALVES", 4, "Type", _VALVE_TYPES)
        if vtype == "GPV":
            _require_named(inp, line, "VALVES", 5, "Setting", curves, "curve")
        else:
            parse_number(inp, line, "VALVES", 5, "Setting")
    for line in inp.section("PUMPS"):
        _check_pump(inp, line, curves, patterns)


def _check_pump(inp: InpFile, line: Any, curves: set[str], patterns: set[str]) -> None:
    """A pump's keyword-value pairs after its end nodes."""
    pairs = line.fields[3:]
    if len(pairs) % 2:
        raise inp.error(
            f"keyword {pairs[-1]!r} has no value (is the line cut off?)",
            line, "PUMPS", field=pairs[-1], feature=line.fields[0],
        )
    for i in range(3, len(line.fields), 2):
        key = enum_field(inp, line, "PUMPS", i, "Keyword", _PUMP_KEYWORDS)
        if key in ("POWER", "SPEED"):
            parse_number(inp, line, "PUMPS", i + 1, key)
        elif key == "HEAD":
            _require_named(inp, line, "PUMPS", i + 1, key, curves, "curve")
        else:
            _require_named(inp, line, "PUMPS", i + 1, key, patterns, "pattern")


def _require_named(
    inp: InpFile, line: Any, section: str, index: int, field: str, known: set[str], what: str
) -> None:
    """Field ``index`` must name a pattern or curve defined in the file."""
    value = line.fields[index]
    if value not in known:
        raise inp.error(
            f"refers to {what} {value!r} which is not defined in the file "
            "(is the file truncated?)", line, section, field=field, feature=line.fields[0],
        )


def _check_patterns(inp: InpFile) -> None:
    """Every multiplier of every pattern is a number."""
    for line in inp.section("PATTERNS"):
        for i in range(1, len(line.fields)):
            parse_number(inp, line, "PATTERNS", i, f"Multiplier {i}")


def _check_references(
    inp: InpFile, nodes: IdRegistry, links: IdRegistry, patterns: set[str], curves: set[str]
) -> None:
    """Node, link, pattern and curve ids named by the other sections must be defined."""
    for section in ("DEMANDS", "EMITTERS", "QUALITY", "SOURCES", "MIXING", "COORDINATES"):
        check_refs(inp, section, 0, _SPECS[section].names[0], nodes)
    for section in ("STATUS", "VERTICES"):
        check_refs(inp, section, 0, _SPECS[section].names[0], links)
    refs = (
        ("JUNCTIONS", 3, "Pattern", patterns, "pattern"),
        ("RESERVOIRS", 2, "Pattern", patterns, "pattern"),
        ("DEMANDS", 2, "Pattern", patterns, "pattern"),
        ("SOURCES", 3, "Pattern", patterns, "pattern"),
        ("TANKS", 7, "VolCurve", curves | {"*"}, "curve"),
    )
    for section, index, field, known, what in refs:
        for line in inp.section(section):
            if index < len(line.fields):
                _require_named(inp, line, section, index, field, known, what)


def _check_controls(inp: InpFile, nodes: IdRegistry, links: IdRegistry) -> None:
    """Simple controls: ``LINK id status IF NODE id ABOVE|BELOW value`` or
    ``LINK id status AT TIME|CLOCKTIME time [AM|PM]``."""
    spec = RowSpec(("LINK", "Link", "Status", "IF/AT", "NODE/TIME", "Node/Time", "Relation",
                    "Value"), 6)
    for line in inp.section("CONTROLS"):
        check_count(inp, line, "CONTROLS", spec)
        f = [w.upper() for w in line.fields]
        enum_field(inp, line, "CONTROLS", 0, "LINK", _LINK_WORDS)
        links.require(line.fields[1], line, "CONTROLS", "Link")
        how = enum_field(inp, line, "CONTROLS", 3, "IF/AT", ("IF", "AT"))
        if how == "IF":
            check_count(inp, line, "CONTROLS", RowSpec(spec.names, 8))
            enum_field(inp, line, "CONTROLS", 4, "NODE", _NODE_WORDS)
            nodes.require(line.fields[5], line, "CONTROLS", "Node")
            enum_field(inp, line, "CONTROLS", 6, "Relation", ("ABOVE", "BELOW"))
            parse_number(inp, line, "CONTROLS", 7, "Value")
        elif f[4] not in ("TIME", "CLOCKTIME"):
            enum_field(inp, line, "CONTROLS", 4, "TIME", ("TIME", "CLOCKTIME"))


def _check_rules(inp: InpFile, nodes: IdRegistry, links: IdRegistry) -> None:
    """Rule clauses that name a node or link must name a defined one."""
    clause = ("IF", "AND", "OR", "THEN", "ELSE")
    for line in inp.section("RULES"):
        f = line.fields
        if f[0].upper() in clause and len(f) > 2 and f[1].upper() in _ELEMENT_WORDS:
            registry = links if f[1].upper() in _LINK_WORDS else nodes
            registry.require(f[2], line, "RULES", f[1].upper())


def _load_model(inp: InpFile) -> dict[str, Any]:
    """WNTR's dictionary of the model, JSON-safe; WNTR's errors become FormatErrors."""
    import wntr

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wn = wntr.network.WaterNetworkModel(str(inp.path))
            data = wntr.network.to_dict(wn)
    except Exception as exc:  # noqa: BLE001 - any WNTR failure is a bad file
        raise _wntr_error(inp, exc) from exc
    data["name"] = inp.path.name
    return _json_safe(data)


def _wntr_error(inp: InpFile, exc: BaseException) -> FormatError:
    """A FormatError for a WNTR failure: the innermost cause's message, and the line WNTR
    reports or, failing that, the one line that holds the value it complains about."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 10:
        chain.append(chain[-1].__cause__)
    line: int | None = None
    for e in chain:
        num = getattr(e, "line_num", None)
        if isinstance(num, int):
            line = num
    inner = chain[-1]
    message = str(inner) or type(inner).__name__
    if line is None:
        quoted = re.findall(r"'([^']+)'", message)
        hit = locate(inp, quoted[-1]) if quoted else None
        line = hit.number if hit is not None else None
    return FormatError(inp.path, f"WNTR cannot read the model: {message}", line=line)


def _json_safe(value: Any) -> Any:
    """Plain JSON types only: tuples become lists, numpy scalars Python numbers and
    non-finite floats None (a database JSON column rejects NaN)."""
    text = json.dumps(value, default=_json_default)
    return json.loads(text, parse_constant=lambda _name: None)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _file_points(inp: InpFile, data: dict[str, Any]) -> tuple[np.ndarray, list[Any]]:
    """All node and vertex coordinates of the model (file units) and their lines."""
    node_line = {line.fields[0]: line for line in inp.section("COORDINATES")}
    vertex_lines: dict[str, list[Any]] = {}
    for line in inp.section("VERTICES"):
        vertex_lines.setdefault(line.fields[0], []).append(line)
    pts: list[list[float]] = []
    lines: list[Any] = []
    for rec in data["nodes"]:
        pts.append(list(rec.get("coordinates") or (0.0, 0.0)))
        lines.append(node_line.get(rec["name"]))
    for rec in data["links"]:
        for i, v in enumerate(rec.get("vertices") or []):
            pts.append(list(v))
            vl = vertex_lines.get(rec["name"], [])
            lines.append(vl[i] if i < len(vl) else None)
    return np.asarray(pts, dtype=float).reshape(-1, 2), lines


def _build(net: Network, data: dict[str, Any], lonlat: np.ndarray) -> None:
    """Nodes and links of the twin from the WNTR dictionary; ``lonlat`` holds the WGS84
    positions of the nodes then of the link vertices, in dictionary order."""
    where: dict[str, tuple[float, float]] = {}
    for i, rec in enumerate(data["nodes"]):
        kind = _kind(_NODE_TYPES, rec["node_type"])
        pos = (float(lonlat[i, 0]), float(lonlat[i, 1]))
        where[rec["name"]] = pos
        net.add_node(Node(rec["name"], kind, Point(pos), _node_attrs(kind, rec)))
    k = len(data["nodes"])
    for rec in data["links"]:
        kind = _kind(_LINK_TYPES, rec["link_type"])
        nv = len(rec.get("vertices") or [])
        mid = [(float(x), float(y)) for x, y in lonlat[k:k + nv]]
        k += nv
        s, e = rec["start_node_name"], rec["end_node_name"]
        geom = LineString([where[s], *mid, where[e]])
        attrs = _link_attrs(kind, rec)
        lid = net.link_id_for(rec["name"])
        if lid != rec["name"]:
            attrs["file_id"] = rec["name"]
        net.add_link(Link(lid, kind, s, e, geom, attrs))


def _kind(table: dict[str, str], wntr_type: str) -> str:
    return next(k for k, v in table.items() if v == wntr_type)


def _node_attrs(kind: str, rec: dict[str, Any]) -> dict[str, Any]:
    attrs = {a: rec.get(k) for a, k in _NODE_ATTRS[kind] if k in rec}
    if kind == "junction":
        demands = rec.get("demand_timeseries_list") or []
        first = demands[0] if demands else {}
        attrs["base_demand_m3s"] = float(first.get("base_val", rec.get("base_demand") or 0.0))
        attrs["demand_pattern"] = first.get("pattern_name", rec.get("demand_pattern"))
    return attrs


def _link_attrs(kind: str, rec: dict[str, Any]) -> dict[str, Any]:
    return {a: rec.get(k) for a, k in _LINK_ATTRS[kind] if k in rec and rec.get(k) is not None}


# -- writing ------------------------------------------------------------------------


def write_epanet(network: Network, path: str | Path) -> None:
    """Export a water network as an EPANET INP file.

    The twin is authoritative for its nodes and links (attributes, end nodes,
    coordinates written back through ``network.placement``); everything else (patterns,
    curves, controls, options, flow units) comes from ``network.native``. Elements added
    in the twin are written, elements removed from it are dropped together with the
    controls and sources that name them. A network without a native model is written
    with default options in LPS. Raises :class:`~rescity.model.NetworkError` when the
    twin cannot be expressed in EPANET (an unknown kind, missing required attributes).
    """
    import wntr

    network = network.with_file_ids()
    data, units = _native_model(network)
    removed = _sync_nodes(data, network) | _sync_links(data, network)
    _prune(data, removed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wn = wntr.network.from_dict(copy.deepcopy(data))
    except Exception as exc:  # noqa: BLE001 - report any WNTR refusal as a bad network
        raise NetworkError(
            f"network {network.name!r} cannot be written as EPANET: {exc}"
        ) from exc
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    wntr.network.write_inpfile(wn, str(path), units=units)


def _native_model(network: Network) -> tuple[dict[str, Any], str]:
    """A private copy of the native WNTR dictionary (or an empty model) and its units."""
    native = network.native if isinstance(network.native, dict) else None
    if native and "wntr" in native:
        return copy.deepcopy(native["wntr"]), native.get("units", DEFAULT_UNITS)
    import wntr

    data = _json_safe(wntr.network.to_dict(wntr.network.WaterNetworkModel()))
    data["name"] = network.name
    return data, NEW_MODEL_UNITS


def _sync_nodes(data: dict[str, Any], network: Network) -> set[str]:
    """Replace the dictionary's nodes by the twin's; return the ids removed."""
    old = {rec["name"]: rec for rec in data["nodes"]}
    nodes = list(network.nodes.values())
    original = np.array(
        [_coords_or_nan(old.get(n.id), "coordinates") for n in nodes], dtype=float
    ).reshape(-1, 2)
    lonlat = np.array([n.lonlat for n in nodes], dtype=float).reshape(-1, 2)
    xy, _ = export_xy(network.placement, lonlat, original)
    out = []
    for node, (x, y) in zip(nodes, xy, strict=True):
        wtype = _wntr_type(_NODE_TYPES, node.kind, "node", node.id)
        rec = old.get(node.id)
        if rec is None or rec.get("node_type") != wtype:
            rec = {"name": node.id, "node_type": wtype}
        _apply(rec, node.attrs, _NODE_ATTRS[node.kind])
        if node.kind == "junction":
            _apply_demand(rec, node.attrs)
        rec["coordinates"] = [float(x), float(y)]
        out.append(rec)
    data["nodes"] = out
    return set(old) - set(network.nodes)


def _sync_links(data: dict[str, Any], network: Network) -> set[str]:
    """Replace the dictionary's links by the twin's; return the ids removed."""
    old = {rec["name"]: rec for rec in data["links"]}
    out = []
    for link in network.links.values():
        wtype = _wntr_type(_LINK_TYPES, link.kind, "link", link.id)
        rec = old.get(link.id)
        if rec is None or rec.get("link_type") != wtype:
            rec = {"name": link.id, "link_type": wtype}
        rec["start_node_name"], rec["end_node_name"] = link.start, link.end
        _apply(rec, link.attrs, _LINK_ATTRS[link.kind])
        rec["vertices"] = _vertices(network.placement, link, rec.get("vertices"))
        out.append(rec)
    data["links"] = out
    return set(old) - set(network.links)


def _coords_or_nan(rec: dict[str, Any] | None, key: str) -> list[float]:
    value = rec.get(key) if rec else None
    return [float(value[0]), float(value[1])] if value else [math.nan, math.nan]


def _wntr_type(table: dict[str, str], kind: str, what: str, element: str) -> str:
    try:
        return table[kind]
    except KeyError:
        raise NetworkError(
            f"{what} {element!r} of kind {kind!r} cannot be written to EPANET "
            f"(expected one of {', '.join(table)})"
        ) from None


def _apply(
    rec: dict[str, Any], attrs: dict[str, Any], mapping: Iterable[tuple[str, str]]
) -> None:
    """Copy the twin's attributes into a WNTR record (the twin wins where it has a value)."""
    for attr, key in mapping:
        if attr in attrs:
            rec[key] = attrs[attr]


def _apply_demand(rec: dict[str, Any], attrs: dict[str, Any]) -> None:
    """The twin's base demand and pattern go to the first demand category."""
    demands = rec.get("demand_timeseries_list") or [
        {"base_val": 0.0, "pattern_name": None, "category": None}
    ]
    if "base_demand_m3s" in attrs:
        demands[0]["base_val"] = float(attrs["base_demand_m3s"])
        rec["base_demand"] = demands[0]["base_val"]
    if "demand_pattern" in attrs:
        demands[0]["pattern_name"] = attrs["demand_pattern"]
        rec["demand_pattern"] = attrs["demand_pattern"]
    rec["demand_timeseries_list"] = demands


def _vertices(placement: Placement, link: Link, original: Any) -> list[list[float]]:
    """The interior points of the link's geometry, in file coordinates."""
    inner = np.asarray(link.geometry.coords, dtype=float)[1:-1] if not link.geometry.is_empty \
        else np.zeros((0, 2))
    if len(inner) == 0:
        return []
    orig = np.asarray(original, dtype=float).reshape(-1, 2) if original else None
    if orig is None or len(orig) != len(inner):
        orig = None
    xy, _ = export_xy(placement, inner, orig)
    return [[float(x), float(y)] for x, y in xy]


def _prune(data: dict[str, Any], removed: set[str]) -> None:
    """Drop controls and sources that name removed elements."""
    if not removed:
        return
    data["controls"] = [c for c in data.get("controls") or [] if not _mentions(c, removed)]
    data["sources"] = [
        s for s in data.get("sources") or [] if s.get("node_name") not in removed
    ]
    quality = data.get("options", {}).get("quality", {})
    if quality.get("trace_node") in removed:
        quality["parameter"], quality["trace_node"] = "NONE", None


def _mentions(control: dict[str, Any], names: set[str]) -> bool:
    """Whether a control's text names one of ``names`` after NODE/LINK/PIPE/... words."""
    texts: list[str] = []
    for value in control.values():
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.extend(v for v in value if isinstance(v, str))
    for text in texts:
        words = text.split()
        for a, b in zip(words, words[1:], strict=False):
            if a.upper() in _ELEMENT_WORDS and b in names:
                return True
    return False
