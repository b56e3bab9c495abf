"""GeoJSON and GeoPackage: any lifeline network, and jurisdictions.

Network schema (one feature per element)
----------------------------------------
Every feature carries the properties

* ``role``: ``"node"`` or ``"link"`` (in a GeoPackage the layer says it: ``nodes``/``links``),
* ``id``: the element id (a string; an integer is read as its decimal string); the
  feature-level ``id`` of RFC 7946 is used when the properties have none,
* ``kind``: what the element is (``junction``, ``pipe``, ``bus``, ``road``, ...),
* links only: ``from`` and ``to``, the ids of the end nodes,
* optional ``name``.

Every other property becomes an attribute of the element. A property whose name carries
a unit in brackets, ``name[unit]`` (``diameter[mm]``, ``elevation[ft]``), is converted to
SI with :func:`rescity.model.units.to_si` and stored as ``name_<si unit>`` (``diameter_m``,
``elevation_m``; ``demand[l/s]`` becomes ``demand_m3s``). A ``null`` property is the same
as no property. The network's name and type are the top-level foreign members
``"rescity:network"`` and ``"rescity:network_type"`` of the GeoJSON FeatureCollection
(or the arguments ``name=`` and ``network_type=``, which win); ``"rescity:placement"``
and ``"rescity:attrs"`` carry the network's placement and attributes. In a GeoPackage
these four live in the dataset metadata (``rescity_network``, ...).

Geometries: a node is a Point (an area element such as a SWMM subcatchment may be a
Polygon or MultiPolygon), a link is a LineString. Geometries must be valid (shapely
``is_valid``); the one exception is a zero-length link whose vertices all coincide (a
transformer whose two buses share one position). Z coordinates are dropped: elevations
live in attributes.

Jurisdiction schema
-------------------
Polygon or MultiPolygon features with ``code`` (unique), ``name``, optional ``name_zh``,
``level`` (``district``, ``street`` or ``grid``), ``parent`` (the code of the enclosing
jurisdiction, absent for a district) and ``population`` (persons, default 0); other
properties become attributes. The hierarchy itself (does the parent exist, is the level
right under it) is checked by :meth:`rescity.model.City.add_jurisdiction`, because the
levels often come in separate files.

Coordinate reference systems
----------------------------
GeoJSON is WGS84 lon/lat (RFC 7946). A legacy ``crs`` member (GeoJSON 2008) or the
``crs=`` argument (which wins) names another CRS; coordinates are then reprojected to
WGS84 with pyproj. Without any CRS information, coordinates that are not lon/lat are
refused: they are projected and we cannot guess from what. A GeoPackage layer carries
its CRS; a layer without one is refused unless ``crs=`` is given.

Every problem in a file raises :class:`~rescity.io.errors.FormatError` naming the file,
the feature (index, and id when known) and the field.

Limitations: the network's ``native`` engine model is not stored (export the engine
format for that); attribute values that are ``NaN`` or ``None`` are not written; in a
GeoPackage an attribute column that mixes types, or holds lists or objects, is stored as
JSON text and read back as the decoded JSON value; integer columns with gaps come back
as integers, but a column mixing integers and floats comes back as floats.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError
from shapely.geometry import (
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
    mapping,
)
from shapely.geometry.base import BaseGeometry
from shapely.validation import explain_validity

from rescity.model import (
    WGS84,
    Jurisdiction,
    JurisdictionLevel,
    Link,
    Network,
    NetworkType,
    Node,
    Placement,
    si_unit,
    to_si,
)
from rescity.model.geo import looks_like_lonlat, transformer

from .errors import FormatError

__all__ = [
    "NETWORK_MEMBER",
    "NETWORK_TYPE_MEMBER",
    "NO_CRS_MESSAGE",
    "property_key",
    "read_geojson_network",
    "read_gpkg_network",
    "read_jurisdictions",
    "write_geojson_network",
    "write_gpkg_network",
    "write_jurisdictions",
]

NETWORK_MEMBER = "rescity:network"
NETWORK_TYPE_MEMBER = "rescity:network_type"
PLACEMENT_MEMBER = "rescity:placement"
ATTRS_MEMBER = "rescity:attrs"
NO_CRS_MESSAGE = "no CRS: coordinates look projected; give the CRS (--crs EPSG:xxxx)"

#: GeoPackage dataset metadata keys (GDAL splits keys at ':', so no colon here).
_GPKG_META = {
    NETWORK_MEMBER: "rescity_network",
    NETWORK_TYPE_MEMBER: "rescity_network_type",
    PLACEMENT_MEMBER: "rescity_placement",
    ATTRS_MEMBER: "rescity_attrs",
}
_GPKG_JSON_COLUMNS = "rescity_json_columns"
_GPKG_RESERVED = {"fid", "geom", "geometry"}

_NETWORK_FIELDS = ("role", "id", "kind", "from", "to", "name")
_JURISDICTION_FIELDS = ("code", "name", "name_zh", "level", "parent", "population")
_NODE_GEOMS = (Point, Polygon, MultiPolygon)
_AREA_GEOMS = (Polygon, MultiPolygon)
_UNIT_KEY = re.compile(r"^\s*(?P<name>[^\[\]]*?)\s*\[(?P<unit>[^\[\]]+)\]\s*$")

# One parsed feature: its index in the file (GeoJSON) or fid (GeoPackage), its
# properties and its geometry in the file's CRS.
_Feature = tuple[int, dict[str, Any], BaseGeometry]


# --------------------------------------------------------------------------- helpers
def property_key(key: str) -> tuple[str, str | None]:
    """The attribute name a property name maps to, and the unit it was given in.

    ``"diameter[mm]"`` -> ``("diameter_m", "mm")``; ``"roughness"`` -> ``("roughness", None)``.
    Raises :class:`~rescity.model.UnknownUnitError` for a unit ResCity does not know.
    """
    m = _UNIT_KEY.match(key)
    if m is None:
        return key, None
    unit = m.group("unit").strip()
    if not m.group("name"):
        raise ValueError(f"a unit needs a property name before it, found {key!r}")
    suffix = re.sub(r"[^0-9a-z]+", "", si_unit(unit).lower().replace("%", "pct"))
    return f"{m.group('name')}_{suffix}", unit


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.integer | np.floating) and not isinstance(
        v, bool | np.bool_
    )


def _label(index: int, element_id: Any) -> int | str:
    """How a feature is named in an error: its index, plus its id when it has a usable one."""
    if isinstance(element_id, str) and element_id:
        return f"{index} (id {element_id!r})"
    if isinstance(element_id, int) and not isinstance(element_id, bool):
        return f"{index} (id '{element_id}')"
    return index


def _split_properties(
    path: Path, label: int | str, props: dict[str, Any], reserved: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split properties into the reserved fields and the attributes (SI-converted)."""
    core: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    origin: dict[str, str] = {}  # attribute name -> property it came from
    for key, value in props.items():
        if not isinstance(key, str):
            raise FormatError(path, "property names must be strings", feature=label, field=str(key))
        if key in reserved:
            core[key] = value
            continue
        try:
            name, unit = property_key(key)
        except ValueError as e:  # UnknownUnitError included
            raise FormatError(path, str(e), feature=label, field=key) from None
        if name in origin:
            raise FormatError(
                path,
                f"property gives attribute {name!r} a second time (also from {origin[name]!r})",
                feature=label,
                field=key,
            )
        origin[name] = key
        if value is None:
            continue
        if unit is not None:
            if not _is_number(value) or not math.isfinite(float(value)):
                raise FormatError(
                    path,
                    f"expected a number in {unit}, found {value!r}",
                    feature=label,
                    field=key,
                )
            value = to_si(float(value), unit)
        elif isinstance(value, float) and not math.isfinite(value):
            continue
        attrs[name] = value
    return core, attrs


