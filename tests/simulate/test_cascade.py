"""A rainstorm on the demo city through the interdependent networks: the drainage network
floods, flooded streets close, flooded substations go dark, the pumps and works they feed
stop, and water customers lose service — each hop checked."""

from __future__ import annotations

import numpy as np
import pytest

from rescity.demo.city import build_demo_city
from rescity.model import DependencyKind
from rescity.simulate.cascade import Cascade, CascadeParams
from rescity.simulate.engines.conditions import Outage
from rescity.simulate.hazards.rainstorm import Rainstorm

pytestmark = pytest.mark.xdist_group("simulate-cascade")


@pytest.fixture(scope="module")
def run():
    city = build_demo_city()
    storm = Rainstorm(method="chicago", return_period_years=100, duration_min=120, step_min=5).hyetograph()
    c = Cascade(city, CascadeParams())
    res = c.run([], horizon_s=6 * 3600, step_s=600, rainfall_mm_h=storm.intensity_mm_h, rain_step_s=300)
    return city, c, res


def test_hop_1_the_storm_floods_drainage_nodes(run):
    _, _, res = run
    assert res.drainage.total_flood_m3 > 1000
    flooded = res.flooded.any(axis=0)
    assert flooded.sum() >= 10
    first = [e for e in res.events if e.what == "flooded" and e.cause == "rain"]
    assert first and min(e.t_s for e in first) > 0  # not before the rain


def test_hop_2_flooded_streets_close_and_reopen(run):
    _, c, res = run
    closed = res.roads_closed.any(axis=0)
    assert closed.sum() > 0
    # every closed segment is within the road radius of a node that flooded then
    uid = closed.index[closed.to_numpy()][0]
    t = res.roads_closed.index[res.roads_closed[uid].to_numpy()][0]
    seg = c._road_tree.geometries[c._road_ids.index(uid)]
    near = [n for n in res.flooded.columns if res.flooded.loc[t, n]
            and seg.distance(c._node_xy[str(n)]) <= c.params.road_radius_m + 1e-6]
    assert near
    assert any(e.what == "reopened" for e in res.events)  # the water recedes


def test_hop_3_flooded_substations_go_dark(run):
    _, c, res = run
    failed = [e for e in res.events if e.what == "failed" and "flooded" in e.cause]
    assert failed
    bus = failed[0].uid
    t = failed[0].t_s
    assert not bool(res.power.energised.loc[t:, bus].any())  # out until the end of the run
    assert res.power.load_lost_mw.max() > 1.0
    assert res.power.load_lost_mw.iloc[0] == 0.0  # nothing lost before the storm


def test_hop_4_the_pumps_they_feed_stop_and_water_customers_lose_service(run):
    city, c, res = run
    dark_water = [e for e in res.events if e.what == "de_energised" and e.uid.startswith("water:")]
    assert dark_water
    fed = {d.dependent: d.supporting for d in city.interdependencies if d.kind == DependencyKind.POWER_SUPPLY}
    for e in dark_water:
        assert e.uid in fed and fed[e.uid] in e.cause
    assert any(isinstance(x, Outage) and x.uid.startswith("water:") for x in res.conditions)
    q = res.water.service_level()
    assert q.iloc[0] == pytest.approx(1.0, abs=1e-3)
    assert q.min() < 0.99 and res.water.customers_without_water().max() > 0
    assert res.iterations <= 6


def test_without_rain_nothing_happens():
    city = build_demo_city()
    res = Cascade(city).run([], horizon_s=3 * 3600, step_s=1800, engines=("power",))
    assert [e for e in res.events if e.what != "failed"] == [] and res.power.load_lost_mw.max() == 0.0
    assert np.isfinite(res.power.slack_p_mw.to_numpy()).all()
