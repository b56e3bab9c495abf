"""SWMM INP drainage models: import into the twin and export back.

:func:`read_swmm` validates the file line by line with the shared INP tokenizer
(:mod:`rescity.io.inp`), lets the SWMM engine (through pyswmm) open it to catch what only
the engine checks, and builds a drainage :class:`~rescity.model.Network`.

The twin owns the sections that describe its elements and their geometry:
``[JUNCTIONS] [OUTFALLS] [STORAGE] [DIVIDERS] [SUBCATCHMENTS] [CONDUITS] [PUMPS]
[ORIFICES] [WEIRS] [OUTLETS] [XSECTIONS] [COORDINATES] [VERTICES] [POLYGONS]``.
:func:`write_swmm` regenerates those from the twin, converting SI back to the file's
units, and writes every other section verbatim from ``network.native``. Columns of owned
rows that the twin does not hold (a junction's surcharge depth is held, a storage node's
shape parameters are not) are kept from the original row. A value the twin did not change
is written with its original text, so an unedited model reproduces its results exactly.

Units: models in CFS, GPM or MGD use feet, acres (subcatchment area) and square feet
(ponded area); CMS, LPS and MLD use metres, hectares and square metres. Twin attributes
are SI with the unit in the suffix:

* junction: ``invert_elev_m``, ``max_depth_m``, ``init_depth_m``,
  ``surcharge_depth_m``, ``ponded_area_m2``
* outfall: ``invert_elev_m``, ``outfall_type`` (read only)
* storage: ``invert_elev_m``, ``max_depth_m``, ``init_depth_m``, ``storage_shape``
  (read only)
* divider: ``invert_elev_m``, ``diverted_link``, ``divider_type`` (read only)
* subcatchment (a node whose geometry is its polygon): ``rain_gage``, ``outlet``,
  ``area_m2``, ``imperv_pct``, ``width_m``, ``slope_pct``, ``curb_length_m``
* conduit: ``length_m``, ``roughness`` (Manning n), ``inlet_offset_m``,
  ``outlet_offset_m``, ``init_flow_m3s``, ``max_flow_m3s``
* pump: ``pump_curve``, ``initial_status``, ``startup_depth_m``, ``shutoff_depth_m``
* orifice: ``orifice_type``, ``offset_m``, ``discharge_coeff``, ``flap_gate``
* weir: ``weir_type``, ``crest_height_m``
* outlet: ``crest_height_m``, ``outlet_type`` (read only)
* conduits, orifices and weirs also: ``shape``, ``geom1_m`` (full height or diameter)
"""

from __future__ import annotations

import copy
import math
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from rescity.model.enums import NetworkType
from rescity.model.geo import Placement
from rescity.model.network import Link, Network, NetworkError, Node
from rescity.model.units import from_si, to_si

from .errors import FormatError
from .inp import (
    IdRegistry,
    InpFile,
    InpLine,
    RowSpec,
    check_count,
    check_refs,
    check_rows,
    enum_field,
    export_xy,
    fmt_number,
    fmt_row,
    parse_number,
    read_inp,
    resolve_placement,
    split_fields,
)

SOURCE_FORMAT = "swmm-inp"

#: flow units SWMM accepts in [OPTIONS] FLOW_UNITS (CFS when absent)
FLOW_UNITS = ("CFS", "GPM", "MGD", "CMS", "LPS", "MLD")
US_UNITS = frozenset({"CFS", "GPM", "MGD"})
DEFAULT_UNITS = "CFS"
#: flow units of a network exported without a native model
NEW_MODEL_UNITS = "CMS"

#: SWMM matches a section header by these prefixes (as the engine does); canonical names
_SECTION_PREFIXES: tuple[tuple[str, str], ...] = (
    ("TITLE", "TITLE"), ("OPTION", "OPTIONS"), ("FILE", "FILES"), ("RAINGAGE", "RAINGAGES"),
    ("TEMP", "TEMPERATURE"), ("EVAP", "EVAPORATION"), ("SUBCATCHMENT", "SUBCATCHMENTS"),
    ("SUBAREA", "SUBAREAS"), ("INFILTRATION", "INFILTRATION"), ("AQUIFER", "AQUIFERS"),
    ("GROUNDWATER", "GROUNDWATER"), ("SNOWPACK", "SNOWPACKS"), ("JUNC", "JUNCTIONS"),
    ("OUTFALL", "OUTFALLS"), ("STORAGE", "STORAGE"), ("DIVIDER", "DIVIDERS"),
    ("CONDUIT", "CONDUITS"), ("PUMP", "PUMPS"), ("ORIFICE", "ORIFICES"), ("WEIR", "WEIRS"),
    ("OUTLET", "OUTLETS"), ("XSECT", "XSECTIONS"), ("TRANSECT", "TRANSECTS"),
    ("LOSS", "LOSSES"), ("CONTROL", "CONTROLS"), ("POLLUT", "POLLUTANTS"),
    ("LANDUSE", "LANDUSES"), ("BUILDUP", "BUILDUP"), ("WASHOFF", "WASHOFF"),
    ("COVERAGE", "COVERAGES"), ("INFLOW", "INFLOWS"), ("DWF", "DWF"),
    ("PATTERN", "PATTERNS"), ("RDII", "RDII"), ("HYDROGRAPH", "HYDROGRAPHS"),
    ("LOADING", "LOADINGS"), ("TREATMENT", "TREATMENT"), ("CURVE", "CURVES"),
    ("TIMESERIES", "TIMESERIES"), ("REPORT", "REPORT"), ("COORDINATE", "COORDINATES"),
    ("VERTICES", "VERTICES"), ("POLYGON", "POLYGONS"), ("LABEL", "LABELS"),
    ("SYMBOL", "SYMBOLS"), ("BACKDROP", "BACKDROP"), ("TAG", "TAGS"),
    ("PROFILE", "PROFILES"), ("MAP", "MAP"), ("LID_CONTROL", "LID_CONTROLS"),
    ("LID_USAGE", "LID_USAGE"), ("GWF", "GWF"), ("ADJUSTMENT", "ADJUSTMENTS"),
    ("EVENT", "EVENTS"), ("STREET", "STREETS"), ("INLET_USAGE", "INLET_USAGE"),
    ("INLET", "INLETS"),
)

