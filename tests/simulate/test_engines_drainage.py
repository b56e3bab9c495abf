"""Drainage engine (pyswmm): EPA Example1b reproduces the reference continuity through the
engine; a replaced rainfall reaches every subcatchment; the demo city's beta network
floods under a storm, node by node, with depths, surcharge and flooded volumes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import swmmio

from rescity.demo.city import build_demo_city
from rescity.io.swmm import read_swmm
from rescity.model import Placement
from rescity.simulate.engines.conditions import Closure, Leak, UnknownElementError
from rescity.simulate.engines.drainage import run_drainage

H = 3600.0
ACRE_FT_M3 = 1233.48183754752
EXAMPLE1B = Path(swmmio.__file__).parent / "tests" / "data" / "Example1b.inp"
#: DATA.md reference of Example1b run with pyswmm (acre-feet)
REFERENCE = {
    ("runoff", "Total Precipitation"): 15.679,
    ("runoff", "Infiltration Loss"): 9.346,
    ("runoff", "Surface Runoff"): 6.295,
    ("routing", "External Outflow"): 5.874,
    ("routing", "Flooding Loss"): 0.415,
}


@pytest.fixture(scope="module")
def example():
    return read_swmm(EXAMPLE1B, placement=Placement(anchor=(24.944, 60.1716), unit_m=0.3048))


@pytest.fixture(scope="module")
def beta():
    return build_demo_city().networks["drainage"]


@pytest.fixture(scope="module")
def storm(beta):
    """One hour at 60 mm/h on beta, followed for another hour (5-minute reports)."""
    return run_drainage(beta, rainfall_mm_h=[60.0] * 12, rain_step_s=300.0,
                        horizon_s=2 * H, step_s=300.0)


def test_example1b_reproduces_the_reference_continuity(example):
    r = run_drainage(example)
    got = {(t, k): r.continuity[t][k] for t, k in REFERENCE}
    assert got == REFERENCE
    assert r.units == "CFS" and r.times_s[-1] == 36 * H  # the model's own 36 h
    # the nodes' flooded volumes add up to the routing table's flooding loss
    assert round(r.total_flood_m3 / ACRE_FT_M3, 3) == 0.415
    assert r.flooded_nodes() == ["Example1b:10"]
    flooding = r.flood_volume_m3["Example1b:10"]
    assert (np.diff(flooding.to_numpy()) >= -1e-9).all()  # cumulative
    assert r.service_level().min() == pytest.approx(13 / 14)  # one node of 14 floods


def test_replaced_rainfall_falls_on_every_subcatchment(example):
    depth_mm = 30.0
    r = run_drainage(example, rainfall_mm_h=[depth_mm / 2] * 24, rain_step_s=300.0,
                     horizon_s=12 * H, step_s=H)  # 2 h at 15 mm/h
    area_m2 = sum(n.attrs["area_m2"] for n in example.nodes.values() if n.kind == "subcatchment")
    expected = area_m2 * depth_mm / 1000 / ACRE_FT_M3
    assert r.continuity["runoff"]["Total Precipitation"] == pytest.approx(expected, abs=1.5e-3)
    heavier = run_drainage(example, rainfall_mm_h=[depth_mm * 2] * 24, rain_step_s=300.0,
                           horizon_s=12 * H, step_s=H)
    assert heavier.total_flood_m3 > r.total_flood_m3
    assert heavier.max_depth_m.sum() > r.max_depth_m.sum()


def test_storm_floods_beta_node_by_node(storm, beta):
    assert len(storm.times_s) == 25
    assert storm.continuity["runoff"]["Total Precipitation"] > 0
    flooded = storm.flooded_nodes()
    assert flooded and all(u.startswith("drainage:") for u in flooded)
    final = storm.flood_volume_m3.iloc[-1]
    assert storm.total_flood_m3 == pytest.approx(float(final.sum()))
    assert storm.total_flood_m3 == pytest.approx(
        storm.continuity["routing"]["Flooding Loss"] * ACRE_FT_M3, rel=0.01, abs=1.0)
    # a flooding node is out of service, and floods while its depth is at its maximum
    q = storm.service_level()
    assert q.loc[0.0] == 1.0 and q.min() < 1.0
    worst = final.idxmax()
    node = beta.nodes[worst.split(":", 1)[1]]
    assert storm.max_depth_m[worst] == pytest.approx(node.attrs["max_depth_m"], rel=0.02)
    assert storm.flooding_hours[worst] > 0 and storm.surcharge_hours.max() >= 0
    assert (storm.depth_m.to_numpy() >= -1e-9).all()


def test_closed_storage_outlet_stops_its_flow_until_reopened(beta, storm):
    shut = run_drainage(beta, [Closure("drainage:R1", start_s=0.0, end_s=1.5 * H)],
                        rainfall_mm_h=[60.0] * 12, rain_step_s=300.0, horizon_s=2 * H, step_s=300.0)
    flow, free = shut.link_flow_m3s["drainage:R1"], storm.link_flow_m3s["drainage:R1"]
    assert free.abs().loc[0.5 * H:1.5 * H].max() > 1e-3
    assert flow.abs().loc[300.0:1.5 * H - 1].max() < 1e-6  # shut
    assert flow.abs().loc[1.5 * H + 300:].max() > 1e-3  # reopened at 1.5 h
    assert not np.allclose(shut.depth_m["drainage:ST1"], storm.depth_m["drainage:ST1"])


def test_bad_conditions_are_refused(example):
    with pytest.raises(UnknownElementError, match="found a conduit"):
        run_drainage(example, [Closure("Example1b:link:1")])
    with pytest.raises(UnknownElementError, match="no element"):
        run_drainage(example, [Closure("Example1b:nope")])
    with pytest.raises(UnknownElementError, match="Leak"):
        run_drainage(example, [Leak("Example1b:10", area_m2=1.0)])
    with pytest.raises(ValueError, match="intensities >= 0"):
        run_drainage(example, rainfall_mm_h=[-1.0])