def _element_id(path: Path, label: int | str, value: Any, field: str) -> str:
    """An element id: a non-empty string, or an integer taken as its decimal string."""
    if isinstance(value, bool) or value is None:
        raise FormatError(
            path,
            f"missing required property {field!r}"
            if value is None
            else f"expected a string or integer id, found {value!r}",
            feature=label,
            field=field,
        )
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value
    raise FormatError(
        path,
        f"expected a non-empty string or integer id, found {value!r}",
        feature=label,
        field=field,
    )


def _required_str(path: Path, label: int | str, core: dict[str, Any], field: str) -> str:
    value = core.get(field)
    if value is None:
        raise FormatError(path, f"missing required property {field!r}", feature=label, field=field)
    if not isinstance(value, str) or not value.strip():
        raise FormatError(
            path, f"expected a non-empty string, found {value!r}", feature=label, field=field
        )
    return value


def _optional_str(path: Path, label: int | str, core: dict[str, Any], field: str) -> str | None:
    value = core.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise FormatError(path, f"expected a string, found {value!r}", feature=label, field=field)
    return value


def _jsonable(value: Any) -> Any:
    """A value as plain JSON (numpy scalars unwrapped; NaN and infinities become None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _check_writable_attrs(owner: str, attrs: dict[str, Any], reserved: Iterable[str]) -> None:
    clash = set(attrs) & set(reserved)
    if clash:
        raise ValueError(
            f"{owner}: attribute(s) {sorted(clash)} clash with the reserved properties "
            f"{sorted(reserved)}; rename them before export"
        )


# ------------------------------------------------------------------------ geometries
def _position(coords: Any) -> tuple[float, float]:
    if not isinstance(coords, list | tuple) or len(coords) not in (2, 3):
        raise ValueError(f"a position is [x, y] or [x, y, z], found {coords!r}")
    if not all(_is_number(c) and math.isfinite(float(c)) for c in coords):
        raise ValueError(f"a position holds finite numbers, found {coords!r}")
    return (float(coords[0]), float(coords[1]))


def _positions(coords: Any, minimum: int) -> list[tuple[float, float]]:
    if not isinstance(coords, list | tuple):
        raise ValueError(f"expected a list of positions, found {coords!r}")
    pts = [_position(c) for c in coords]
    if len(pts) < minimum:
        raise ValueError(f"expected at least {minimum} positions, found {len(pts)}")
    return pts


def _rings(coords: Any) -> Polygon:
    if not isinstance(coords, list | tuple) or not coords:
        raise ValueError(f"a polygon is a non-empty list of rings, found {coords!r}")
    rings = [_positions(r, 4) for r in coords]
    for r in rings:
        if r[0] != r[-1]:
            raise ValueError("a polygon ring must be closed (first position = last position)")
    return Polygon(rings[0], rings[1:])


def _geometry_from_geojson(g: Any) -> BaseGeometry:
    """A shapely geometry from a GeoJSON geometry object; ValueError if malformed."""
    if not isinstance(g, dict):
        raise ValueError(f"a geometry is an object, found {type(g).__name__}")
    kind = g.get("type")
    coords = g.get("coordinates")
    if kind == "GeometryCollection":
        raise ValueError("GeometryCollection is not supported")
    if coords is None:
        raise ValueError(f"geometry of type {kind!r} has no coordinates")
    if kind == "Point":
        return Point(_position(coords))
    if kind == "LineString":
        return LineString(_positions(coords, 2))
    if kind == "Polygon":
        return _rings(coords)
    if kind == "MultiPoint":
        return MultiPoint(_positions(coords, 1))
    if kind == "MultiLineString":
        if not isinstance(coords, list | tuple) or not coords:
            raise ValueError("a MultiLineString is a non-empty list of lines")
        return MultiLineString([_positions(c, 2) for c in coords])
    if kind == "MultiPolygon":
        if not isinstance(coords, list | tuple) or not coords:
            raise ValueError("a MultiPolygon is a non-empty list of polygons")
        return MultiPolygon([_rings(c) for c in coords])
    raise ValueError(f"unknown geometry type {kind!r}")


def _is_zero_length_line(g: BaseGeometry) -> bool:
    if not isinstance(g, LineString):
        return False
    xy = shapely.get_coordinates(g)
    return len(xy) >= 2 and bool(np.all(xy == xy[0]))


def _check_geometry(
    path: Path,
    label: int | str,
    geom: BaseGeometry | None,
    allowed: tuple[type[BaseGeometry], ...],
    what: str,
    allow_zero_length: bool = False,
) -> BaseGeometry:
    if geom is None:
        raise FormatError(path, "missing geometry", feature=label, field="geometry")
    if not isinstance(geom, allowed):
        names = " or ".join(t.__name__ for t in allowed)
        raise FormatError(
            path,
            f"a {what} needs a {names} geometry, found {geom.geom_type}",
            feature=label,
            field="geometry",
        )
    if geom.is_empty:
        raise FormatError(path, "empty geometry", feature=label, field="geometry")
    xy = shapely.get_coordinates(geom)
    if not np.all(np.isfinite(xy)):
        raise FormatError(
            path, "geometry has non-finite coordinates", feature=label, field="geometry"
        )
    if not geom.is_valid and not (allow_zero_length and _is_zero_length_line(geom)):
        raise FormatError(
            path, f"invalid geometry: {explain_validity(geom)}", feature=label, field="geometry"
        )
    if shapely.has_z(geom):
        geom = shapely.force_2d(geom)
    return geom


# ------------------------------------------------------------------------------ CRS
def _normalise_crs(user: Any) -> str:
    """A CRS string the model's cached transformers accept (``EPSG:xxxx`` when it has one)."""
    crs = CRS.from_user_input(user)
    if crs.equals(CRS.from_user_input(WGS84), ignore_axis_order=True):
        return WGS84
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_wkt()