#: cross-section shapes whose Geom1 names a transect or street instead of a height
_NAMED_SHAPES = frozenset({"IRREGULAR", "STREET"})


@dataclass(frozen=True, slots=True)
class _Col:
    """One column of an owned row held by the twin as ``attr``.

    ``quantity`` says how to convert: ``length`` (ft or m), ``area`` (ac or ha),
    ``ponded`` (ft2 or m2), ``flow`` (the model's flow units), ``number`` (as is) or
    ``text``. A ``writable=False`` column is imported for information only.
    """

    index: int
    attr: str
    quantity: str
    writable: bool = True


@dataclass(frozen=True, slots=True)
class _Owned:
    """An owned element section: its twin kinds, row layout, columns and the row a new
    element gets (the fields after the id and, for links, the two end nodes)."""

    section: str
    kinds: tuple[str, ...]
    spec: RowSpec
    cols: tuple[_Col, ...]
    default: dict[str, tuple[str, ...]] = field(default_factory=dict)
    is_link: bool = False


def _length(i: int, attr: str) -> _Col:
    """A length column (ft or m in the file, m in the twin)."""
    return _Col(i, attr, "length")


_NODE_SECTIONS: tuple[_Owned, ...] = (
    _Owned(
        "JUNCTIONS", ("junction",),
        RowSpec(("Name", "Elevation", "MaxDepth", "InitDepth", "SurDepth", "Aponded"),
                2, 6, (1, 2, 3, 4, 5)),
        (_length(1, "invert_elev_m"), _length(2, "max_depth_m"), _length(3, "init_depth_m"),
         _length(4, "surcharge_depth_m"), _Col(5, "ponded_area_m2", "ponded")),
        {"junction": ("0", "0", "0", "0", "0")},
    ),
    _Owned(
        "OUTFALLS", ("outfall",),
        RowSpec(("Name", "Elevation", "Type", "Stage Data", "Gated", "Route To"), 3, 6, (1,)),
        (_length(1, "invert_elev_m"), _Col(2, "outfall_type", "text", writable=False)),
        {"outfall": ("0", "FREE", "NO")},
    ),
    _Owned(
        "STORAGE", ("storage",),
        RowSpec(("Name", "Elevation", "MaxDepth", "InitDepth", "Shape", "Curve/Params"),
                6, None, (1, 2, 3)),
        (_length(1, "invert_elev_m"), _length(2, "max_depth_m"), _length(3, "init_depth_m"),
         _Col(4, "storage_shape", "text", writable=False)),
        {"storage": ("0", "0", "0", "FUNCTIONAL", "0", "0", "1000")},
    ),
    _Owned(
        "DIVIDERS", ("divider",),
        RowSpec(("Name", "Elevation", "Diverted Link", "Type", "Parameters"), 4, None, (1,)),
        (_length(1, "invert_elev_m"), _Col(2, "diverted_link", "text"),
         _Col(3, "divider_type", "text", writable=False)),
    ),
)
_SUBCATCHMENTS = _Owned(
    "SUBCATCHMENTS", ("subcatchment",),
    RowSpec(("Name", "Rain Gage", "Outlet", "Area", "%Imperv", "Width", "%Slope", "CurbLen",
             "SnowPack"), 7, 9, (3, 4, 5, 6, 7)),
    (_Col(1, "rain_gage", "text"), _Col(2, "outlet", "text"), _Col(3, "area_m2", "area"),
     _Col(4, "imperv_pct", "number"), _length(5, "width_m"), _Col(6, "slope_pct", "number"),
     _length(7, "curb_length_m")),
    {"subcatchment": ("*", "*", "0", "0", "0", "0", "0")},
)
_LINK_SECTIONS: tuple[_Owned, ...] = (
    _Owned(
        "CONDUITS", ("conduit",),
        RowSpec(("Name", "From Node", "To Node", "Length", "Roughness", "InOffset",
                 "OutOffset", "InitFlow", "MaxFlow"), 7, 9, (3, 4, 5, 6, 7, 8), star=(5, 6)),
        (_length(3, "length_m"), _Col(4, "roughness", "number"), _length(5, "inlet_offset_m"),
         _length(6, "outlet_offset_m"), _Col(7, "init_flow_m3s", "flow"),
         _Col(8, "max_flow_m3s", "flow")),
        {"conduit": ("0", "0.01", "0", "0", "0", "0")}, is_link=True,
    ),
    _Owned(
        "PUMPS", ("pump",),
        RowSpec(("Name", "From Node", "To Node", "Pump Curve", "Status", "Startup",
                 "Shutoff"), 4, 7, (5, 6)),
        (_Col(3, "pump_curve", "text"), _Col(4, "initial_status", "text"),
         _length(5, "startup_depth_m"), _length(6, "shutoff_depth_m")),
        {"pump": ("*", "ON", "0", "0")}, is_link=True,
    ),
    _Owned(
        "ORIFICES", ("orifice",),
        RowSpec(("Name", "From Node", "To Node", "Type", "Offset", "Qcoeff", "Gated",
                 "CloseTime"), 6, 8, (4, 5, 7), star=(4,)),
        (_Col(3, "orifice_type", "text"), _length(4, "offset_m"),
         _Col(5, "discharge_coeff", "number"), _Col(6, "flap_gate", "text")),
        {"orifice": ("SIDE", "0", "0.65", "NO", "0")}, is_link=True,
    ),
    _Owned(
        "WEIRS", ("weir",),
        RowSpec(("Name", "From Node", "To Node", "Type", "CrestHt", "Qcoeff", "Gated",
                 "EndCon", "EndCoeff", "Surcharge", "RoadWidth", "RoadSurf", "CoeffCurve"),
                6, 13, (4, 5), star=(4,)),
        (_Col(3, "weir_type", "text"), _length(4, "crest_height_m")),
        {"weir": ("TRANSVERSE", "0", "3.33", "NO", "0", "0")}, is_link=True,
    ),
    _Owned(
        "OUTLETS", ("outlet",),
        RowSpec(("Name", "From Node", "To Node", "Offset", "Type", "QTable/Qcoeff", "Qexpon",
                 "Gated"), 6, 8, (3,), star=(3,)),
        (_length(3, "crest_height_m"), _Col(4, "outlet_type", "text", writable=False)),
        {"outlet": ("0", "FUNCTIONAL/DEPTH", "10", "0.5", "NO")}, is_link=True,
    ),
)
_XSECTIONS = _Owned(
    "XSECTIONS", ("conduit", "orifice", "weir"),
    RowSpec(("Link", "Shape", "Geom1", "Geom2", "Geom3", "Geom4", "Barrels", "Culvert"), 3, 8),
    (_Col(1, "shape", "text"), _length(2, "geom1_m")),
    {"conduit": ("CIRCULAR", "1", "0", "0", "0", "1"), "orifice": ("CIRCULAR", "1", "0", "0", "0"),
     "weir": ("RECT_OPEN", "1", "1", "0", "0")},
)
_ELEMENT_SECTIONS = (*_NODE_SECTIONS, _SUBCATCHMENTS, *_LINK_SECTIONS, _XSECTIONS)
_GEOMETRY_SECTIONS = ("COORDINATES", "VERTICES", "POLYGONS")
OWNED_SECTIONS = frozenset(s.section for s in _ELEMENT_SECTIONS) | frozenset(_GEOMETRY_SECTIONS)

