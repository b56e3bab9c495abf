"""The relational schema of the city store (SQLAlchemy 2 declarative tables).

One schema serves both backends:

* **PostgreSQL + PostGIS** (production): geometry columns are PostGIS ``geometry`` with
  SRID 4326 (WGS84 lon/lat) enforced by a check constraint, each with a GiST index.
* **SQLite** (embedded default): geometry columns hold ISO WKB blobs; assets and
  jurisdictions also carry their bounding box (``minx``/``miny``/``maxx``/``maxy``, degrees)
  in indexed float columns so a spatial query can prefilter in SQL and finish exactly in
  process with shapely.

The PostGIS geometry column has no type modifier (``geometry`` rather than
``geometry(Geometry,4326)``) so that a 3D geometry (lon, lat, z) round-trips on both
backends as it does on SQLite; the SRID is enforced by the ``enforce_srid_geom`` check
constraint, which PostGIS' ``geometry_columns`` view understands.

Every node, link and critical facility of the city is one row of :class:`AssetRow`; its
``uid`` is the city-wide identity (``"<network>:<id>"`` or ``"facility:<id>"``).
Sensors and interdependencies refer to assets by uid (no foreign key, so a network can be
replaced atomically with its ids kept).

The DDL lives in the hand-written migrations (``store/migrations/versions``); this module
must describe the same schema (``tests/store/test_migrations.py`` checks it).
"""

from __future__ import annotations

import datetime as _dt
import decimal
import json
import math
from enum import Enum
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2 import Geometry
from geoalchemy2.elements import WKBElement
from shapely.geometry.base import BaseGeometry
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

SRID = 4326
"""EPSG code of every stored geometry (WGS84 lon/lat, degrees)."""

ROLES = ("node", "link", "facility")
"""Values of ``asset.role``."""


# --------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------
class PostgisGeometry(Geometry):
    """geoalchemy2 ``Geometry(srid=4326)`` rendered without a type modifier.

    Binds go through ``ST_GeomFromEWKT`` (which also parses hex EWKB) and results come
    back through ``ST_AsEWKB``, as geoalchemy2 does for any ``Geometry``.
    """

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(geometry_type="GEOMETRY", srid=SRID, spatial_index=False)

    def get_col_spec(self, **kw: Any) -> str:
        return "geometry"


class GeometryType(TypeDecorator[BaseGeometry]):
    """A WGS84 geometry column: PostGIS ``geometry`` (SRID 4326) or a WKB blob on SQLite.

    Python side values are shapely geometries (lon/lat degrees). Bind values may also be
    already encoded: ``bytes`` (ISO WKB) or ``str`` (hex (E)WKB), which the bulk writers
    of the store use to encode many geometries in one vectorised call.
    """

    impl = sa.LargeBinary
    cache_ok = True
    # geoalchemy2's DDL event listeners probe these attributes on every column type
    spatial_index = False
    use_N_D_index = False

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect is None:  # geoalchemy2 probes the type with no dialect
            return sa.LargeBinary()
        if dialect.name == "postgresql":
            return dialect.type_descriptor(PostgisGeometry())
        return dialect.type_descriptor(sa.LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, BaseGeometry):
            return encode_geometries([value], dialect.name)[0]
        if isinstance(value, bytes | str):
            return value
        raise TypeError(f"not a shapely geometry: {type(value).__name__}")

    def process_result_value(self, value: Any, dialect: Dialect) -> BaseGeometry | None:
        if value is None:
            return None
        return decode_geometry(value)


def encode_geometries(geoms: Any, backend: str) -> list[Any]:
    """Encode shapely geometries for binding (vectorised).

    PostgreSQL: hex EWKB with SRID 4326 (``str``), parsed by ``ST_GeomFromEWKT``;
    SQLite: ISO WKB (``bytes``). Raises :class:`TypeError` if an item is not a geometry.
    """
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return []
    ok = shapely.is_geometry(arr)
    if not bool(np.all(ok)):
        bad = arr[~ok][0]
        raise TypeError(f"not a shapely geometry: {bad!r}")
    if backend == "postgresql":
        return list(shapely.to_wkb(shapely.set_srid(arr, SRID), hex=True, include_srid=True))
    return list(shapely.to_wkb(arr))


def decode_geometry(value: Any) -> BaseGeometry:
    """A shapely geometry from a stored value (WKB bytes/memoryview, hex, or WKBElement)."""
    if isinstance(value, WKBElement):
        value = value.data
    if isinstance(value, memoryview):
        value = value.tobytes()
    geom = shapely.from_wkb(value)
    return shapely.set_srid(geom, 0) if shapely.get_srid(geom) else geom


