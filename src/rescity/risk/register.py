"""Reading the risk register from CSV or GeoJSON, row by row: a bad row is reported with
its line (CSV) or feature number (GeoJSON) and field, and every good row is kept.

CSV columns: ``id, name, hazard, likelihood, consequence`` (required), the place as
``lon, lat`` or ``wkt`` (WGS84), and optionally ``name_zh, owner, controls, assets``
(asset uids separated by ``;``). GeoJSON: one feature per risk point, the same names as
properties, the geometry as the place.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from rescity.model.risk import RiskPoint

from .policy import RiskPolicy

REQUIRED = ("id", "name", "hazard", "likelihood", "consequence")


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row: where (``line`` of the CSV, 1 = header, or feature number), the field
    and what is wrong."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}: {self.message}"


def _int15(v: Any, name: str) -> int:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer 1..5, found {v!r}") from None
    if f != int(f) or not 1 <= f <= 5:
        raise ValueError(f"{name} must be an integer 1..5, found {v!r}")
    return int(f)


def _geom(row: dict[str, Any]) -> BaseGeometry:
    if row.get("wkt"):
        try:
            g = shapely.from_wkt(str(row["wkt"]))
        except Exception:  # shapely raises its own GEOSException
            raise ValueError(f"not valid WKT: {str(row['wkt'])[:60]!r}") from None
    else:
        try:
            lon, lat = float(row.get("lon", "")), float(row.get("lat", ""))
        except (TypeError, ValueError):
            raise ValueError("give lon and lat (numbers) or wkt") from None
        g = Point(lon, lat)
    minx, miny, maxx, maxy = g.bounds
    if g.is_empty or not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise ValueError("the place is empty or outside lon -180..180, lat -90..90")
    return g


def _point(row: dict[str, Any], policy: RiskPolicy) -> tuple[RiskPoint | None, tuple[str, str] | None]:
    for k in REQUIRED:
        if row.get(k) in (None, ""):
            return None, (k, "required")
    try:
        L = _int15(row["likelihood"], "likelihood")
    except ValueError as e:
        return None, ("likelihood", str(e))
    try:
        C = _int15(row["consequence"], "consequence")
    except ValueError as e:
        return None, ("consequence", str(e))
    try:
        g = _geom(row)
    except ValueError as e:
        return None, ("wkt" if row.get("wkt") else "lon/lat", str(e))
    assets = row.get("assets") or []
    if isinstance(assets, str):
        assets = [a.strip() for a in assets.split(";") if a.strip()]
    return RiskPoint(id=str(row["id"]).strip(), name=str(row["name"]), hazard=str(row["hazard"]).strip(),
                     geometry=g, likelihood=L, consequence=C, level=policy.grade(L, C),
                     owner=str(row.get("owner") or ""), controls=str(row.get("controls") or ""),
                     assets=list(assets), name_zh=row.get("name_zh") or None), None


def read_register(path: str | Path, policy: RiskPolicy) -> tuple[list[RiskPoint], list[RowError]]:
    """The good risk points of a CSV or GeoJSON file and the errors of the bad rows
    (duplicate ids: the first is kept, the others reported)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    rows: list[tuple[int, dict[str, Any]]] = []
    errors: list[RowError] = []
    if p.suffix.lower() in (".geojson", ".json"):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ValueError(f"{p}: not valid JSON: {e}") from None
        feats = doc.get("features") if isinstance(doc, dict) else None
        if not isinstance(feats, list):
            raise ValueError(f"{p}: expected a GeoJSON FeatureCollection")
        for i, f in enumerate(feats, start=1):
            props = dict((f or {}).get("properties") or {})
            try:
                g = shape(f["geometry"])
                props["wkt"] = g.wkt
            except Exception:
                errors.append(RowError(str(p), i, "geometry", "missing or not a valid GeoJSON geometry"))
                continue
            rows.append((i, props))
    else:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{p}:1: missing column(s) {', '.join(missing)}")
            for row in reader:
                rows.append((reader.line_num, row))
    out: list[RiskPoint] = []
    seen: set[str] = set()
    for line, row in rows:
        pt, err = _point(row, policy)
        if err is not None:
            errors.append(RowError(str(p), line, err[0], err[1]))
            continue
        assert pt is not None
        if pt.id in seen:
            errors.append(RowError(str(p), line, "id", f"duplicate id {pt.id!r} (the first is kept)"))
            continue
        seen.add(pt.id)
        pt.attrs["line"] = line
        out.append(pt)
    return out, errors