_XY = RowSpec(("Name", "X-Coord", "Y-Coord"), 3, 3, (1, 2))
_OTHER_SPECS: dict[str, RowSpec] = {
    "COORDINATES": _XY, "VERTICES": _XY, "POLYGONS": _XY, "SYMBOLS": _XY,
    "SUBAREAS": RowSpec(("Subcatchment", "N-Imperv", "N-Perv", "S-Imperv", "S-Perv",
                         "PctZero", "RouteTo", "PctRouted"), 7, 8, (1, 2, 3, 4, 5, 7)),
    "INFILTRATION": RowSpec(("Subcatchment", "Param1", "Param2"), 3),
    "LOSSES": RowSpec(("Link", "Kentry", "Kexit", "Kavg", "FlapGate", "Seepage"), 4, 6,
                      (1, 2, 3, 5)),
    "RAINGAGES": RowSpec(("Name", "Format", "Interval", "SCF", "Source"), 5, None, (3,)),
    "TIMESERIES": RowSpec(("Name", "Date/Time", "Value"), 3),
    "CURVES": RowSpec(("Name", "X-Value", "Y-Value"), 3),
    "COVERAGES": RowSpec(("Subcatchment", "Land Use", "Percent"), 3),
    "INFLOWS": RowSpec(("Node", "Constituent", "Time Series"), 3),
    "DWF": RowSpec(("Node", "Constituent", "Baseline"), 3),
}

#: sections whose rows name a subcatchment, node or link in their first field: rows of an
#: element removed in the twin are dropped from them on export
_DEPENDENT_SECTIONS: dict[str, str] = {
    **dict.fromkeys(("SUBAREAS", "INFILTRATION", "LID_USAGE", "GROUNDWATER", "GWF",
                     "COVERAGES", "LOADINGS"), "subcatchment"),
    **dict.fromkeys(("INFLOWS", "DWF", "RDII", "TREATMENT"), "node"),
    **dict.fromkeys(("LOSSES", "INLET_USAGE"), "link"),
}
#: the element type words of [TAGS]
_TAG_TYPES = {"NODE": "node", "LINK": "link", "SUBCATCH": "subcatchment"}

_ENGINE_OBJECT = re.compile(
    r"\b(?:Conduit|Link|Node|Junction|Outfall|Storage|Divider|Pump|Orifice|Weir|Outlet|"
    r"Regulator|Subcatchment|Time Series|Curve|Gage|Rain Gage)\s+(\S+?)[.,]?(?:\s|$)"
)
_ENGINE_ERROR = re.compile(
    r"ERROR\s+(\d+):\s*(.*?)(?:\s+at line (\d+) of (?:\[(\w+)\] section|input file))?:?\s*$"
)


# -- units ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Units:
    """Conversions between a model's units and SI (through :mod:`rescity.model.units`)."""

    flow_units: str

    @property
    def us(self) -> bool:
        return self.flow_units in US_UNITS

    def to_si(self, value: float, quantity: str) -> float:
        """A file value of ``quantity`` in SI (m, m2, m3/s)."""
        if quantity == "length":
            return to_si(value, "ft" if self.us else "m")
        if quantity == "area":  # acres = 43,560 ft2; hectares = 10,000 m2
            return self._square(value * (43560.0 if self.us else 1e4))
        if quantity == "ponded":
            return self._square(value)
        if quantity == "flow":
            if self.flow_units == "MLD":  # megalitres a day, via l/s
                return to_si(value * 1e6 / 86400.0, "l/s")
            return to_si(value, self._flow_unit)
        return value

    def from_si(self, value: float, quantity: str) -> float:
        """Inverse of :meth:`to_si`."""
        if quantity == "length":
            return from_si(value, "ft" if self.us else "m")
        if quantity == "area":
            return self._unsquare(value) / (43560.0 if self.us else 1e4)
        if quantity == "ponded":
            return self._unsquare(value)
        if quantity == "flow":
            if self.flow_units == "MLD":
                return from_si(value, "l/s") * 86400.0 / 1e6
            return from_si(value, self._flow_unit)
        return value

    @property
    def _flow_unit(self) -> str:
        return {"CFS": "cfs", "GPM": "gpm", "MGD": "mgd", "CMS": "m3/s", "LPS": "l/s"}[
            self.flow_units
        ]

    def _square(self, value: float) -> float:
        unit = "ft" if self.us else "m"
        return to_si(to_si(value, unit), unit)

    def _unsquare(self, value: float) -> float:
        unit = "ft" if self.us else "m"
        return from_si(from_si(value, unit), unit)


