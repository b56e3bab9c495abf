"""Shared fixtures for the EPANET and SWMM importer tests: real models from installed
packages, and helpers that run them with the engines."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

WNTR_NETWORKS = Path(__import__("wntr").__file__).parent / "library" / "networks"
EPYT_NETWORKS = Path(__import__("epyt").__file__).parent / "networks"
SWMMIO_DATA = Path(__import__("swmmio").__file__).parent / "tests" / "data"


@pytest.fixture(scope="session")
def net1_inp() -> Path:
    return WNTR_NETWORKS / "Net1.inp"


@pytest.fixture(scope="session")
def net3_inp() -> Path:
    return WNTR_NETWORKS / "Net3.inp"


@pytest.fixture(scope="session")
def ltown_inp() -> Path:
    return EPYT_NETWORKS / "L-TOWN.inp"


@pytest.fixture(scope="session")
def example1b_inp() -> Path:
    return SWMMIO_DATA / "Example1b.inp"


@pytest.fixture(scope="session")
def full_features_inp() -> Path:
    return SWMMIO_DATA / "model_full_features.inp"


def epanet_pressures(inp: Path, prefix: Path) -> pd.DataFrame:
    """Node pressures (m) over time of an EPANET file, run with WNTR's EpanetSimulator."""
    import wntr

    wn = wntr.network.WaterNetworkModel(str(inp))
    results = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=str(prefix))
    return results.node["pressure"]


def max_pressure_difference(a: pd.DataFrame, b: pd.DataFrame) -> float:
    """Largest absolute difference over all nodes and times (same shape required)."""
    assert list(a.columns) == list(b.columns) or set(a.columns) == set(b.columns)
    assert a.shape == b.shape
    return float(np.max(np.abs(a.to_numpy() - b[a.columns].to_numpy())))


_NUMBER_ROW = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*\.+\s+(-?[\d.]+)")


def run_swmm(inp: Path, workdir: Path) -> dict[str, dict[str, str]]:
    """Run a SWMM model with pyswmm in a copy inside ``workdir`` (pyswmm writes the
    report beside the input) and return the continuity tables of the report as text,
    e.g. ``{"runoff": {"Total Precipitation": "15.679", ...}, "routing": {...}}``."""
    from pyswmm import Simulation

    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / inp.name
    shutil.copyfile(inp, copy)
    with Simulation(str(copy)) as sim:
        for _ in sim:
            pass
    return continuity(copy.with_suffix(".rpt").read_text())


def continuity(report: str) -> dict[str, dict[str, str]]:
    """The first column of the runoff and flow routing continuity tables of a report."""
    tables = {"runoff": "Runoff Quantity Continuity", "routing": "Flow Routing Continuity"}
    out: dict[str, dict[str, str]] = {}
    lines = report.splitlines()
    for key, title in tables.items():
        start = next(i for i, ln in enumerate(lines) if title in ln)
        rows: dict[str, str] = {}
        for ln in lines[start + 2:]:
            if not ln.strip():
                break
            m = _NUMBER_ROW.match(ln)
            if m:
                rows[m.group(1).strip()] = m.group(2)
        out[key] = rows
    return out


@pytest.fixture(scope="session")
def swmm_run():
    """:func:`run_swmm` as a fixture (test modules do not import conftest)."""
    return run_swmm


@pytest.fixture(scope="session")
def pressures():
    """``(inp, prefix) -> DataFrame`` of EPANET node pressures, and the comparison."""
    return epanet_pressures, max_pressure_difference


def file_link(net, file_id: str):
    """The twin link whose id in the source file is ``file_id`` (twin ids may be
    ``link:<id>`` where the file reuses a node id for a link)."""
    return next(lk for lk in net.links.values() if lk.file_id == file_id)
