"""Use cases of the lifeline twin: build the demo city, import, export, summarise.

The CLI and the API are thin layers over these functions; this is the only place that
combines the model, the formats and the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rescity.io.errors import FormatError
from rescity.model import City, Network, NetworkType, Placement

Progress = Callable[[str], None]

IMPORT_KINDS = ("water", "drainage", "power", "roads", "geo")


def build_demo(store: Any, progress: Progress | None = None) -> City:
    """Build the demo city and save it into ``store`` (replacing what was there)."""
    from rescity.demo.city import build_demo_city

    step = progress or (lambda _m: None)
    city = build_demo_city(step)
    step("saving to the store")
    store.save_city(city)
    return city


def make_placement(
    crs: str | None = None,
    anchor: tuple[float, float] | None = None,
    *,
    origin: tuple[float, float] = (0.0, 0.0),
    unit_m: float = 1.0,
    scale: float = 1.0,
    rotation_deg: float = 0.0,
) -> Placement | None:
    """A :class:`Placement` from the CLI's ``--crs``/``--anchor`` options, or None."""
    if crs is None and anchor is None:
        return None
    return Placement(source_crs=crs, anchor=anchor, origin=origin, unit_m=unit_m, scale=scale,
                     rotation_deg=rotation_deg)


def read_network_file(kind: str, path: Path, *, name: str | None = None,
                      placement: Placement | None = None,
                      network_type: NetworkType | None = None) -> list[Network]:
    """Read one file of an importable ``kind`` into networks (roads may bring bridges)."""
    if not path.exists():
        raise FormatError(path, "file not found")
    if kind == "water":
        from rescity.io.epanet import read_epanet

        return [read_epanet(path, name=name, placement=placement)]
    if kind == "drainage":
        from rescity.io.swmm import read_swmm

        return [read_swmm(path, name=name, placement=placement)]
    if kind == "power":
        from rescity.io.power import read_pandapower

        return [read_pandapower(path, name=name, placement=placement)]
    if kind == "roads":
        from rescity.io.osm import read_osm_roads

        roads, bridges = read_osm_roads(path, name=name or "roads")
        return [roads] + ([bridges] if bridges is not None else [])
    if kind == "geo":
        from rescity.io.geo import read_geojson_network, read_gpkg_network

        crs = placement.source_crs if placement is not None else None
        reader = read_gpkg_network if path.suffix.lower() == ".gpkg" else read_geojson_network
        return [reader(path, name=name, network_type=network_type, crs=crs)]
    raise ValueError(f"unknown import kind {kind!r}; expected one of {', '.join(IMPORT_KINDS)}")


def import_networks(store: Any, kind: str, path: Path, *, name: str | None = None,
                    placement: Placement | None = None, replace: bool = False,
                    network_type: NetworkType | None = None) -> list[Network]:
    """Read a file and add its network(s) to the store in one transaction.

    A bad file raises :class:`FormatError` before anything is written; a failure while
    writing rolls back, so the store is exactly as it was.
    """
    nets = read_network_file(kind, path, name=name, placement=placement, network_type=network_type)
    with store.transaction():
        for net in nets:
            store.add_network(net, replace=replace)
    return nets


def import_jurisdictions(store: Any, path: Path, *, crs: str | None = None) -> int:
    """Read districts, streets and grid cells from GeoJSON/GeoPackage into the store."""
    from rescity.io.geo import read_jurisdictions

    js = read_jurisdictions(path, crs=crs)
    store.add_jurisdictions(js)
    return len(js)


def export_network(store: Any, name: str, path: Path) -> Path:
    """Write a stored network to ``path``; the format follows the suffix and the type.

    ``.inp``: EPANET for water, SWMM for drainage; ``.json``: pandapower for power;
    ``.geojson``/``.json`` and ``.gpkg``: any network.
    """
    net = store.get_network(name)
    suffix = path.suffix.lower()
    if suffix == ".inp" and net.type == NetworkType.WATER:
        from rescity.io.epanet import write_epanet

        write_epanet(net, path)
    elif suffix == ".inp" and net.type == NetworkType.DRAINAGE:
        from rescity.io.swmm import write_swmm

        write_swmm(net, path)
    elif suffix == ".json" and net.type == NetworkType.POWER:
        from rescity.io.power import write_pandapower

        write_pandapower(net, path)
    elif suffix in (".geojson", ".json"):
        from rescity.io.geo import write_geojson_network

        write_geojson_network(net, path)
    elif suffix == ".gpkg":
        from rescity.io.geo import write_gpkg_network

        write_gpkg_network(net, path)
    else:
        raise ValueError(
            f"cannot export a {net.type.value} network to {suffix or 'a file without suffix'}: "
            "use .geojson or .gpkg (any network), .inp (water, drainage) or .json (power)"
        )
    return path


def info(store: Any) -> dict[str, Any]:
    """Counts per network type, sensors by quantity, jurisdictions by level,
    interdependencies by kind and facilities by kind (``rescity info --json``)."""
    return store.info()