def _decode(text: str, col: _Col, units: _Units) -> Any:
    """A file field as the twin holds it; None when a numeric field is not a number."""
    if col.quantity == "text":
        return text
    try:
        value = float(text)
    except ValueError:
        return None
    return units.to_si(value, col.quantity) if math.isfinite(value) else None


def _encode(value: Any, col: _Col, units: _Units) -> str:
    """A twin value as a file field."""
    if col.quantity == "text":
        return str(value)
    return fmt_number(units.from_si(float(value), col.quantity))


# -- reading --------------------------------------------------------------------------


def read_swmm(
    path: str | Path, *, name: str | None = None, placement: Placement | None = None
) -> Network:
    """Import a SWMM INP file as a drainage network.

    ``name`` defaults to the file's stem. ``placement`` maps the file's coordinates to
    WGS84; without one they must already be lon/lat. Every fault in the file (missing
    file, unknown section, wrong field count, a non-number where a number belongs, unknown
    flow units, duplicate ids, references to undefined elements, anything the SWMM engine
    refuses) is a :class:`~rescity.io.errors.FormatError` naming the file and, where
    known, the line, section and field.
    """
    p = Path(path)
    inp = read_inp(p, canonical=_canonical_section, encodings=("utf-8", "latin-1"))
    units = _validate(inp)
    _engine_check(inp)
    geo = _Geometry.collect(inp)
    placed = resolve_placement(inp, geo.xy, geo.lines, placement, "COORDINATES")
    net = Network(
        name=name or p.stem,
        type=NetworkType.DRAINAGE,
        placement=placed,
        source_format=SOURCE_FORMAT,
        native=_native(inp, units, geo),
    )
    _build(net, inp, _Units(units), geo, geo.place(placed))
    return net


def _canonical_section(written: str) -> str | None:
    """The canonical name of a section header, matched by prefix as SWMM does."""
    for prefix, canonical in _SECTION_PREFIXES:
        if written.startswith(prefix):
            return canonical
    return None


@dataclass(slots=True)
class _Registries:
    nodes: IdRegistry
    links: IdRegistry
    subcatchments: IdRegistry
    gages: IdRegistry


def _validate(inp: InpFile) -> str:
    """Check every record the twin relies on; return the file's flow units."""
    for owned in _ELEMENT_SECTIONS:
        check_rows(inp, owned.section, owned.spec)
    for section, spec in _OTHER_SPECS.items():
        check_rows(inp, section, spec)
    units = _flow_units(inp)
    reg = _registries(inp)
    _check_links(inp, reg)
    _check_xsections(inp)
    _check_references(inp, reg)
    return units


def _flow_units(inp: InpFile) -> str:
    """The FLOW_UNITS option (CFS when absent); a FormatError for an unknown value."""
    units = DEFAULT_UNITS
    for line in inp.section("OPTIONS"):
        if line.fields[0].upper() == "FLOW_UNITS":
            check_count(inp, line, "OPTIONS", RowSpec(("FLOW_UNITS", "Value"), 2, 2))
            units = enum_field(inp, line, "OPTIONS", 1, "FLOW_UNITS", FLOW_UNITS)
    return units


def _registries(inp: InpFile) -> _Registries:
    """The id namespaces, each checked for duplicates. The twin keeps nodes and
    subcatchments in one namespace, so a subcatchment may not share a node's name."""
    reg = _Registries(
        nodes=IdRegistry(inp, "node", case_sensitive=False),
        links=IdRegistry(inp, "link", case_sensitive=False),
        subcatchments=IdRegistry(inp, "subcatchment", case_sensitive=False),
        gages=IdRegistry(inp, "rain gage", case_sensitive=False),
    )
    reg.nodes.add_all(s.section for s in _NODE_SECTIONS)
    reg.links.add_all(s.section for s in _LINK_SECTIONS)
    reg.gages.add_all(["RAINGAGES"])
    for line in inp.section("SUBCATCHMENTS"):
        if line.fields[0] in reg.nodes:
            raise inp.error(
                f"subcatchment {line.fields[0]!r} has the name of a node (defined in "
                f"[{reg.nodes.section_of(line.fields[0])}]); the twin needs distinct names",
                line, "SUBCATCHMENTS", field="Name", feature=line.fields[0],
            )
        reg.subcatchments.add(line.fields[0], "SUBCATCHMENTS", line)
    return reg


def _check_links(inp: InpFile, reg: _Registries) -> None:
    """End nodes of every link, and the outlet and rain gage of every subcatchment."""
    for owned in _LINK_SECTIONS:
        check_refs(inp, owned.section, 1, "From Node", reg.nodes)
        check_refs(inp, owned.section, 2, "To Node", reg.nodes)
    for line in inp.section("SUBCATCHMENTS"):
        reg.gages.require(line.fields[1], line, "SUBCATCHMENTS", "Rain Gage")
        if line.fields[2] not in reg.subcatchments:
            reg.nodes.require(line.fields[2], line, "SUBCATCHMENTS", "Outlet")
    check_refs(inp, "DIVIDERS", 2, "Diverted Link", reg.links)


def _check_xsections(inp: InpFile) -> None:
    """Geometric cross sections hold numbers (a custom shape's Geom2 names a curve)."""
    for line in inp.section("XSECTIONS"):
        shape = line.fields[1].upper()
        if shape in _NAMED_SHAPES:
            continue
        for i in range(2, min(len(line.fields), 7)):
            if not (shape == "CUSTOM" and i == 3):  # a custom shape's Geom2 is a curve
                parse_number(inp, line, "XSECTIONS", i, _XSECTIONS.spec.name(i))


def _check_references(inp: InpFile, reg: _Registries) -> None:
    """Element ids named by the other sections must be defined."""
    for section in ("XSECTIONS", "LOSSES"):
        check_refs(inp, section, 0, "Link", reg.links)
    for section in ("INFLOWS", "DWF", "RDII", "TREATMENT"):
        check_refs(inp, section, 0, "Node", reg.nodes)
    for section in ("SUBAREAS", "INFILTRATION", "COVERAGES", "LOADINGS", "LID_USAGE",
                    "GROUNDWATER"):
        check_refs(inp, section, 0, "Subcatchment", reg.subcatchments)
    # the engine ignores map rows of unknown objects ([COORDINATES], [VERTICES],
    # [POLYGONS], [SYMBOLS]); so does the import, and the export drops them