def decode_geometries(values: list[Any]) -> np.ndarray:
    """Vectorised :func:`decode_geometry` for raw WKB/EWKB values (an object array)."""
    if not values:
        return np.empty(0, dtype=object)
    raw = [v.tobytes() if isinstance(v, memoryview) else v for v in values]
    geoms = shapely.from_wkb(np.asarray(raw, dtype=object))
    return shapely.set_srid(geoms, 0)


# --------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, _dt.datetime | _dt.date | _dt.time):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    raise TypeError(f"value of type {type(obj).__name__} is not JSON-serialisable: {obj!r}")


def _finite(obj: Any) -> Any:
    """A copy of ``obj`` with non-finite floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _finite(obj.tolist())
    if isinstance(obj, np.floating):
        return _finite(float(obj))
    return obj


def json_dumps(obj: Any) -> str:
    """Serialise an attribute value to JSON text for both backends.

    NumPy scalars and arrays become plain numbers and lists, enums their value, dates ISO
    8601 text; NaN and infinities become ``null`` (neither JSON nor PostgreSQL accepts
    them); tuples become lists. Raises :class:`TypeError` for anything else.
    """
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_json_default)
    except ValueError:  # a NaN or infinity somewhere: clean and retry
        return json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, default=_json_default)


def json_loads(text: str | bytes) -> Any:
    """Inverse of :func:`json_dumps`."""
    return json.loads(text)


JsonDoc = sa.JSON().with_variant(JSONB(), "postgresql")
"""An attribute document: JSON text on SQLite, ``jsonb`` on PostgreSQL (queryable)."""

JsonBlob = sa.JSON()
"""A large opaque JSON document (``json`` on PostgreSQL: kept as written, faster to store)."""


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------
class Base(DeclarativeBase):
    """Declarative base of the city store's tables."""


def _srid_check(name: str) -> sa.CheckConstraint:
    ck = sa.CheckConstraint(f"ST_SRID(geom) = {SRID}", name=name)
    return ck.ddl_if(dialect="postgresql")  # type: ignore[no-any-return]


