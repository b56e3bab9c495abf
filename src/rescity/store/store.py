"""The city store: one interface over an SQLite file and PostgreSQL + PostGIS.

Every public method is one transaction (or a savepoint inside :meth:`Store.transaction`):
it either completes or leaves the store exactly as it was.

Spatial queries take WGS84 lon/lat (degrees) and return distances in metres. On
PostgreSQL they run in PostGIS (GiST index, ``ST_Intersects``, KNN ``<->`` then
geography (WGS84 spheroid) distances). On SQLite a bounding-box prefilter in SQL picks
candidates and shapely finishes exactly: intersection in lon/lat as PostGIS does, and
distances planar in the UTM zone of the query point (within about 0.1 % of the geodesic
distance inside a zone; in central Helsinki 0.03 %). Positions across the antimeridian are
not supported.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from rescity.model import (
    AssetRole,
    City,
    DependencyKind,
    Facility,
    FacilityKind,
    Interdependency,
    Jurisdiction,
    JurisdictionLevel,
    Link,
    Network,
    NetworkType,
    Node,
    Placement,
    Sensor,
    asset_uid,
    utm_crs_for,
)
from rescity.model.geo import project, project_many

from .engine import BEGIN_OPTION, default_url, make_engine, normalise_url
from .schema import (
    GeometryType,
    asset_table,
    city_table,
    decode_geometries,
    encode_geometries,
    interdependency_table,
    jurisdiction_table,
    network_table,
    sensor_table,
)

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def head_revision() -> str:
    """The newest migration's revision id (what ``Store.open`` migrates to)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head
"""The Alembic script folder of the store."""

_MIGRATION_LOCK = 0x52455343  # pg_advisory_xact_lock key ("RESC") around migrations
_IN_CHUNK = 500  # uids per IN (...) list
_FIRST_RADIUS_M = 250.0  # first search radius of nearest_assets on SQLite, metres
_M_PER_DEG_LAT_MIN = 110_574.0  # shortest meridian degree on WGS84 (at the equator), metres
_A_WGS84 = 6_378_137.0  # equatorial radius, metres

A = asset_table
N = network_table
J = jurisdiction_table
S = sensor_table
D = interdependency_table

E = TypeVar("E", bound=Enum)


class StoreError(RuntimeError):
    """The store cannot do what was asked (the store is left unchanged)."""


class NotFoundError(StoreError):
    """A network, city or asset that the store does not hold."""


class ConflictError(StoreError):
    """A name, code or uid that the store already holds (or a duplicate in the input)."""