def _engine_check(inp: InpFile) -> None:
    """Let the SWMM engine open the model; its input errors become a FormatError.

    The report and output files go to a temporary folder (pyswmm would otherwise write
    them beside the input). SWMM allows one open simulation per process: while another
    is open the check runs in a child process.
    """
    from pyswmm import Simulation
    from pyswmm.errors import MultiSimulationError

    with tempfile.TemporaryDirectory(prefix="rescity-swmm-") as tmp:
        rpt, out = Path(tmp) / "check.rpt", Path(tmp) / "check.out"
        try:
            sim = Simulation(str(inp.path), reportfile=str(rpt), outputfile=str(out))
        except MultiSimulationError:
            _engine_check_in_child(inp, rpt, out)
        except Exception as exc:  # noqa: BLE001 - any engine refusal is a bad file
            raise _engine_error(inp, rpt, exc) from exc
        else:
            sim.close()


_CHILD_CHECK = (
    "import sys\n"
    "from pyswmm import Simulation\n"
    "try:\n"
    "    Simulation(sys.argv[1], reportfile=sys.argv[2], outputfile=sys.argv[3]).close()\n"
    "except Exception as exc:\n"
    "    print(exc)\n"
    "    sys.exit(1)\n"
)


def _engine_check_in_child(inp: InpFile, rpt: Path, out: Path) -> None:
    """:func:`_engine_check` in a separate Python process."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _CHILD_CHECK, str(inp.path), str(rpt), str(out)],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise _engine_error(inp, rpt, RuntimeError(done.stdout.strip() or done.stderr[-300:]))


def _engine_error(inp: InpFile, rpt: Path, exc: Exception) -> FormatError:
    """A FormatError from the engine's report: the first error, at the line the engine
    names or else at the definition of the object it names."""
    text = rpt.read_text(errors="replace") if rpt.exists() else ""
    errors = [m for m in map(_ENGINE_ERROR.search, text.splitlines()) if m and m.group(1) != "200"]
    if not errors:
        return inp.error(f"the SWMM engine cannot open the model: {exc}".strip())
    first = errors[0]
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    message = f"SWMM error {first.group(1)}: {first.group(2)}{more}"
    if first.group(3):
        return inp.error(message, int(first.group(3)), first.group(4))
    named = _ENGINE_OBJECT.search(first.group(2))
    where = _definition(inp, named.group(1)) if named else None
    if where is None:
        return inp.error(message)
    section, line = where
    return inp.error(message, line, section, feature=line.fields[0])


def _definition(inp: InpFile, name: str) -> tuple[str, InpLine] | None:
    """The section and line that define the element, gage, series or curve ``name``."""
    sections = [o.section for o in (*_NODE_SECTIONS, _SUBCATCHMENTS, *_LINK_SECTIONS)]
    for section in (*sections, "RAINGAGES", "TIMESERIES", "CURVES"):
        for line in inp.section(section):
            if line.fields[0].upper() == name.upper():
                return section, line
    return None


@dataclass(slots=True)
class _Geometry:
    """The file coordinates of the model: node points, link vertices, subcatchment
    polygons, with their lines, flattened into one array for a single transformation."""

    xy: np.ndarray
    lines: list[InpLine]
    nodes: dict[str, int] = field(default_factory=dict)
    vertices: dict[str, list[int]] = field(default_factory=dict)
    polygons: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def collect(cls, inp: InpFile) -> _Geometry:
        lines: list[InpLine] = []
        geo = cls(np.zeros((0, 2)), lines)
        canon = _canonical_ids(inp)
        for line in inp.section("COORDINATES"):
            name = canon.get(line.fields[0].upper())
            if name is not None:
                geo.nodes[name] = len(lines)
                lines.append(line)
        for section, store in (("VERTICES", geo.vertices), ("POLYGONS", geo.polygons)):
            for line in inp.section(section):
                name = canon.get(line.fields[0].upper())
                if name is not None:
                    store.setdefault(name, []).append(len(lines))
                    lines.append(line)
        geo.xy = np.array(
            [[float(ln.fields[1]), float(ln.fields[2])] for ln in lines], dtype=float
        ).reshape(-1, 2)
        return geo

    def place(self, placement: Placement) -> np.ndarray:
        """All points in WGS84 lon/lat, in the order of :attr:`lines`."""
        return placement.forward_xy(self.xy) if len(self.xy) else self.xy

    def strings(self, idx: Iterable[int]) -> list[list[str]]:
        """The original text of the points ``idx``."""
        return [self.lines[i].fields[1:3] for i in idx]


def _canonical_ids(inp: InpFile) -> dict[str, str]:
    """Upper-cased name -> spelling of its definition, over all element sections."""
    out: dict[str, str] = {}
    for owned in (*_NODE_SECTIONS, _SUBCATCHMENTS, *_LINK_SECTIONS):
        for line in inp.section(owned.section):
            out.setdefault(line.fields[0].upper(), line.fields[0])
    return out


def _native(inp: InpFile, units: str, geo: _Geometry) -> dict[str, Any]:
    """What the twin does not model, JSON-safe: every section's text (only the leading
    comments of owned sections), the original fields of owned rows and the original text
    of every coordinate, so an export can reproduce the file."""
    blocks = []
    for b in inp.blocks:
        lines = _leading_comments(b.lines) if b.name in OWNED_SECTIONS else list(b.lines)
        blocks.append({"name": b.name, "header": b.header, "lines": lines})
    rows = {
        owned.section: {line.fields[0]: list(line.fields) for line in inp.section(owned.section)}
        for owned in _ELEMENT_SECTIONS
    }
    return {
        "format": SOURCE_FORMAT,
        "flow_units": units,
        "encoding": inp.encoding,
        "preamble": list(inp.preamble),
        "blocks": blocks,
        "rows": rows,
        "coordinates": {k: geo.strings([i])[0] for k, i in geo.nodes.items()},
        "vertices": {k: geo.strings(v) for k, v in geo.vertices.items()},
        "polygons": {k: geo.strings(v) for k, v in geo.polygons.items()},
    }


def _leading_comments(lines: Sequence[str]) -> list[str]:
    """The comment and blank lines before a section's first data line."""
    out = []
    for raw in lines:
        if split_fields(raw)[0]:
            break
        out.append(raw)
    while out and not out[-1].strip():
        out.pop()
    return out