def _crs_argument(crs: str | int | None) -> str | None:
    if crs is None:
        return None
    try:
        return _normalise_crs(crs)
    except CRSError as e:
        raise ValueError(f"unknown CRS {crs!r}: {e}") from None


def _crs_member(path: Path, member: Any) -> str | None:
    """The CRS named by a legacy (GeoJSON 2008) ``crs`` member."""
    if member is None:
        return None
    if not isinstance(member, dict):
        raise FormatError(path, f"expected a crs object, found {member!r}", field="crs")
    props = member.get("properties")
    kind = member.get("type")
    if not isinstance(props, dict):
        raise FormatError(path, "crs member without properties", field="crs")
    if kind == "name":
        user = props.get("name")
    elif kind == "EPSG":
        code = props.get("code")
        user = f"EPSG:{code}" if code is not None else None
    else:
        raise FormatError(
            path, f"unsupported crs member type {kind!r} (expected 'name' or 'EPSG')", field="crs"
        )
    if not isinstance(user, str) or not user:
        raise FormatError(path, "crs member names no CRS", field="crs")
    try:
        return _normalise_crs(user)
    except CRSError as e:
        raise FormatError(path, f"unknown CRS {user!r}: {e}", field="crs") from None


def _to_wgs84(
    path: Path,
    feats: list[_Feature],
    src: str | None,
    labels: list[int | str],
    *,
    require_crs: bool = False,
) -> list[_Feature]:
    """Reproject every feature's geometry from ``src`` to WGS84 (lon/lat).

    ``src`` None means the file states no CRS: the coordinates must look like lon/lat
    (and, with ``require_crs``, are refused anyway).
    """
    if not feats:
        return feats
    geoms = np.array([g for _, _, g in feats], dtype=object)
    if src is None:
        for (_, _, g), label in zip(feats, labels, strict=True):
            if not looks_like_lonlat(shapely.get_coordinates(g)):
                raise FormatError(path, NO_CRS_MESSAGE, feature=label, field="geometry")
        if require_crs:
            raise FormatError(
                path,
                "no CRS: the layer states no coordinate reference system; "
                "give the CRS (--crs EPSG:xxxx)",
                field="geometry",
            )
        return feats
    if src == WGS84:
        out = geoms
    else:
        t = transformer(src, WGS84)

        def _xy(xy: np.ndarray) -> np.ndarray:
            x, y = t.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        out = shapely.transform(geoms, _xy)
    for g, label in zip(out, labels, strict=True):
        xy = shapely.get_coordinates(g)
        if not (np.all(np.isfinite(xy)) and looks_like_lonlat(xy)):
            raise FormatError(
                path,
                f"coordinates lie outside the area of {src}: they do not reproject to lon/lat",
                feature=label,
                field="geometry",
            )
    return [(i, p, g) for (i, p, _), g in zip(feats, out, strict=True)]