class CityRow(Base):
    """The city itself: exactly one row (``id`` = 1)."""

    __tablename__ = "city"
    __table_args__ = (sa.CheckConstraint("id = 1", name="ck_city_single_row"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    name_zh: Mapped[str | None] = mapped_column(sa.String(200))
    admin_code: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    center_lon: Mapped[float] = mapped_column(sa.Float, nullable=False)
    center_lat: Mapped[float] = mapped_column(sa.Float, nullable=False)
    crs: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    attrs: Mapped[Any] = mapped_column(JsonDoc, nullable=False)


class JurisdictionRow(Base):
    """A district, street/town or grid cell with its polygon."""

    __tablename__ = "jurisdiction"
    __table_args__ = (
        _srid_check("enforce_srid_geom_jurisdiction"),
        sa.Index("ix_jurisdiction_level", "level"),
        sa.Index("ix_jurisdiction_parent_code", "parent_code"),
        sa.Index("ix_jurisdiction_geom", "geom", postgresql_using="gist").ddl_if(
            dialect="postgresql"
        ),
        sa.Index("ix_jurisdiction_bbox", "minx", "maxx", "miny", "maxy").ddl_if(dialect="sqlite"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    name_zh: Mapped[str | None] = mapped_column(sa.String(200))
    level: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    parent_code: Mapped[str | None] = mapped_column(sa.String(64))
    population: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0)
    geom: Mapped[BaseGeometry] = mapped_column(GeometryType, nullable=False)
    attrs: Mapped[Any] = mapped_column(JsonDoc, nullable=False)
    minx: Mapped[float | None] = mapped_column(sa.Float)
    miny: Mapped[float | None] = mapped_column(sa.Float)
    maxx: Mapped[float | None] = mapped_column(sa.Float)
    maxy: Mapped[float | None] = mapped_column(sa.Float)


class NetworkRow(Base):
    """One lifeline network; its elements are rows of :class:`AssetRow`."""

    __tablename__ = "network"
    __table_args__ = (sa.Index("ix_network_type", "type"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False, unique=True)
    type: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    source_format: Mapped[str | None] = mapped_column(sa.String(64))
    placement: Mapped[Any] = mapped_column(JsonBlob, nullable=False)
    native: Mapped[Any] = mapped_column(JsonBlob, nullable=True)
    attrs: Mapped[Any] = mapped_column(JsonDoc, nullable=False)


class AssetRow(Base):
    """A node, a link or a critical facility.

    ``network_id`` is NULL exactly for facilities. Links carry ``start_uid``/``end_uid``.
    ``name_zh`` and ``population_served`` (persons) are filled for facilities.
    ``minx``..``maxy`` is the bounding box in degrees (NULL for an empty geometry).
    """

    __tablename__ = "asset"
    __table_args__ = (
        sa.CheckConstraint(f"role IN {ROLES!r}", name="ck_asset_role"),
        sa.CheckConstraint(
            "(role = 'facility' AND network_id IS NULL) OR "
            "(role <> 'facility' AND network_id IS NOT NULL)",
            name="ck_asset_network",
        ),
        sa.CheckConstraint(
            "role <> 'link' OR (start_uid IS NOT NULL AND end_uid IS NOT NULL)",
            name="ck_asset_link_ends",
        ),
        _srid_check("enforce_srid_geom_asset"),
        sa.Index("ix_asset_network_id", "network_id"),
        sa.Index("ix_asset_role_kind", "role", "kind"),
        sa.Index("ix_asset_kind", "kind"),
        sa.Index("ix_asset_geom", "geom", postgresql_using="gist").ddl_if(dialect="postgresql"),
        sa.Index("ix_asset_bbox_x", "minx", "maxx", "miny", "maxy").ddl_if(dialect="sqlite"),
        sa.Index("ix_asset_bbox_y", "miny", "maxy", "minx", "maxx").ddl_if(dialect="sqlite"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(sa.String(300), nullable=False, unique=True)
    network_id: Mapped[int | None] = mapped_column(
        sa.Integer, sa.ForeignKey("network.id", ondelete="CASCADE", name="fk_asset_network")
    )
    role: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    name: Mapped[str | None] = mapped_column(sa.String(300))
    name_zh: Mapped[str | None] = mapped_column(sa.String(300))
    population_served: Mapped[int | None] = mapped_column(sa.BigInteger)
    start_uid: Mapped[str | None] = mapped_column(sa.String(300))
    end_uid: Mapped[str | None] = mapped_column(sa.String(300))
    geom: Mapped[BaseGeometry] = mapped_column(GeometryType, nullable=False)
    attrs: Mapped[Any] = mapped_column(JsonDoc, nullable=False)
    minx: Mapped[float | None] = mapped_column(sa.Float)
    miny: Mapped[float | None] = mapped_column(sa.Float)
    maxx: Mapped[float | None] = mapped_column(sa.Float)
    maxy: Mapped[float | None] = mapped_column(sa.Float)


class InterdependencyRow(Base):
    """``dependent_uid`` needs ``supporting_uid`` in the way ``kind`` says."""

    __tablename__ = "interdependency"
    __table_args__ = (
        sa.UniqueConstraint("dependent_uid", "supporting_uid", "kind", name="uq_interdependency"),
        sa.Index("ix_interdependency_supporting_uid", "supporting_uid"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    dependent_uid: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    supporting_uid: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    distance_m: Mapped[float | None] = mapped_column(sa.Float)


class SensorRow(Base):
    """A sensor on an asset; ``low``/``high`` is its physical range in ``unit`` (SI)."""

    __tablename__ = "sensor"
    __table_args__ = (
        _srid_check("enforce_srid_geom_sensor"),
        sa.Index("ix_sensor_asset_uid", "asset_uid"),
        sa.Index("ix_sensor_quantity", "quantity"),
        sa.Index("ix_sensor_geom", "geom", postgresql_using="gist").ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(sa.String(300), nullable=False, unique=True)
    asset_uid: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    quantity: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    unit: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    low: Mapped[float] = mapped_column(sa.Float, nullable=False)
    high: Mapped[float] = mapped_column(sa.Float, nullable=False)
    geom: Mapped[BaseGeometry] = mapped_column(GeometryType, nullable=False)
    attrs: Mapped[Any] = mapped_column(JsonDoc, nullable=False)


class ReadingSensorRow(Base):
    """The compact integer key of a sensor in the readings table (``reading.sensor_id``)."""

    __tablename__ = "reading_sensor"
    __table_args__ = (sa.UniqueConstraint("sensor_uid", name="uq_reading_sensor_uid"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    sensor_uid: Mapped[str] = mapped_column(sa.String(300), nullable=False)


class ReadingRow(Base):
    """One accepted sensor reading (SI value; ``ts_ms``: ms since the epoch, UTC). Primary
    key (sensor_id, ts_ms) makes inserts idempotent: a redelivered reading is ignored,
    never double-counted; it also serves the newest readings per sensor. On PostgreSQL
    the table is partitioned by range of ``ts_ms`` (one partition per UTC day, created on
    demand; see :mod:`rescity.store.monitoring`)."""

    __tablename__ = "reading"
    __table_args__ = {"sqlite_with_rowid": False}

    sensor_id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    ts_ms: Mapped[int] = mapped_column(sa.BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[float] = mapped_column(sa.Float, nullable=False)


class DeadLetterRow(Base):
    """A rejected message or reading with the reason (see :mod:`rescity.monitor.validate`)."""

    __tablename__ = "dead_letter"
    __table_args__ = (
        sa.Index("ix_dead_letter_reason", "reason"),
        sa.Index("ix_dead_letter_received_ms", "received_ms"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    received_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    source: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    reason: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    detail: Mapped[str] = mapped_column(sa.Text, nullable=False)
    sensor_uid: Mapped[str | None] = mapped_column(sa.String(300))
    ts_ms: Mapped[int | None] = mapped_column(sa.BigInteger)
    value: Mapped[str | None] = mapped_column(sa.Text)
    payload: Mapped[str | None] = mapped_column(sa.Text)


class AlarmRow(Base):
    """An alarm: identity (model, asset); its current state is derived from its events
    and kept here for queries. ``level`` follows the national convention (1 = red)."""

    __tablename__ = "alarm"
    __table_args__ = (
        sa.Index("ix_alarm_identity", "model", "asset_uid"),
        sa.Index("ix_alarm_state", "state"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    asset_uid: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    state: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    level: Mapped[int] = mapped_column(sa.SmallInteger, nullable=False)
    opened_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    updated_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    attrs: Mapped[Any] = mapped_column(JsonDoc, nullable=False)


class AlarmEventRow(Base):
    """One transition of an alarm (append-only): opened, pending, firing, escalated,
    de-escalated, resolved, acknowledged, silenced, inhibited, grouped, ..."""

    __tablename__ = "alarm_event"
    __table_args__ = (sa.Index("ix_alarm_event_alarm", "alarm_id", "seq"),)

    seq: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    alarm_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    model: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    asset_uid: Mapped[str] = mapped_column(sa.String(300), nullable=False)
    ts_ms: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    level_before: Mapped[int | None] = mapped_column(sa.SmallInteger)
    level_after: Mapped[int | None] = mapped_column(sa.SmallInteger)
    value: Mapped[float | None] = mapped_column(sa.Float)
    details: Mapped[Any] = mapped_column(JsonDoc, nullable=False)


city_table: sa.Table = CityRow.__table__  # type: ignore[assignment]
jurisdiction_table: sa.Table = JurisdictionRow.__table__  # type: ignore[assignment]
network_table: sa.Table = NetworkRow.__table__  # type: ignore[assignment]
asset_table: sa.Table = AssetRow.__table__  # type: ignore[assignment]
interdependency_table: sa.Table = InterdependencyRow.__table__  # type: ignore[assignment]
sensor_table: sa.Table = SensorRow.__table__  # type: ignore[assignment]
reading_table: sa.Table = ReadingRow.__table__  # type: ignore[assignment]
reading_sensor_table: sa.Table = ReadingSensorRow.__table__  # type: ignore[assignment]
dead_letter_table: sa.Table = DeadLetterRow.__table__  # type: ignore[assignment]
alarm_table: sa.Table = AlarmRow.__table__  # type: ignore[assignment]
alarm_event_table: sa.Table = AlarmEventRow.__table__  # type: ignore[assignment]

metadata = Base.metadata
"""All tables of the city store (the target of the migrations)."""

FOREIGN_TABLES = frozenset({"spatial_ref_sys", "topology", "layer", "alembic_version"})
"""Tables in the database that this metadata does not describe (PostGIS', Alembic's)."""

READING_PARTITION_PREFIX = "reading_p"  # reading_p_default, reading_p20261122
"""Name prefix of the readings table's partitions on PostgreSQL (``reading_p20261122``)."""


def autogenerate_filters(dialect_name: str) -> dict[str, Any]:
    """``include_name``/``include_object`` options for Alembic autogenerate on a backend.

    They hide the tables of PostGIS and Alembic, and the indexes that exist on one backend
    only (declared with ``ddl_if(dialect=...)``: GiST on PostgreSQL, bbox on SQLite).
    """

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "table" and name is not None and name.startswith(READING_PARTITION_PREFIX):
            return False  # daily partitions of the readings table
        return not (type_ == "table" and name in FOREIGN_TABLES)

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        cond = getattr(obj, "_ddl_if", None)
        if type_ == "index" and not reflected and cond is not None and cond.dialect:
            return bool(cond.dialect == dialect_name)
        return True

    return {"include_name": include_name, "include_object": include_object}


# The response loop's tables live in their own module; importing it here puts them in
# ``metadata`` (the migrations' target).
from . import response_schema as _response_schema  # noqa: E402,F401
from . import risk_schema as _risk_schema  # noqa: E402,F401
from . import simulation as _simulation  # noqa: E402,F401