def _build(
    net: Network, inp: InpFile, units: _Units, geo: _Geometry, lonlat: np.ndarray
) -> None:
    """Nodes, subcatchments and links of the twin; ``lonlat`` holds the WGS84 position of
    every point of ``geo``."""
    canon = _canonical_ids(inp)
    points: dict[str, Point] = {}
    for owned in _NODE_SECTIONS:
        for line in inp.section(owned.section):
            i = geo.nodes.get(line.fields[0])
            pt = Point(lonlat[i]) if i is not None else Point()
            points[line.fields[0]] = pt
            net.add_node(Node(line.fields[0], owned.kinds[0], pt,
                              _row_attrs(line.fields, owned.cols, units)))
    _add_subcatchments(net, inp, units, lonlat, geo, canon, points)
    xsect = {line.fields[0].upper(): line.fields for line in inp.section("XSECTIONS")}
    for owned in _LINK_SECTIONS:
        for line in inp.section(owned.section):
            lid = line.fields[0]
            start, end = canon[line.fields[1].upper()], canon[line.fields[2].upper()]
            attrs = _row_attrs(line.fields, owned.cols, units)
            if lid.upper() in xsect:
                attrs.update(_xsection_attrs(xsect[lid.upper()], units))
            verts = [lonlat[i] for i in geo.vertices.get(lid, [])]
            geom = _line(points[start], verts, points[end])
            twin_id = net.link_id_for(lid)
            if twin_id != lid:
                attrs["file_id"] = lid
            net.add_link(Link(twin_id, owned.kinds[0], start, end, geom, attrs))


def _add_subcatchments(
    net: Network, inp: InpFile, units: _Units, lonlat: np.ndarray, geo: _Geometry,
    canon: dict[str, str], points: dict[str, Point],
) -> None:
    """Subcatchments as nodes whose geometry is their polygon; without one, a point at
    their outlet (not written back on export)."""
    lines = inp.section("SUBCATCHMENTS")
    shapes = {ln.fields[0]: _polygon([lonlat[i] for i in geo.polygons.get(ln.fields[0], [])])
              for ln in lines}
    for line in lines:
        sid = line.fields[0]
        attrs = _row_attrs(line.fields, _SUBCATCHMENTS.cols, units)
        attrs["outlet"] = canon.get(line.fields[2].upper(), line.fields[2])
        shape = shapes[sid]
        if shape is None:
            shape = _outlet_point(attrs["outlet"], points, shapes)
        net.add_node(Node(sid, "subcatchment", shape, attrs))


def _polygon(pts: list[np.ndarray]) -> BaseGeometry | None:
    """A polygon from three or more vertices, the vertices as a MultiPoint for one or
    two, None for none."""
    if not pts:
        return None
    if len(pts) >= 3:
        return Polygon(pts)
    return MultiPoint(pts)


def _outlet_point(
    outlet: str, points: dict[str, Point], shapes: dict[str, BaseGeometry | None]
) -> Point:
    """Where a subcatchment without a polygon is drawn: at its outlet (empty if unknown)."""
    if outlet in points and not points[outlet].is_empty:
        return Point(points[outlet].coords[0])
    other = shapes.get(outlet)
    if other is not None and not other.is_empty:
        c = other.centroid
        return Point(c.x, c.y)
    return Point()


def _line(start: Point, verts: Sequence[np.ndarray], end: Point) -> LineString:
    """A link's geometry: start node, vertices, end node (nodes without a position are
    left out; fewer than two points give an empty line)."""
    pts = [tuple(start.coords[0])] if not start.is_empty else []
    pts += [(float(v[0]), float(v[1])) for v in verts]
    if not end.is_empty:
        pts.append(tuple(end.coords[0]))
    return LineString(pts) if len(pts) >= 2 else LineString()


def _row_attrs(fields: Sequence[str], cols: Iterable[_Col], units: _Units) -> dict[str, Any]:
    """The twin attributes of one owned row (columns absent or not numbers are left out)."""
    attrs: dict[str, Any] = {}
    for col in cols:
        if col.index < len(fields):
            value = _decode(fields[col.index], col, units)
            if value is not None:
                attrs[col.attr] = value
    return attrs


def _xsection_attrs(fields: Sequence[str], units: _Units) -> dict[str, Any]:
    """``shape`` and, for geometric shapes, ``geom1_m``."""
    cols = _XSECTIONS.cols if fields[1].upper() not in _NAMED_SHAPES else _XSECTIONS.cols[:1]
    return _row_attrs(fields, cols, units)


# -- writing --------------------------------------------------------------------------


def write_swmm(network: Network, path: str | Path) -> None:
    """Export a drainage network as a SWMM INP file.

    The owned sections are regenerated from the twin (values converted from SI to the
    model's units, coordinates written back through ``network.placement``); the other
    sections come verbatim from ``network.native``, minus the rows of elements removed in
    the twin. Elements added in the twin get default values for the columns it does not
    hold (and subcatchments default [SUBAREAS] and [INFILTRATION] rows). A network
    without a native model is written in CMS. Raises
    :class:`~rescity.model.NetworkError` when the twin cannot be expressed in SWMM.
    """
    network = network.with_file_ids()
    native = _native_or_new(network)
    writer = _Writer(network, native)
    text = writer.render()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding=native.get("encoding", "utf-8"), errors="replace")