# --------------------------------------------------------------------- GeoJSON read
def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise FormatError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise FormatError(
            path, f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno
        ) from None
    except (ValueError, RecursionError) as e:
        raise FormatError(path, f"invalid JSON: {e}") from None


def _geojson_features(path: Path) -> tuple[dict[str, Any], list[_Feature], list[int | str]]:
    """The document, its parsed features (file CRS) and their error labels."""
    doc = _load_json(path)
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        found = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise FormatError(
            path, f"expected a GeoJSON FeatureCollection, found {found!r}", field="type"
        )
    raw = doc.get("features")
    if not isinstance(raw, list):
        raise FormatError(path, "a FeatureCollection needs a 'features' list", field="features")
    feats: list[_Feature] = []
    labels: list[int | str] = []
    for i, f in enumerate(raw):
        if not isinstance(f, dict) or f.get("type") != "Feature":
            raise FormatError(path, "expected a GeoJSON Feature object", feature=i, field="type")
        props = f.get("properties")
        if props is None:
            props = {}
        if not isinstance(props, dict):
            raise FormatError(
                path,
                f"properties must be an object, found {props!r}",
                feature=i,
                field="properties",
            )
        if "id" not in props and "code" not in props and f.get("id") is not None:
            props = {**props, "id": f["id"]}  # RFC 7946 feature-level id
        ident = props.get("id", props.get("code"))
        label = _label(i, ident)
        g = f.get("geometry")
        if g is None:
            raise FormatError(path, "missing geometry", feature=label, field="geometry")
        try:
            geom = _geometry_from_geojson(g)
        except (ValueError, TypeError, shapely.errors.GEOSException) as e:
            raise FormatError(
                path, f"invalid geometry: {e}", feature=label, field="geometry"
            ) from None
        feats.append((i, props, geom))
        labels.append(label)
    return doc, feats, labels


def _resolve_network_type(path: Path, value: Any, field: str) -> NetworkType:
    try:
        return NetworkType(value)
    except ValueError:
        raise FormatError(
            path,
            f"unknown network type {value!r}; expected one of "
            f"{', '.join(t.value for t in NetworkType)}",
            field=field,
        ) from None


def _network_meta(
    path: Path,
    meta: dict[str, Any],
    name: str | None,
    network_type: NetworkType | str | None,
    source: str,
) -> tuple[str, NetworkType, Placement, dict[str, Any]]:
    """Name, type, placement and attributes from the arguments or the file's metadata."""
    if name is None:
        name = meta.get(NETWORK_MEMBER)
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise FormatError(
                path, f"expected a network name, found {name!r}", field=NETWORK_MEMBER
            )
        name = name or path.stem
    if network_type is None:
        value = meta.get(NETWORK_TYPE_MEMBER)
        if value is None:
            raise FormatError(
                path,
                f"the network type is unknown: the {source} has no {NETWORK_TYPE_MEMBER!r}; "
                "give network_type= (one of "
                f"{', '.join(t.value for t in NetworkType)})",
                field=NETWORK_TYPE_MEMBER,
            )
        ntype = _resolve_network_type(path, value, NETWORK_TYPE_MEMBER)
    else:
        try:
            ntype = NetworkType(network_type)
        except ValueError:
            raise ValueError(
                f"unknown network type {network_type!r}; expected one of "
                f"{', '.join(t.value for t in NetworkType)}"
            ) from None
    placement = Placement()
    raw = meta.get(PLACEMENT_MEMBER)
    if raw is not None:
        try:
            if not isinstance(raw, dict):
                raise TypeError(f"expected an object, found {raw!r}")
            placement = Placement.from_dict(raw)
            if placement.anchor is not None and len(placement.anchor) != 2:
                raise ValueError("anchor is (lon, lat)")
        except (TypeError, ValueError) as e:
            raise FormatError(path, f"invalid placement: {e}", field=PLACEMENT_MEMBER) from None
    attrs = meta.get(ATTRS_MEMBER) or {}
    if not isinstance(attrs, dict):
        raise FormatError(path, f"expected an object, found {attrs!r}", field=ATTRS_MEMBER)
    return name, ntype, placement, dict(attrs)