def _describe(e: SQLAlchemyError) -> str:
    orig = getattr(e, "orig", None)
    text = str(orig if orig is not None else e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _enum(cls: type[E], value: Any, what: str) -> E:
    try:
        return cls(value.value if isinstance(value, Enum) else value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise StoreError(f"{what}: {value!r} is not one of {allowed}") from None


def _chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _degree_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """A lon/lat box (degrees) certain to contain every point within ``radius_m`` metres.

    Uses the shortest meridian degree of WGS84 for latitude and the parallel radius at the
    box's pole-most latitude (a lower bound along any path within the radius) for
    longitude, with a 1 % margin (which also covers the UTM scale error of the SQLite
    distances). Clamped to [-180, 180] x [-90, 90].
    """
    r = radius_m * 1.01 + 1e-3
    dlat = r / _M_PER_DEG_LAT_MIN
    lat_hi = abs(lat) + dlat
    if lat_hi >= 89.9:
        dlon = 360.0
    else:
        dlon = r / (_A_WGS84 * math.pi / 180.0 * math.cos(math.radians(lat_hi)))
    return (
        max(-180.0, lon - dlon),
        max(-90.0, lat - dlat),
        min(180.0, lon + dlon),
        min(90.0, lat + dlat),
    )


def _utm_distances(lon: float, lat: float, geoms: np.ndarray) -> np.ndarray:
    """Planar distances (metres) from (lon, lat) to ``geoms`` in the UTM zone of the point."""
    if geoms.size == 0:
        return np.empty(0)
    crs = utm_crs_for(lon, lat)
    projected = project_many(list(geoms), crs)
    here = project(Point(lon, lat), crs)
    return np.asarray(shapely.distance(projected, here), dtype=float)


def _check_lonlat(lon: float, lat: float) -> None:
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0) or lon != lon or lat != lat:
        raise ValueError(f"not a WGS84 position: lon={lon}, lat={lat}")


def _sorted_pairs(uids: Sequence[str], dist: np.ndarray) -> list[tuple[str, float]]:
    """(uid, distance) pairs by distance, ties by uid."""
    order = sorted(range(len(uids)), key=lambda i: (float(dist[i]), uids[i]))
    return [(uids[i], float(dist[i])) for i in order]


class Store:
    """Persistence of the city model (see the module docstring).

    Open with :meth:`Store.open`; use as a context manager to close it. A ``Store`` can be
    shared between threads: each method takes its own connection, except inside
    :meth:`transaction`, which binds one connection to the calling thread/task.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._backend = engine.dialect.name
        self._tx: ContextVar[Connection | None] = ContextVar(
            f"rescity_store_tx_{id(self)}", default=None
        )

    # -- life cycle -------------------------------------------------------------------
    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, echo: bool = False) -> Store:
        """Connect to ``url`` (default :func:`default_url`) and upgrade the schema to head.

        ``postgresql://`` URLs are normalised to ``postgresql+psycopg://``. Raises
        :class:`StoreError` if the database cannot be reached or migrated.
        """
        text = normalise_url(url) if url else default_url()
        try:
            engine = make_engine(text, echo=echo)
        except (ValueError, sa.exc.ArgumentError) as e:
            raise StoreError(f"bad database URL {text!r}: {e}") from e
        masked = engine.url.render_as_string(hide_password=True)
        try:
            with engine.connect():
                pass
        except SQLAlchemyError as e:
            engine.dispose()
            raise StoreError(f"cannot connect to {masked}: {_describe(e)}") from e
        store = cls(engine)
        if migrate:
            try:
                store.migrate()
            except BaseException:
                engine.dispose()
                raise
        return store

    def migrate(self, revision: str = "head") -> None:
        """Run the Alembic migrations up to ``revision`` (one transaction)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    if self._backend == "postgresql":
                        conn.execute(
                            sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK}
                        )
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, revision)
        except SQLAlchemyError as e:
            hint = ""
            if "postgis" in str(e).lower():
                hint = " (is PostGIS installed on the server? Debian: postgresql-15-postgis-3)"
            raise StoreError(f"cannot migrate the store: {_describe(e)}{hint}") from e

    def revision(self) -> str | None:
        """The schema revision of the database (None before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self._engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._backend

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for other stores sharing the database)."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with the password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        """Release every connection of the store."""
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- transactions -----------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """Make the store's operations in the ``with`` block one transaction.

        Inside it every method of this store (in this thread or task) uses the same
        connection; a method that fails rolls back only its own savepoint and raises, and
        an exception leaving the block rolls everything back. Nested calls use savepoints.
        """
        outer = self._tx.get()
        if outer is not None:
            with outer.begin_nested():
                yield self
            return
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    token = self._tx.set(conn)
                    try:
                        yield self
                    finally:
                        self._tx.reset(token)
        except IntegrityError as e:
            raise ConflictError(_describe(e)) from e
        except SQLAlchemyError as e:
            raise StoreError(_describe(e)) from e

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        outer = self._tx.get()
        try:
            if outer is not None:
                with outer.begin_nested():
                    yield outer
            else:
                with self._engine.connect() as conn:
                    conn.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
                    with conn.begin():
                        yield conn
        except IntegrityError as e:
            raise ConflictError(_describe(e)) from e
        except SQLAlchemyError as e:
            raise StoreError(_describe(e)) from e

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        outer = self._tx.get()
        if outer is not None:
            yield outer
            return
        try:
            with self._engine.connect() as conn:
                yield conn
        except SQLAlchemyError as e:
            raise StoreError(_describe(e)) from e

    def _wkb(self, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """A select expression giving the raw (E)WKB bytes of a geometry column."""
        if self._backend == "postgresql":
            return sa.type_coerce(sa.func.ST_AsEWKB(col), sa.LargeBinary)
        return sa.type_coerce(col, sa.LargeBinary)

    def _insert_rows(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Bulk insert (``executemany`` with SQLAlchemy's insertmanyvalues batching)."""
        if rows:
            conn.execute(sa.insert(table), rows)

    def _encode(self, geoms: Sequence[Any], names: Sequence[str]) -> list[Any]:
        try:
            return encode_geometries(geoms, self._backend)
        except TypeError:
            for g, name in zip(geoms, names, strict=True):
                if not isinstance(g, BaseGeometry):
                    raise StoreError(
                        f"{name}: geometry must be a shapely geometry, not {type(g).__name__}"
                    ) from None
            raise

    @staticmethod
    def _bounds(geoms: Sequence[BaseGeometry]) -> list[tuple[float | None, ...]]:
        b = shapely.bounds(np.asarray(geoms, dtype=object))
        return [tuple(None if v != v else float(v) for v in row) for row in b]

    # -- whole city -------------------------------------------------------------------
    def save_city(self, city: City) -> None:
        """Replace the whole content of the store by ``city`` (one transaction)."""
        self._check_city(city)
        with self._write() as conn:
            for t in (S, D, A, N, J, city_table):
                conn.execute(sa.delete(t))
            conn.execute(
                sa.insert(city_table),
                {
                    "id": 1,
                    "name": city.name,
                    "name_zh": city.name_zh,
                    "admin_code": city.admin_code,
                    "center_lon": float(city.center[0]),
                    "center_lat": float(city.center[1]),
                    "crs": city.crs,
                    "attrs": city.attrs or {},
                },
            )
            self._insert_jurisdictions(conn, list(city.jurisdictions.values()))
            for net in city.networks.values():
                self._insert_network(conn, net)
            self._insert_facilities(conn, list(city.facilities.values()))
            self._insert_interdependencies(conn, list(city.interdependencies))
            self._insert_sensors(conn, list(city.sensors.values()))

    def _check_city(self, city: City) -> None:
        """Refuse a city whose references do not resolve (nothing is written)."""
        levels = {
            code: _enum(JurisdictionLevel, j.level, f"jurisdiction {code!r} level")
            for code, j in city.jurisdictions.items()
        }
        self._check_jurisdictions(list(city.jurisdictions.values()), levels)
        for key, net in city.networks.items():
            if key != net.name:
                raise StoreError(f"network stored under {key!r} is named {net.name!r}")
        for d in city.interdependencies:
            for uid in (d.dependent, d.supporting):
                if city.asset(uid) is None:
                    raise NotFoundError(f"interdependency {d}: unknown asset {uid!r}")
        for s in city.sensors.values():
            if city.asset(s.asset) is None:
                raise NotFoundError(f"sensor {s.id!r}: unknown asset {s.asset!r}")

    def load_city(self) -> City:
        """The whole city as saved (raises :class:`NotFoundError` if none was saved)."""
        with self._read() as conn:
            row = conn.execute(sa.select(city_table)).mappings().one_or_none()
            if row is None:
                raise NotFoundError("the store holds no city: save one with save_city()")
            city = City(
                name=row["name"],
                center=(row["center_lon"], row["center_lat"]),
                name_zh=row["name_zh"],
                admin_code=row["admin_code"],
                crs=row["crs"],
                attrs=row["attrs"] or {},
            )
            for j in self._load_jurisdictions(conn):
                city.jurisdictions[j.code] = j
            city.networks = self._load_networks(conn, None)
            for f in self._load_facilities(conn):
                city.facilities[f.id] = f
            city.interdependencies = self._load_interdependencies(conn)
            for s in self._load_sensors(conn):
                city.sensors[s.id] = s
        return city

    def get_jurisdictions(self, level: JurisdictionLevel | str | None = None) -> list[Jurisdiction]:
        """The stored jurisdictions (of one ``level`` if given), in insertion order."""
        lv = None if level is None else _enum(JurisdictionLevel, level, "level").value
        with self._read() as conn:
            return self._load_jurisdictions(conn, lv)

    def get_facilities(self) -> list[Facility]:
        """The stored critical facilities, in insertion order."""
        with self._read() as conn:
            return self._load_facilities(conn)

    def get_sensors(self) -> list[Sensor]:
        """The stored sensors, in insertion order."""
        with self._read() as conn:
            return self._load_sensors(conn)

    def get_interdependencies(self) -> list[Interdependency]:
        """The stored interdependencies, in insertion order."""
        with self._read() as conn:
            return self._load_interdependencies(conn)

    # -- networks ---------------------------------------------------------------------
    def add_network(self, net: Network, *, replace: bool = False) -> None:
        """Store ``net`` and its nodes and links (one transaction).

        A network of the same name raises :class:`ConflictError` unless ``replace``; then
        the old network and its assets are replaced atomically. Sensors and
        interdependencies on uids the new network no longer has are deleted (logged).
        """
        with self._write() as conn:
            old = conn.execute(sa.select(N.c.id).where(N.c.name == net.name)).scalar()
            if old is not None:
                if not replace:
                    raise ConflictError(
                        f"the store already has a network named {net.name!r} (use replace=True)"
                    )
                conn.execute(sa.delete(A).where(A.c.network_id == old))
                conn.execute(sa.delete(N).where(N.c.id == old))
            self._insert_network(conn, net)
            if old is not None:
                self._delete_orphans(conn, f"replacing network {net.name!r}")

    def get_network(self, name: str) -> Network:
        """The network called ``name`` (raises :class:`NotFoundError`)."""
        with self._read() as conn:
            nets = self._load_networks(conn, name)
        if name not in nets:
            raise NotFoundError(f"the store has no network named {name!r}")
        return nets[name]

    def network_names(self) -> list[str]:
        """Names of the stored networks, sorted."""
        with self._read() as conn:
            return sorted(conn.execute(sa.select(N.c.name)).scalars())

    def network_summaries(self) -> list[dict[str, Any]]:
        """``name``, ``type``, ``source_format``, ``nodes``, ``links`` of every stored
        network, sorted by name (counted in SQL, without loading the networks)."""
        q = (
            sa.select(
                N.c.name,
                N.c.type,
                N.c.source_format,
                sa.func.sum(sa.case((A.c.role == "node", 1), else_=0)),
                sa.func.sum(sa.case((A.c.role == "link", 1), else_=0)),
            )
            .select_from(N.outerjoin(A, A.c.network_id == N.c.id))
            .group_by(N.c.id, N.c.name, N.c.type, N.c.source_format)
        )
        with self._read() as conn:
            rows = conn.execute(q).all()
        return [
            {
                "name": name,
                "type": type_,
                "source_format": fmt,
                "nodes": int(nodes or 0),
                "links": int(links or 0),
            }
            for name, type_, fmt, nodes, links in sorted(rows, key=lambda r: r[0])
        ]

    def delete_network(self, name: str) -> None:
        """Delete a network, its assets and the sensors and interdependencies on them."""
        with self._write() as conn:
            nid = conn.execute(sa.select(N.c.id).where(N.c.name == name)).scalar()
            if nid is None:
                raise NotFoundError(f"the store has no network named {name!r}")
            conn.execute(sa.delete(A).where(A.c.network_id == nid))
            conn.execute(sa.delete(N).where(N.c.id == nid))
            self._delete_orphans(conn, f"deleting network {name!r}")

    def _check_network(self, net: Network) -> NetworkType:
        if not net.name or ":" in net.name or net.name == "facility":
            raise StoreError(
                f"network name {net.name!r} cannot be stored: it must be non-empty, "
                "contain no ':' and not be 'facility' (asset uids are '<network>:<id>')"
            )
        ntype = _enum(NetworkType, net.type, f"network {net.name!r} type")
        for key, node in net.nodes.items():
            if key != node.id:
                raise StoreError(
                    f"network {net.name!r}: node stored under {key!r} has id {node.id!r}"
                )
        for key, link in net.links.items():
            if key != link.id:
                raise StoreError(
                    f"network {net.name!r}: link stored under {key!r} has id {link.id!r}"
                )
            for end in (link.start, link.end):
                if end not in net.nodes:
                    raise StoreError(
                        f"network {net.name!r}: link {link.id!r} refers to unknown node {end!r}"
                    )
        both = net.nodes.keys() & net.links.keys()
        if both:
            shown = ", ".join(sorted(both)[:10])
            raise ConflictError(
                f"network {net.name!r}: {len(both)} ids are both a node and a link ({shown}); "
                f"asset uids '<network>:<id>' must be unique"
            )
        return ntype

    def _insert_network(self, conn: Connection, net: Network) -> None:
        ntype = self._check_network(net)
        placement = net.placement if net.placement is not None else Placement()
        result = conn.execute(
            sa.insert(N),
            {
                "name": net.name,
                "type": ntype.value,
                "source_format": net.source_format,
                "placement": placement.to_dict(),
                "native": net.native,
                "attrs": net.attrs or {},
            },
        )
        assert result.inserted_primary_key is not None
        network_id = result.inserted_primary_key[0]
        nodes = list(net.nodes.values())
        links = list(net.links.values())
        elems: list[Node | Link] = [*nodes, *links]
        uids = [asset_uid(net.name, e.id) for e in elems]
        geoms = [e.geometry for e in elems]
        wkb = self._encode(geoms, uids)
        bounds = self._bounds(geoms)
        rows: list[dict[str, Any]] = []
        for i, e in enumerate(elems):
            is_link = i >= len(nodes)
            rows.append(
                {
                    "uid": uids[i],
                    "network_id": network_id,
                    "role": "link" if is_link else "node",
                    "kind": str(e.kind),
                    "name": e.name,
                    "name_zh": None,
                    "population_served": None,
                    "start_uid": asset_uid(net.name, e.start) if is_link else None,  # type: ignore[union-attr]
                    "end_uid": asset_uid(net.name, e.end) if is_link else None,  # type: ignore[union-attr]
                    "geom": wkb[i],
                    "attrs": e.attrs or {},
                    "minx": bounds[i][0],
                    "miny": bounds[i][1],
                    "maxx": bounds[i][2],
                    "maxy": bounds[i][3],
                }
            )
        self._insert_rows(conn, A, rows)

    def _load_networks(self, conn: Connection, name: str | None) -> dict[str, Network]:
        q = sa.select(N).order_by(N.c.id)
        if name is not None:
            q = q.where(N.c.name == name)
        nrows = conn.execute(q).mappings().all()
        if not nrows:
            return {}
        nets: dict[int, Network] = {}
        for r in nrows:
            nets[r["id"]] = Network(
                name=r["name"],
                type=NetworkType(r["type"]),
                placement=Placement.from_dict(r["placement"]),
                source_format=r["source_format"],
                native=r["native"],
                attrs=r["attrs"] or {},
            )
        aq = sa.select(
            A.c.network_id,
            A.c.uid,
            A.c.role,
            A.c.kind,
            A.c.name,
            A.c.start_uid,
            A.c.end_uid,
            A.c.attrs,
            self._wkb(A.c.geom).label("wkb"),
        ).order_by(A.c.id)
        if name is not None:
            aq = aq.where(A.c.network_id == nrows[0]["id"])
        else:
            aq = aq.where(A.c.network_id.is_not(None))
        arows: Any = conn.execute(aq).all()
        geoms = decode_geometries([r.wkb for r in arows])
        for r, g in zip(arows, geoms, strict=True):
            net = nets[r.network_id]
            cut = len(net.name) + 1
            eid = r.uid[cut:]
            if r.role == "link":
                net.links[eid] = Link(
                    id=eid,
                    kind=r.kind,
                    start=r.start_uid[cut:],
                    end=r.end_uid[cut:],
                    geometry=g,
                    attrs=r.attrs or {},
                    name=r.name,
                )
            else:
                net.nodes[eid] = Node(
                    id=eid, kind=r.kind, geometry=g, attrs=r.attrs or {}, name=r.name
                )
        return {n.name: n for n in nets.values()}

    def _delete_orphans(self, conn: Connection, why: str) -> None:
        """Delete sensors and interdependencies whose assets are gone."""
        gone_s = conn.execute(
            sa.delete(S).where(~sa.exists().where(A.c.uid == S.c.asset_uid))
        ).rowcount
        gone_d = conn.execute(
            sa.delete(D).where(
                sa.or_(
                    ~sa.exists().where(A.c.uid == D.c.dependent_uid),
                    ~sa.exists().where(A.c.uid == D.c.supporting_uid),
                )
            )
        ).rowcount
        if gone_s or gone_d:
            log.warning(
                "%s: deleted %d sensors and %d interdependencies on assets that no longer exist",
                why,
                gone_s,
                gone_d,
            )

    def _missing_assets(self, conn: Connection, uids: Iterable[str]) -> list[str]:
        wanted = sorted(set(uids))
        found: set[str] = set()
        for chunk in _chunks(wanted, _IN_CHUNK):
            found.update(conn.execute(sa.select(A.c.uid).where(A.c.uid.in_(chunk))).scalars())
        return [u for u in wanted if u not in found]

    # -- jurisdictions ----------------------------------------------------------------
    def add_jurisdictions(self, js: Iterable[Jurisdiction]) -> None:
        """Add jurisdictions (one transaction); parents may be stored or in ``js``."""
        items = list(js)
        with self._write() as conn:
            parents = sorted({j.parent for j in items if j.parent is not None})
            levels: dict[str, JurisdictionLevel] = {}
            for chunk in _chunks(parents, _IN_CHUNK):
                for code, level in conn.execute(
                    sa.select(J.c.code, J.c.level).where(J.c.code.in_(chunk))
                ):
                    levels[code] = JurisdictionLevel(level)
            levels.update({j.code: _enum(JurisdictionLevel, j.level, j.code) for j in items})
            self._check_jurisdictions(items, levels)
            self._insert_jurisdictions(conn, items)

    @staticmethod
    def _check_jurisdictions(
        items: list[Jurisdiction], levels: dict[str, JurisdictionLevel]
    ) -> None:
        for j in items:
            level = _enum(JurisdictionLevel, j.level, f"jurisdiction {j.code!r} level")
            if j.parent is None:
                if level != JurisdictionLevel.DISTRICT:
                    raise StoreError(f"jurisdiction {j.code!r}: a {level.value} needs a parent")
                continue
            parent = levels.get(j.parent)
            if parent is None:
                raise NotFoundError(f"jurisdiction {j.code!r}: unknown parent {j.parent!r}")
            if parent.child != level:
                raise StoreError(
                    f"jurisdiction {j.code!r}: a {level.value} cannot sit under a {parent.value}"
                )

    def _insert_jurisdictions(self, conn: Connection, items: list[Jurisdiction]) -> None:
        geoms = [j.geometry for j in items]
        wkb = self._encode(geoms, [f"jurisdiction {j.code!r}" for j in items])
        bounds = self._bounds(geoms)
        rows = [
            {
                "code": j.code,
                "name": j.name,
                "name_zh": j.name_zh,
                "level": _enum(JurisdictionLevel, j.level, j.code).value,
                "parent_code": j.parent,
                "population": int(j.population or 0),
                "geom": wkb[i],
                "attrs": j.attrs or {},
                "minx": bounds[i][0],
                "miny": bounds[i][1],
                "maxx": bounds[i][2],
                "maxy": bounds[i][3],
            }
            for i, j in enumerate(items)
        ]
        self._insert_rows(conn, J, rows)

    def _load_jurisdictions(self, conn: Connection, level: str | None = None) -> list[Jurisdiction]:
        q = sa.select(
            J.c.code,
            J.c.name,
            J.c.name_zh,
            J.c.level,
            J.c.parent_code,
            J.c.population,
            J.c.attrs,
            self._wkb(J.c.geom).label("wkb"),
        ).order_by(J.c.id)
        if level is not None:
            q = q.where(J.c.level == level)
        rows = conn.execute(q).all()
        geoms = decode_geometries([r.wkb for r in rows])
        return [
            Jurisdiction(
                code=r.code,
                name=r.name,
                level=JurisdictionLevel(r.level),
                geometry=g,
                parent=r.parent_code,
                population=int(r.population),
                name_zh=r.name_zh,
                attrs=r.attrs or {},
            )
            for r, g in zip(rows, geoms, strict=True)
        ]

    # -- facilities -------------------------------------------------------------------
    def add_facilities(self, fs: Iterable[Facility]) -> None:
        """Add critical facilities (one transaction; a stored uid raises ConflictError)."""
        items = list(fs)
        with self._write() as conn:
            self._insert_facilities(conn, items)

    def _insert_facilities(self, conn: Connection, items: list[Facility]) -> None:
        geoms = [f.geometry for f in items]
        wkb = self._encode(geoms, [f.uid for f in items])
        bounds = self._bounds(geoms)
        rows = [
            {
                "uid": f.uid,
                "network_id": None,
                "role": "facility",
                "kind": _enum(FacilityKind, f.kind, f"facility {f.id!r} kind").value,
                "name": f.name,
                "name_zh": f.name_zh,
                "population_served": int(f.population_served or 0),
                "start_uid": None,
                "end_uid": None,
                "geom": wkb[i],
                "attrs": f.attrs or {},
                "minx": bounds[i][0],
                "miny": bounds[i][1],
                "maxx": bounds[i][2],
                "maxy": bounds[i][3],
            }
            for i, f in enumerate(items)
        ]
        self._insert_rows(conn, A, rows)

    def _load_facilities(self, conn: Connection) -> list[Facility]:
        rows = conn.execute(
            sa.select(
                A.c.uid,
                A.c.kind,
                A.c.name,
                A.c.name_zh,
                A.c.population_served,
                A.c.attrs,
                self._wkb(A.c.geom).label("wkb"),
            )
            .where(A.c.role == "facility")
            .order_by(A.c.id)
        ).all()
        geoms = decode_geometries([r.wkb for r in rows])
        cut = len("facility:")
        return [
            Facility(
                id=r.uid[cut:],
                kind=FacilityKind(r.kind),
                name=r.name,
                geometry=g,
                population_served=int(r.population_served or 0),
                name_zh=r.name_zh,
                attrs=r.attrs or {},
            )
            for r, g in zip(rows, geoms, strict=True)
        ]

    # -- interdependencies ------------------------------------------------------------
    def add_interdependencies(self, ds: Iterable[Interdependency]) -> None:
        """Add interdependencies between stored assets (one transaction)."""
        items = list(ds)
        with self._write() as conn:
            missing = self._missing_assets(
                conn, [u for d in items for u in (d.dependent, d.supporting)]
            )
            if missing:
                raise NotFoundError(
                    f"interdependencies refer to {len(missing)} unknown assets: "
                    + ", ".join(missing[:5])
                )
            self._insert_interdependencies(conn, items)

    def _insert_interdependencies(self, conn: Connection, items: list[Interdependency]) -> None:
        rows = [
            {
                "dependent_uid": d.dependent,
                "supporting_uid": d.supporting,
                "kind": _enum(DependencyKind, d.kind, f"interdependency {d}").value,
                "distance_m": None if d.distance_m is None else float(d.distance_m),
            }
            for d in items
        ]
        self._insert_rows(conn, D, rows)

    def _load_interdependencies(self, conn: Connection) -> list[Interdependency]:
        rows = conn.execute(
            sa.select(D.c.dependent_uid, D.c.supporting_uid, D.c.kind, D.c.distance_m).order_by(
                D.c.id
            )
        ).all()
        return [
            Interdependency(
                dependent=r.dependent_uid,
                supporting=r.supporting_uid,
                kind=DependencyKind(r.kind),
                distance_m=r.distance_m,
            )
            for r in rows
        ]

    # -- sensors ----------------------------------------------------------------------
    def add_sensors(self, ss: Iterable[Sensor]) -> None:
        """Add sensors on stored assets (one transaction)."""
        items = list(ss)
        with self._write() as conn:
            missing = self._missing_assets(conn, [s.asset for s in items])
            if missing:
                raise NotFoundError(
                    f"sensors are on {len(missing)} unknown assets: " + ", ".join(missing[:5])
                )
            self._insert_sensors(conn, items)

    def _insert_sensors(self, conn: Connection, items: list[Sensor]) -> None:
        wkb = self._encode([s.geometry for s in items], [f"sensor {s.id!r}" for s in items])
        rows = [
            {
                "uid": s.id,
                "asset_uid": s.asset,
                "quantity": s.quantity,
                "unit": s.unit,
                "low": float(s.low),
                "high": float(s.high),
                "geom": wkb[i],
                "attrs": s.attrs or {},
            }
            for i, s in enumerate(items)
        ]
        self._insert_rows(conn, S, rows)

    def _load_sensors(self, conn: Connection) -> list[Sensor]:
        rows = conn.execute(
            sa.select(
                S.c.uid,
                S.c.asset_uid,
                S.c.quantity,
                S.c.unit,
                S.c.low,
                S.c.high,
                S.c.attrs,
                self._wkb(S.c.geom).label("wkb"),
            ).order_by(S.c.id)
        ).all()
        geoms = decode_geometries([r.wkb for r in rows])
        return [
            Sensor(
                id=r.uid,
                asset=r.asset_uid,
                quantity=r.quantity,
                geometry=g,
                unit=r.unit,
                low=r.low,
                high=r.high,
                attrs=r.attrs or {},
            )
            for r, g in zip(rows, geoms, strict=True)
        ]

    # -- summary ----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts with the shape of :meth:`rescity.model.City.summary` (SQL GROUP BY).

        ``city`` is None when only networks (no city) were stored.
        """
        with self._read() as conn:
            name = conn.execute(sa.select(city_table.c.name)).scalar()
            networks: dict[str, dict[str, int]] = {}
            q = (
                sa.select(
                    N.c.type,
                    sa.func.count(sa.distinct(N.c.id)),
                    sa.func.sum(sa.case((A.c.role == "node", 1), else_=0)),
                    sa.func.sum(sa.case((A.c.role == "link", 1), else_=0)),
                )
                .select_from(N.outerjoin(A, A.c.network_id == N.c.id))
                .group_by(N.c.type)
            )
            for t, n_net, n_nodes, n_links in conn.execute(q):
                networks[t] = {
                    "networks": int(n_net),
                    "nodes": int(n_nodes or 0),
                    "links": int(n_links or 0),
                }

            def counts(col: sa.Column[Any], where: Any = None) -> dict[str, int]:
                q = sa.select(col, sa.func.count()).group_by(col)
                if where is not None:
                    q = q.where(where)
                return {k: int(v) for k, v in sorted(conn.execute(q).all())}

            return {
                "city": name,
                "networks": dict(sorted(networks.items())),
                "assets": int(conn.execute(sa.select(sa.func.count()).select_from(A)).scalar_one()),
                "sensors": counts(S.c.quantity),
                "jurisdictions": counts(J.c.level),
                "interdependencies": counts(D.c.kind),
                "facilities": counts(A.c.kind, A.c.role == "facility"),
            }

    # -- spatial queries --------------------------------------------------------------
    def _asset_filters(
        self,
        network_type: NetworkType | str | None,
        role: AssetRole | str | None,
        kinds: Iterable[str | Enum] | str | Enum | None,
    ) -> list[sa.ColumnElement[bool]] | None:
        """SQL conditions for the asset filters; None when nothing can match."""
        conds: list[sa.ColumnElement[bool]] = []
        if network_type is not None:
            t = _enum(NetworkType, network_type, "network_type").value
            conds.append(A.c.network_id.in_(sa.select(N.c.id).where(N.c.type == t)))
        if role is not None:
            conds.append(A.c.role == _enum(AssetRole, role, "role").value)
        if kinds is not None:
            seq = [kinds] if isinstance(kinds, str | Enum) else list(kinds)
            ks = sorted({k.value if isinstance(k, Enum) else str(k) for k in seq})
            if not ks:
                return None
            conds.append(A.c.kind.in_(ks))
        return conds

    def assets_within(
        self,
        polygon: BaseGeometry,
        *,
        network_type: NetworkType | str | None = None,
        role: AssetRole | str | None = None,
        kinds: Iterable[str | Enum] | str | Enum | None = None,
    ) -> list[str]:
        """Uids (sorted) of the assets whose geometry intersects ``polygon`` (WGS84).

        Filters: ``network_type`` (facilities have none, so it excludes them), ``role``
        (``node``/``link``/``facility``) and ``kinds`` (any of; an empty collection
        matches nothing). Intersection is planar in lon/lat on both backends.
        """
        if not isinstance(polygon, BaseGeometry):
            raise TypeError(f"polygon must be a shapely geometry, not {type(polygon).__name__}")
        conds = self._asset_filters(network_type, role, kinds)
        if conds is None or polygon.is_empty:
            return []
        with self._read() as conn:
            if self._backend == "postgresql":
                g = sa.bindparam("area", polygon, type_=GeometryType)
                q = sa.select(A.c.uid).where(sa.func.ST_Intersects(A.c.geom, g), *conds)
                return sorted(conn.execute(q).scalars())
            minx, miny, maxx, maxy = polygon.bounds
            q = sa.select(A.c.uid, self._wkb(A.c.geom)).where(
                A.c.maxx >= minx, A.c.minx <= maxx, A.c.maxy >= miny, A.c.miny <= maxy, *conds
            )
            rows = conn.execute(q).all()
        if not rows:
            return []
        area = shapely.set_srid(polygon, 0)  # a copy we may prepare
        shapely.prepare(area)
        hit = shapely.intersects(decode_geometries([r[1] for r in rows]), area)
        return sorted(r[0] for r, h in zip(rows, hit, strict=True) if h)

    def assets_within_distance(
        self,
        lon: float,
        lat: float,
        distance_m: float,
        *,
        network_type: NetworkType | str | None = None,
        role: AssetRole | str | None = None,
        kinds: Iterable[str | Enum] | str | Enum | None = None,
    ) -> list[tuple[str, float]]:
        """``(uid, distance in metres)`` of every asset within ``distance_m`` metres of
        (lon, lat), nearest first (ties by uid). A point inside a polygon is at 0 m."""
        _check_lonlat(lon, lat)
        if not distance_m >= 0:
            raise ValueError(f"distance_m must be >= 0 metres, got {distance_m}")
        conds = self._asset_filters(network_type, role, kinds)
        if conds is None:
            return []
        with self._read() as conn:
            uids, dist = self._within(conn, lon, lat, float(distance_m), conds)
        return _sorted_pairs(uids, dist)

    def nearest_assets(
        self,
        lon: float,
        lat: float,
        *,
        k: int = 1,
        network_type: NetworkType | str | None = None,
        role: AssetRole | str | None = None,
        kinds: Iterable[str | Enum] | str | Enum | None = None,
        max_distance_m: float | None = None,
    ) -> list[tuple[str, float]]:
        """The ``k`` assets nearest to (lon, lat): ``(uid, distance in metres)``, nearest
        first (ties by uid); only those within ``max_distance_m`` metres if given."""
        _check_lonlat(lon, lat)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if max_distance_m is not None and not max_distance_m >= 0:
            raise ValueError(f"max_distance_m must be >= 0 metres, got {max_distance_m}")
        conds = self._asset_filters(network_type, role, kinds)
        if conds is None:
            return []
        with self._read() as conn:
            if max_distance_m is not None:
                uids, dist = self._within(conn, lon, lat, float(max_distance_m), conds)
                return _sorted_pairs(uids, dist)[:k]
            if self._backend == "postgresql":
                return self._pg_nearest(conn, lon, lat, k, conds)
            return self._sqlite_nearest(conn, lon, lat, k, conds)

    def _within(
        self,
        conn: Connection,
        lon: float,
        lat: float,
        radius_m: float,
        conds: list[sa.ColumnElement[bool]],
    ) -> tuple[list[str], np.ndarray]:
        """Uids and distances (metres) of the assets at most ``radius_m`` away."""
        minx, miny, maxx, maxy = _degree_box(lon, lat, radius_m)
        if self._backend == "postgresql":
            pt = sa.func.ST_SetSRID(sa.func.ST_MakePoint(lon, lat), 4326)
            env = sa.func.ST_MakeEnvelope(minx, miny, maxx, maxy, 4326)
            here = sa.func.geography(pt)
            there = sa.func.geography(A.c.geom)
            d = sa.type_coerce(sa.func.ST_Distance(there, here), sa.Float)
            search = radius_m * (1.0 + 1e-9) + 1e-6  # then cut on ST_Distance below
            q = sa.select(A.c.uid, d).where(
                A.c.geom.op("&&")(env), sa.func.ST_DWithin(there, here, search), *conds
            )
            rows = [(u, x) for u, x in conn.execute(q) if x is not None and x <= radius_m]
            return [r[0] for r in rows], np.array([r[1] for r in rows], dtype=float)
        q = sa.select(A.c.uid, self._wkb(A.c.geom)).where(
            A.c.maxx >= minx, A.c.minx <= maxx, A.c.maxy >= miny, A.c.miny <= maxy, *conds
        )
        srows: list[Any] = list(conn.execute(q).all())
        dist = _utm_distances(lon, lat, decode_geometries([r[1] for r in srows]))
        keep = dist <= radius_m
        return [r[0] for r, kp in zip(srows, keep, strict=True) if kp], dist[keep]

    def _pg_nearest(
        self, conn: Connection, lon: float, lat: float, k: int, conds: list[sa.ColumnElement[bool]]
    ) -> list[tuple[str, float]]:
        # 1. KNN on the GiST index (planar degrees) gives k candidates; the farthest of them
        #    (geodesic) bounds the true k-th distance. 2. Exact search within that bound.
        pt = sa.func.ST_SetSRID(sa.func.ST_MakePoint(lon, lat), 4326)
        d = sa.type_coerce(
            sa.func.ST_Distance(sa.func.geography(A.c.geom), sa.func.geography(pt)), sa.Float
        )
        q = sa.select(d).where(*conds).order_by(A.c.geom.op("<->")(pt)).limit(k)
        bound = [x for x in conn.execute(q).scalars() if x is not None]
        if not bound:
            return []
        uids, dist = self._within(conn, lon, lat, max(bound), conds)
        return _sorted_pairs(uids, dist)[:k]

    def _sqlite_nearest(
        self, conn: Connection, lon: float, lat: float, k: int, conds: list[sa.ColumnElement[bool]]
    ) -> list[tuple[str, float]]:
        # grow a search box until it holds k assets within its inscribed radius
        total = conn.execute(
            sa.select(sa.func.count()).select_from(A).where(A.c.minx.is_not(None), *conds)
        ).scalar_one()
        if total == 0:
            return []
        radius = _FIRST_RADIUS_M
        while True:
            minx, miny, maxx, maxy = _degree_box(lon, lat, radius)
            q = sa.select(A.c.uid, self._wkb(A.c.geom)).where(
                A.c.maxx >= minx, A.c.minx <= maxx, A.c.maxy >= miny, A.c.miny <= maxy, *conds
            )
            rows = conn.execute(q).all()
            dist = _utm_distances(lon, lat, decode_geometries([r[1] for r in rows]))
            uids = [r[0] for r in rows]
            if len(rows) >= total or radius > 4.1e7:  # every candidate is in the box
                return _sorted_pairs(uids, dist)[:k]
            inside = dist <= radius
            if int(inside.sum()) >= k:
                sel = np.flatnonzero(inside)
                return _sorted_pairs([uids[i] for i in sel], dist[sel])[:k]
            radius *= 4.0

    def jurisdiction_at(self, lon: float, lat: float, level: JurisdictionLevel | str) -> str | None:
        """Code of the jurisdiction of ``level`` that contains (lon, lat), or None.

        On a shared boundary the smallest code wins.
        """
        _check_lonlat(lon, lat)
        lv = _enum(JurisdictionLevel, level, "level").value
        with self._read() as conn:
            if self._backend == "postgresql":
                pt = sa.func.ST_SetSRID(sa.func.ST_MakePoint(lon, lat), 4326)
                q = sa.select(J.c.code).where(J.c.level == lv, sa.func.ST_Intersects(J.c.geom, pt))
                codes = sorted(conn.execute(q).scalars())
                return codes[0] if codes else None
            q = sa.select(J.c.code, self._wkb(J.c.geom)).where(
                J.c.level == lv, J.c.minx <= lon, J.c.maxx >= lon, J.c.miny <= lat, J.c.maxy >= lat
            )
            rows = conn.execute(q).all()
        if not rows:
            return None
        hit = shapely.intersects(decode_geometries([r[1] for r in rows]), Point(lon, lat))
        codes = sorted(r[0] for r, h in zip(rows, hit, strict=True) if h)
        return codes[0] if codes else None