def _native_or_new(network: Network) -> dict[str, Any]:
    """The network's native SWMM model, or a minimal one for a network built in the twin."""
    native = network.native
    if isinstance(native, dict) and native.get("format") == SOURCE_FORMAT:
        return copy.deepcopy(native)
    options = [
        f"{key:<20} {value}" for key, value in (
            ("FLOW_UNITS", NEW_MODEL_UNITS), ("INFILTRATION", "HORTON"),
            ("FLOW_ROUTING", "DYNWAVE"), ("START_DATE", "01/01/2000"),
            ("START_TIME", "00:00:00"), ("END_DATE", "01/02/2000"), ("END_TIME", "00:00:00"),
            ("REPORT_STEP", "00:15:00"), ("ROUTING_STEP", "30"),
        )
    ]
    return {
        "format": SOURCE_FORMAT, "flow_units": NEW_MODEL_UNITS, "preamble": [],
        "blocks": [
            {"name": "TITLE", "header": "[TITLE]", "lines": [f"{network.name}"]},
            {"name": "OPTIONS", "header": "[OPTIONS]", "lines": options},
        ],
        "rows": {}, "coordinates": {}, "vertices": {}, "polygons": {},
    }


class _Writer:
    """Renders one network with its native model as INP text."""

    def __init__(self, network: Network, native: dict[str, Any]) -> None:
        self.net = network
        self.native = native
        self.units = _Units(native.get("flow_units", DEFAULT_UNITS))
        self.rows: dict[str, dict[str, list[str]]] = native.get("rows", {})
        self.removed = self._removed()
        self.new_subcatchments = [
            n for n in network.nodes.values()
            if n.kind == "subcatchment" and n.id not in self.rows.get("SUBCATCHMENTS", {})
        ]

    def _removed(self) -> dict[str, set[str]]:
        """Upper-cased ids of the native model's elements that the twin no longer has,
        per namespace (subcatchment, node, link)."""
        def ids(sections: Iterable[_Owned]) -> set[str]:
            return {i.upper() for s in sections for i in self.rows.get(s.section, {})}

        def twin(elements: Iterable[Node | Link]) -> set[str]:
            return {e.id.upper() for e in elements}

        nodes = [n for n in self.net.nodes.values() if n.kind != "subcatchment"]
        subs = [n for n in self.net.nodes.values() if n.kind == "subcatchment"]
        return {
            "subcatchment": ids([_SUBCATCHMENTS]) - twin(subs),
            "node": ids(_NODE_SECTIONS) - twin(nodes),
            "link": ids(_LINK_SECTIONS) - twin(self.net.links.values()),
        }

    # the file ------------------------------------------------------------------------
    def render(self) -> str:
        out: list[str] = list(self.native.get("preamble", []))
        done: set[str] = set()
        for block in self.native.get("blocks", []):
            name = block["name"]
            if name in done and name in OWNED_SECTIONS:
                continue
            done.add(name)
            out.append(block["header"])
            out.extend(self._body(name, block["lines"]))
            out.append("")
        for name in self._missing_sections(done):
            out.append(f"[{name}]")
            out.extend(self._body(name, []))
            out.append("")
        return "\n".join(out) + "\n"

    def _missing_sections(self, present: set[str]) -> list[str]:
        """Sections the twin needs that the native model lacks, in SWMM's usual order."""
        wanted = [s.section for s in _ELEMENT_SECTIONS if self._elements(s)]
        if self.new_subcatchments:
            wanted[wanted.index("SUBCATCHMENTS") + 1:1] = ["SUBAREAS", "INFILTRATION"]
        wanted += [s for s, rows in zip(_GEOMETRY_SECTIONS, self._geometry(), strict=True)
                   if rows]
        return [s for s in wanted if s not in present]

    def _body(self, name: str, lines: list[str]) -> list[str]:
        if name in OWNED_SECTIONS:
            return list(lines) + [fmt_row(f) for f in self._owned_rows(name)]
        kept = [ln for ln in lines if not self._names_removed(name, ln)]
        return _trim(kept) + [fmt_row(f) for f in self._extra_rows(name)]

    def _names_removed(self, section: str, raw: str) -> bool:
        """Whether a line of a dependent section (or a tag) belongs to a removed element."""
        fields = split_fields(raw)[0]
        if section == "TAGS" and len(fields) > 1:
            space = _TAG_TYPES.get(fields[0].upper())
            return space is not None and fields[1].upper() in self.removed[space]
        space = _DEPENDENT_SECTIONS.get(section)
        return space is not None and bool(fields) and fields[0].upper() in self.removed[space]

    # owned rows ----------------------------------------------------------------------
    def _owned_rows(self, name: str) -> list[list[str]]:
        if name in _GEOMETRY_SECTIONS:
            return dict(zip(_GEOMETRY_SECTIONS, self._geometry(), strict=True))[name]
        owned = next(s for s in _ELEMENT_SECTIONS if s.section == name)
        return [self._row(owned, e) for e in self._elements(owned)]

    def _elements(self, owned: _Owned) -> list[Node | Link]:
        pool: Iterable[Node | Link] = (
            self.net.links.values() if owned.is_link or owned is _XSECTIONS
            else self.net.nodes.values()
        )
        return [e for e in pool if e.kind in owned.kinds]

    def _row(self, owned: _Owned, element: Node | Link) -> list[str]:
        """The row of one element: its original fields, updated from the twin."""
        fields = list(self.rows.get(owned.section, {}).get(element.id) or [])
        if not fields:
            fields = self._new_row(owned, element)
        fields[0] = element.id
        if isinstance(element, Link) and owned.is_link:
            fields[1] = _same_or(fields[1], element.start)
            fields[2] = _same_or(fields[2], element.end)
        named = owned is _XSECTIONS and str(element.attrs.get("shape", fields[1])).upper() \
            in _NAMED_SHAPES
        for col in owned.cols:
            if col.writable and col.attr in element.attrs and element.attrs[col.attr] is not None:
                if not (named and col.attr == "geom1_m"):
                    _set(fields, col, element.attrs[col.attr], self.units)
        return fields

    def _new_row(self, owned: _Owned, element: Node | Link) -> list[str]:
        default = owned.default.get(element.kind)
        if default is None:
            raise NetworkError(
                f"{element.kind} {element.id!r}: a new {element.kind} cannot be written to "
                "SWMM without a row in the native model"
            )
        head = [element.id]
        if isinstance(element, Link) and owned.is_link:
            head += [element.start, element.end]
        fields = head + list(default)
        if owned is _SUBCATCHMENTS:
            fields[1] = str(element.attrs.get("rain_gage") or self._first_gage(element))
            if not element.attrs.get("outlet"):
                raise NetworkError(f"subcatchment {element.id!r} has no outlet")
        return fields

    def _first_gage(self, element: Node | Link) -> str:
        for block in self.native.get("blocks", []):
            if block["name"] == "RAINGAGES":
                for raw in block["lines"]:
                    fields = split_fields(raw)[0]
                    if fields:
                        return fields[0]
        raise NetworkError(
            f"subcatchment {element.id!r} has no rain_gage and the model has no rain gage"
        )

    # rows for new subcatchments ------------------------------------------------------
    def _extra_rows(self, name: str) -> list[list[str]]:
        if name == "SUBAREAS":
            return [[n.id, "0.01", "0.1", "0.05", "0.05", "25", "OUTLET"]
                    for n in self.new_subcatchments]
        if name == "INFILTRATION":
            params = self._default_infiltration()
            return [[n.id, *params] for n in self.new_subcatchments]
        return []

    def _default_infiltration(self) -> list[str]:
        """SWMM's editor defaults (rates given in in/h, converted for SI models)."""
        method = "HORTON"
        for block in self.native.get("blocks", []):
            if block["name"] == "OPTIONS":
                for raw in block["lines"]:
                    f = split_fields(raw)[0]
                    if len(f) >= 2 and f[0].upper() == "INFILTRATION":
                        method = f[1].upper()

        def rate(in_h: float) -> str:
            return fmt_number(in_h if self.units.us else to_si(in_h, "in/h"))

        if "HORTON" in method:
            return [rate(3.0), rate(0.5), "4", "7", "0"]
        if "GREEN" in method:
            return [fmt_number(3.5 if self.units.us else 3.5 * 25.4), rate(0.5), "0.26"]
        return ["80", rate(0.5), "7"]

    # coordinates ---------------------------------------------------------------------
    def _geometry(self) -> list[list[list[str]]]:
        """Rows of [COORDINATES], [VERTICES] and [POLYGONS], all transformed at once."""
        items: list[tuple[int, str, list[tuple[float, float]], list[list[str]] | None]] = []
        for node in self.net.nodes.values():
            if node.kind == "subcatchment":
                pts = _polygon_points(node.geometry)
                orig = self.native.get("polygons", {}).get(node.id)
                if orig and pts and len(orig) == len(pts) + 1 and orig[0] == orig[-1]:
                    pts.append(pts[0])  # the file repeated the first vertex at the end
                items.append((2, node.id, pts, orig))
            elif isinstance(node.geometry, Point) and not node.geometry.is_empty:
                orig = self.native.get("coordinates", {}).get(node.id)
                items.append((0, node.id, [node.geometry.coords[0]], [orig] if orig else None))
        for link in self.net.links.values():
            pts = self._vertex_points(link)
            items.append((1, link.id, pts, self.native.get("vertices", {}).get(link.id)))
        return _coordinate_rows(self.net.placement, items)

    def _vertex_points(self, link: Link) -> list[tuple[float, float]]:
        coords = list(link.geometry.coords) if not link.geometry.is_empty else []
        lo = 1 if not self.net.nodes[link.start].geometry.is_empty else 0
        hi = len(coords) - (1 if not self.net.nodes[link.end].geometry.is_empty else 0)
        return [(c[0], c[1]) for c in coords[lo:max(lo, hi)]]