def _build_network(
    path: Path,
    feats: list[_Feature],
    labels: list[int | str],
    *,
    name: str,
    network_type: NetworkType,
    placement: Placement,
    attrs: dict[str, Any],
    source_format: str,
) -> Network:
    net = Network(
        name=name,
        type=network_type,
        placement=placement,
        source_format=source_format,
        attrs=attrs,
    )
    pending: dict[str, tuple[int | str, Link]] = {}
    for (_, props, geom), label in zip(feats, labels, strict=True):
        core, el_attrs = _split_properties(path, label, props, _NETWORK_FIELDS)
        role = core.get("role")
        if role is None:
            raise FormatError(path, "missing required property 'role'", feature=label, field="role")
        if role not in ("node", "link"):
            raise FormatError(
                path, f"expected role 'node' or 'link', found {role!r}", feature=label, field="role"
            )
        eid = _element_id(path, label, core.get("id"), "id")
        kind = _required_str(path, label, core, "kind")
        el_name = _optional_str(path, label, core, "name")
        if role == "node":
            geom = _check_geometry(path, label, geom, _NODE_GEOMS, "node")
            if eid in net.nodes:
                raise FormatError(path, f"duplicate node id {eid!r}", feature=label, field="id")
            net.nodes[eid] = Node(eid, kind, geom, el_attrs, el_name)
        else:
            geom = _check_geometry(path, label, geom, (LineString,), "link", allow_zero_length=True)
            start = _element_id(path, label, core.get("from"), "from")
            end = _element_id(path, label, core.get("to"), "to")
            if eid in pending:
                raise FormatError(path, f"duplicate link id {eid!r}", feature=label, field="id")
            assert isinstance(geom, LineString)
            pending[eid] = (label, Link(eid, kind, start, end, geom, el_attrs, el_name))
    for label, link in pending.values():
        for field, end in (("from", link.start), ("to", link.end)):
            if end not in net.nodes:
                raise FormatError(
                    path, f"link refers to missing node {end!r}", feature=label, field=field
                )
        net.links[link.id] = link
    return net


def read_geojson_network(
    path: str | Path,
    *,
    name: str | None = None,
    network_type: NetworkType | str | None = None,
    crs: str | int | None = None,
) -> Network:
    """Read a network from a GeoJSON FeatureCollection (schema in the module docstring).

    ``name`` and ``network_type`` override the file's ``"rescity:network"`` and
    ``"rescity:network_type"`` members; without either the name is the file stem and the
    type is required. ``crs`` names the CRS of the coordinates (overriding a legacy
    ``crs`` member); geometries are returned in WGS84 lon/lat (degrees). Attribute
    values are SI, per their name suffix.

    Raises :class:`FormatError` for any problem in the file, :class:`FileNotFoundError`
    if it does not exist and :class:`ValueError` for a bad argument.
    """
    path = Path(path)
    src = _crs_argument(crs)
    doc, feats, labels = _geojson_features(path)
    if src is None:
        src = _crs_member(path, doc.get("crs"))
    meta = {k: doc.get(k) for k in _GPKG_META}
    net_name, ntype, placement, attrs = _network_meta(path, meta, name, network_type, "file")
    feats = _to_wgs84(path, feats, src, labels)
    return _build_network(
        path,
        feats,
        labels,
        name=net_name,
        network_type=ntype,
        placement=placement,
        attrs=attrs,
        source_format="geojson",
    )


# -------------------------------------------------------------------- GeoJSON write
def _feature(geom: BaseGeometry, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(geom), "properties": props}


def _attr_props(props: dict[str, Any], name: str | None, attrs: dict[str, Any]) -> dict[str, Any]:
    """Add the optional name and the JSON-able, non-null attributes to ``props``."""
    if name is not None:
        props["name"] = name
    for k, v in attrs.items():
        v = _jsonable(v)
        if v is not None:
            props[k] = v
    return props


def _node_props(n: Node) -> dict[str, Any]:
    return _attr_props({"role": "node", "id": n.id, "kind": n.kind}, n.name, n.attrs)


def _link_props(link: Link) -> dict[str, Any]:
    props = {"role": "link", "id": link.id, "kind": link.kind, "from": link.start, "to": link.end}
    return _attr_props(props, link.name, link.attrs)


def _check_network_writable(network: Network) -> None:
    for e in network.elements():
        _check_writable_attrs(
            f"network {network.name!r} element {e.id!r}", e.attrs, _NETWORK_FIELDS
        )


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        json.dump(doc, fh, ensure_ascii=False, allow_nan=False)
        fh.write("\n")