def _same_or(original: str, twin: str) -> str:
    """The original spelling when it names the same element (SWMM ignores case)."""
    return original if original.upper() == twin.upper() else twin


def _set(fields: list[str], col: _Col, value: Any, units: _Units) -> None:
    """Write a twin value into a row, keeping the original text when it is unchanged."""
    if col.index < len(fields):
        old = _decode(fields[col.index], col, units)
        same = (str(old).upper() == str(value).upper()) if col.quantity == "text" \
            else old is not None and old == value
        if same:
            return
    while len(fields) <= col.index:
        fields.append("0")
    fields[col.index] = _encode(value, col, units)


def _polygon_points(geom: BaseGeometry) -> list[tuple[float, float]]:
    """The vertices a subcatchment writes to [POLYGONS] (none for a point)."""
    if isinstance(geom, Polygon) and not geom.is_empty:
        return [(c[0], c[1]) for c in geom.exterior.coords[:-1]]
    if isinstance(geom, MultiPoint):
        return [(p.x, p.y) for p in geom.geoms]
    return []


def _coordinate_rows(
    placement: Placement,
    items: Sequence[tuple[int, str, list[tuple[float, float]], list[list[str]] | None]],
) -> list[list[list[str]]]:
    """Rows per geometry section for ``(section index, id, lon/lat points, original text)``
    items; a point that has not moved keeps its original text."""
    lonlat = [p for _, _, pts, _ in items for p in pts]
    original: list[list[float]] = []
    texts: list[list[str] | None] = []
    for _, _, pts, orig in items:
        usable = orig is not None and len(orig) == len(pts)
        for k in range(len(pts)):
            t = orig[k] if usable and orig is not None else None
            texts.append(t)
            original.append(_floats(t))
    xy, same = export_xy(placement, np.asarray(lonlat, dtype=float).reshape(-1, 2),
                         np.asarray(original, dtype=float).reshape(-1, 2))
    out: list[list[list[str]]] = [[], [], []]
    k = 0
    for sec, eid, pts, _ in items:
        for _ in pts:
            t = texts[k]
            cells = t if same[k] and t is not None else [fmt_number(xy[k, 0]), fmt_number(xy[k, 1])]
            out[sec].append([eid, *cells])
            k += 1
    return out


def _floats(text: list[str] | None) -> list[float]:
    if text is None:
        return [math.nan, math.nan]
    try:
        return [float(text[0]), float(text[1])]
    except (ValueError, IndexError):
        return [math.nan, math.nan]


def _trim(lines: list[str]) -> list[str]:
    """Lines without trailing blank lines (each section is followed by one blank line)."""
    out = list(lines)
    while out and not out[-1].strip():
        out.pop()
    return out