def network_to_geojson(network: Network) -> dict[str, Any]:
    """``network`` as a GeoJSON FeatureCollection (a dict) in WGS84: nodes first, then
    links; the name, type, placement and attributes of the network are the
    ``"rescity:*"`` foreign members. Attribute names that clash with the schema's own
    properties (``role``, ``id``, ``kind``, ``from``, ``to``, ``name``) raise
    :class:`ValueError`."""
    _check_network_writable(network)
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        NETWORK_MEMBER: network.name,
        NETWORK_TYPE_MEMBER: network.type.value,
    }
    if not network.placement.is_identity:
        doc[PLACEMENT_MEMBER] = _jsonable(network.placement.to_dict())
    if network.attrs:
        doc[ATTRS_MEMBER] = _jsonable(network.attrs)
    doc["features"] = [_feature(n.geometry, _node_props(n)) for n in network.nodes.values()] + [
        _feature(link.geometry, _link_props(link)) for link in network.links.values()
    ]
    return doc


def write_geojson_network(network: Network, path: str | Path) -> Path:
    """Write :func:`network_to_geojson` to ``path`` (full double precision); returns it."""
    path = Path(path)
    _write_json(path, network_to_geojson(network))
    return path


# ----------------------------------------------------------------------- GeoPackage
def _gpkg_layers(path: Path) -> list[str]:
    import pyogrio
    from pyogrio.errors import DataSourceError

    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        return [str(name) for name, _ in pyogrio.list_layers(path)]
    except (DataSourceError, RuntimeError) as e:
        raise FormatError(path, f"not a GeoPackage: {e}") from None


def _ogr_value(value: Any, ogr_type: str, ogr_subtype: str, is_json: bool) -> Any:
    """A cell as a plain Python value (None for a null)."""
    if value is None:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if is_json and isinstance(value, str):
        return json.loads(value)
    if ogr_subtype == "OFSTBoolean":
        return bool(value)
    if ogr_type in ("OFTInteger", "OFTInteger64"):
        return int(value)
    if ogr_type == "OFTReal":
        return float(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        return value
    return str(value)  # dates, times, binary: as text


def _read_gpkg_layer(
    path: Path, layer: str, role: str | None, crs: str | None
) -> tuple[list[_Feature], list[int | str], str | None, dict[str, Any]]:
    """Features of one layer (properties plain Python), their labels, its CRS and metadata."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    try:
        info = pyogrio.read_info(path, layer=layer)
        df = pyogrio.read_dataframe(path, layer=layer, fid_as_index=True)
    except (DataSourceError, DataLayerError, RuntimeError) as e:
        raise FormatError(path, f"cannot read layer {layer!r}: {e}", section=layer) from None
    layer_meta = info.get("layer_metadata") or {}
    json_cols = set(json.loads(layer_meta.get(_GPKG_JSON_COLUMNS, "[]") or "[]"))
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))
    subtypes = dict(zip(info["fields"], info["ogr_subtypes"], strict=True))
    columns = [c for c in df.columns if c != df.geometry.name]
    feats: list[_Feature] = []
    labels: list[int | str] = []
    geoms = df.geometry.values
    records = df[columns].to_dict("records")
    for pos, (fid, row) in enumerate(zip(df.index, records, strict=True)):
        props: dict[str, Any] = {}
        for c in columns:
            try:
                props[c] = _ogr_value(row[c], types.get(c, ""), subtypes.get(c, ""), c in json_cols)
            except json.JSONDecodeError:
                raise FormatError(
                    path,
                    "invalid JSON text in a JSON column",
                    section=layer,
                    feature=int(fid),
                    field=c,
                ) from None
        if role is not None:
            given = props.get("role")
            if given is not None and given != role:
                raise FormatError(
                    path,
                    f"a feature of layer {layer!r} has role {given!r}",
                    section=layer,
                    feature=int(fid),
                    field="role",
                )
            props["role"] = role
        label = _label(int(fid), props.get("id", props.get("code")))
        geom = geoms[pos]
        if geom is None or (isinstance(geom, float) and math.isnan(geom)):
            raise FormatError(
                path, "missing geometry", section=layer, feature=label, field="geometry"
            )
        feats.append((int(fid), props, geom))
        labels.append(f"{label} in layer {layer!r}" if isinstance(label, str) else label)
    src = crs
    if src is None and info.get("crs"):
        try:
            src = _normalise_crs(info["crs"])
        except CRSError as e:
            raise FormatError(path, f"unknown CRS {info['crs']!r}: {e}", section=layer) from None
    return feats, labels, src, dict(info.get("dataset_metadata") or {})


def read_gpkg_network(
    path: str | Path,
    *,
    name: str | None = None,
    network_type: NetworkType | str | None = None,
    crs: str | int | None = None,
) -> Network:
    """Read a network from a GeoPackage with the layers ``nodes`` and ``links``.

    Columns follow the GeoJSON schema (``id``, ``kind``, ``name``, ``from``, ``to``;
    ``name[unit]`` columns converted to SI). The CRS comes from each layer; a layer
    without one is refused unless ``crs`` is given, which then overrides it. Geometries
    are returned in WGS84 lon/lat (degrees). Name, type, placement and network attributes
    come from the arguments or the dataset metadata written by :func:`write_gpkg_network`.
    """
    path = Path(path)
    src_arg = _crs_argument(crs)
    layers = _gpkg_layers(path)
    for needed in ("nodes", "links"):
        if needed not in layers:
            raise FormatError(
                path,
                f"a network GeoPackage needs the layers 'nodes' and 'links'; found {layers}",
                section=needed,
            )
    feats: list[_Feature] = []
    labels: list[int | str] = []
    meta: dict[str, Any] = {}
    for layer, role in (("nodes", "node"), ("links", "link")):
        lf, ll, src, dmeta = _read_gpkg_layer(path, layer, role, src_arg)
        meta = dmeta or meta
        feats.extend(_to_wgs84(path, lf, src, ll, require_crs=bool(lf)))
        labels.extend(ll)
    decoded: dict[str, Any] = {}
    for member, key in _GPKG_META.items():
        raw = meta.get(key)
        if raw is None:
            continue
        if member in (PLACEMENT_MEMBER, ATTRS_MEMBER):
            try:
                decoded[member] = json.loads(raw)
            except json.JSONDecodeError:
                raise FormatError(path, f"metadata {key!r} is not JSON", field=key) from None
        else:
            decoded[member] = raw
    net_name, ntype, placement, attrs = _network_meta(
        path, decoded, name, network_type, "GeoPackage"
    )
    return _build_network(
        path,
        feats,
        labels,
        name=net_name,
        network_type=ntype,
        placement=placement,
        attrs=attrs,
        source_format="gpkg",
    )


def _column(values: list[Any]) -> tuple[Any, bool]:
    """A column for pyogrio and whether it holds JSON text."""
    import pandas as pd

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.array(values, dtype="boolean"), False
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if all(-(2**63) <= v < 2**63 for v in present):
            return pd.array(values, dtype="Int64"), False
    if present and all(_is_number(v) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float), False
    if all(isinstance(v, str) for v in present):
        return np.array(values, dtype=object), False
    return np.array(
        [None if v is None else json.dumps(v, ensure_ascii=False) for v in values], dtype=object
    ), True


def _write_gpkg_layer(
    path: Path,
    layer: str,
    rows: list[dict[str, Any]],
    geoms: list[BaseGeometry],
    fixed: Sequence[str],
    dataset_metadata: dict[str, str] | None,
    empty_type: str = "Point",
) -> None:
    import geopandas as gpd
    import pyogrio

    keys: list[str] = list(fixed)
    for r in rows:
        for k in r:
            if k not in keys:
                keys.append(k)
    data: dict[str, Any] = {}
    json_cols: list[str] = []
    for k in keys:
        col, is_json = _column([_jsonable(r.get(k)) for r in rows])
        data[k] = col
        if is_json:
            json_cols.append(k)
    gdf = gpd.GeoDataFrame(data, geometry=list(geoms), crs=WGS84)
    types = {g.geom_type for g in geoms}
    gtype = types.pop() if len(types) == 1 else (empty_type if not geoms else "Unknown")
    kwargs: dict[str, Any] = {}
    if dataset_metadata:
        kwargs["dataset_metadata"] = dataset_metadata
    pyogrio.write_dataframe(
        gdf,
        path,
        layer=layer,
        driver="GPKG",
        geometry_type=gtype,
        layer_metadata={_GPKG_JSON_COLUMNS: json.dumps(json_cols)},
        **kwargs,
    )


def write_gpkg_network(network: Network, path: str | Path) -> Path:
    """Write ``network`` as a GeoPackage (EPSG:4326) with the layers ``nodes`` and ``links``.

    An existing file at ``path`` is replaced. Attribute columns are typed (boolean,
    integer, real, text); a column mixing types, or holding lists or objects, is JSON
    text. Returns the path written.
    """
    path = Path(path)
    _check_network_writable(network)
    for e in network.elements():
        _check_writable_attrs(f"network {network.name!r} element {e.id!r}", e.attrs, _GPKG_RESERVED)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    meta = {
        _GPKG_META[NETWORK_MEMBER]: network.name,
        _GPKG_META[NETWORK_TYPE_MEMBER]: network.type.value,
        _GPKG_META[PLACEMENT_MEMBER]: json.dumps(_jsonable(network.placement.to_dict())),
        _GPKG_META[ATTRS_MEMBER]: json.dumps(_jsonable(network.attrs), ensure_ascii=False),
    }
    nodes = list(network.nodes.values())
    links = list(network.links.values())
    node_rows = [{k: v for k, v in _node_props(n).items() if k != "role"} for n in nodes]
    link_rows = [{k: v for k, v in _link_props(lk).items() if k != "role"} for lk in links]
    _write_gpkg_layer(
        path, "nodes", node_rows, [n.geometry for n in nodes], ("id", "kind", "name"), meta
    )
    _write_gpkg_layer(
        path,
        "links",
        link_rows,
        [lk.geometry for lk in links],
        ("id", "kind", "name", "from", "to"),
        None,
        "LineString",
    )
    return path


# --------------------------------------------------------------------- jurisdictions
def _build_jurisdictions(
    path: Path, feats: list[_Feature], labels: list[int | str]
) -> list[Jurisdiction]:
    out: list[Jurisdiction] = []
    seen: set[str] = set()
    for (_, props, geom), label in zip(feats, labels, strict=True):
        core, attrs = _split_properties(path, label, props, _JURISDICTION_FIELDS)
        code = _element_id(path, label, core.get("code"), "code")
        name = _required_str(path, label, core, "name")
        level_raw = core.get("level")
        if level_raw is None:
            raise FormatError(
                path, "missing required property 'level'", feature=label, field="level"
            )
        try:
            level = JurisdictionLevel(level_raw)
        except ValueError:
            raise FormatError(
                path,
                f"unknown level {level_raw!r}; expected one of "
                f"{', '.join(lv.value for lv in JurisdictionLevel)}",
                feature=label,
                field="level",
            ) from None
        parent_raw = core.get("parent")
        parent = None if parent_raw is None else _element_id(path, label, parent_raw, "parent")
        pop_raw = core.get("population", 0)
        if pop_raw is None:
            pop_raw = 0
        if (
            not _is_number(pop_raw)
            or not math.isfinite(float(pop_raw))
            or not float(pop_raw).is_integer()
            or float(pop_raw) < 0
        ):
            raise FormatError(
                path,
                f"expected a whole number of persons >= 0, found {pop_raw!r}",
                feature=label,
                field="population",
            )
        name_zh = _optional_str(path, label, core, "name_zh")
        geom = _check_geometry(path, label, geom, _AREA_GEOMS, "jurisdiction")
        if code in seen:
            raise FormatError(
                path, f"duplicate jurisdiction code {code!r}", feature=label, field="code"
            )
        seen.add(code)
        out.append(
            Jurisdiction(
                code=code,
                name=name,
                level=level,
                geometry=geom,
                parent=parent,
                population=int(pop_raw),
                name_zh=name_zh,
                attrs=attrs,
            )
        )
    return out


def _is_gpkg(path: Path) -> bool:
    return path.suffix.lower() == ".gpkg"


def read_jurisdictions(path: str | Path, *, crs: str | int | None = None) -> list[Jurisdiction]:
    """Read jurisdictions (districts, streets/towns, grid cells) from GeoJSON or GeoPackage.

    The format follows the suffix (``.gpkg`` is a GeoPackage, read from its layer
    ``jurisdictions`` or its only layer; anything else is GeoJSON). Geometries are
    returned in WGS84; ``population`` is persons. The CRS rules are those of
    :func:`read_geojson_network` and :func:`read_gpkg_network`.
    """
    path = Path(path)
    src = _crs_argument(crs)
    if _is_gpkg(path):
        layers = _gpkg_layers(path)
        if "jurisdictions" in layers:
            layer = "jurisdictions"
        elif len(layers) == 1:
            layer = layers[0]
        else:
            raise FormatError(
                path, f"expected a layer 'jurisdictions' (or a single layer); found {layers}"
            )
        feats, labels, layer_src, _ = _read_gpkg_layer(path, layer, None, src)
        feats = _to_wgs84(path, feats, layer_src, labels, require_crs=bool(feats))
    else:
        doc, feats, labels = _geojson_features(path)
        if src is None:
            src = _crs_member(path, doc.get("crs"))
        feats = _to_wgs84(path, feats, src, labels)
    return _build_jurisdictions(path, feats, labels)


def _jurisdiction_props(j: Jurisdiction) -> dict[str, Any]:
    props: dict[str, Any] = {
        "code": j.code,
        "name": j.name,
        "level": JurisdictionLevel(j.level).value,
        "population": int(j.population),
    }
    if j.name_zh is not None:
        props["name_zh"] = j.name_zh
    if j.parent is not None:
        props["parent"] = j.parent
    for k, v in j.attrs.items():
        v = _jsonable(v)
        if v is not None:
            props[k] = v
    return props


def write_jurisdictions(js: Iterable[Jurisdiction], path: str | Path) -> Path:
    """Write jurisdictions as GeoJSON, or as a GeoPackage layer ``jurisdictions`` when the
    suffix is ``.gpkg`` (an existing file is replaced). Geometries are WGS84. Returns the path.
    """
    path = Path(path)
    js = list(js)
    for j in js:
        _check_writable_attrs(f"jurisdiction {j.code!r}", j.attrs, _JURISDICTION_FIELDS)
    if _is_gpkg(path):
        for j in js:
            _check_writable_attrs(f"jurisdiction {j.code!r}", j.attrs, _GPKG_RESERVED)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        _write_gpkg_layer(
            path,
            "jurisdictions",
            [_jurisdiction_props(j) for j in js],
            [j.geometry for j in js],
            ("code", "name", "name_zh", "level", "parent", "population"),
            None,
            "Polygon",
        )
        return path
    _write_json(path, jurisdictions_to_geojson(js))
    return path


def jurisdictions_to_geojson(js: Iterable[Jurisdiction]) -> dict[str, Any]:
    """Jurisdictions as a GeoJSON FeatureCollection (a dict) in WGS84."""
    return {
        "type": "FeatureCollection",
        "features": [_feature(j.geometry, _jurisdiction_props(j)) for j in js],
    }
