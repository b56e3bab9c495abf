"""Power engine (pandapower): case9 reproduces the reference power flow through the engine;
on the demo city's mv_oberrhein an HV/MV substation outage de-energises its feeders'
loads (islanding) until it is restored."""

from __future__ import annotations

import pandapower.networks as pn
import pytest

from rescity.demo.city import build_demo_city
from rescity.io.power import read_pandapower
from rescity.model import Placement
from rescity.simulate.engines.conditions import Leak, Outage, UnknownElementError
from rescity.simulate.engines.power import PowerModel, run_power

H = 3600.0


@pytest.fixture(scope="module")
def power():
    return build_demo_city().networks["power"]


@pytest.fixture(scope="module")
def model(power):
    return PowerModel(power)


def test_case9_reference_power_flow():
    twin = read_pandapower(pn.case9(), placement=Placement(anchor=(24.94, 60.17), unit_m=1000.0),
                           name="case9")
    r = run_power(twin, [], H, H)
    assert round(r.slack_p_mw.iloc[0], 4) == 71.9547
    assert round(r.losses_p_mw.iloc[0], 4) == 4.9547
    assert r.service_level().tolist() == [1.0, 1.0]


def test_intact_grid_serves_every_load(power, model):
    r = run_power(power, [], 6 * H, H, model=model)
    assert r.energised.to_numpy().all() and r.converged.all()
    assert r.load_lost_mw.max() == 0 and r.service_level().min() == 1.0
    # losses are small and positive; the slack covers load plus losses (sgen included)
    assert 0 < r.losses_p_mw.iloc[0] < 0.1 * r.weights.sum()


def test_substation_outage_islands_its_feeders_until_restored(power, model):
    sub = next(n.id for n in power.nodes.values() if n.kind == "substation")
    r = run_power(power, [Outage(f"power:{sub}", start_s=2 * H, end_s=4 * H)], 6 * H, H, model=model)
    lost = r.load_lost_mw
    assert lost.loc[H] == 0 and lost.loc[4 * H] == 0
    assert lost.loc[2 * H] > 1.0 and lost.loc[3 * H] == lost.loc[2 * H]
    dark = r.de_energised(2 * H)
    assert f"power:{sub}" in dark and len(dark) > 10
    # MW lost is the load at the dark buses, and the service level its complement
    served = r.service.loc[2 * H]
    assert lost.loc[2 * H] == pytest.approx(float(r.weights[served == 0].sum()))
    assert r.service_level().loc[2 * H] == pytest.approx(1 - lost.loc[2 * H] / r.weights.sum())


def test_line_outage_on_a_radial_feeder(power, model):
    line = next(lk for lk in power.links.values() if lk.kind == "line")
    r = run_power(power, [Outage(f"power:{line.id}")], H, H, model=model)
    assert r.converged.all()
    assert r.load_lost_mw.iloc[0] >= 0


def test_bad_conditions_are_refused(power, model):
    with pytest.raises(UnknownElementError, match="no element 'bus_9999'"):
        run_power(power, [Outage("power:bus_9999")], H, H, model=model)
    with pytest.raises(UnknownElementError, match="do not leak"):
        run_power(power, [Leak("power:line_0", area_m2=1.0)], H, H, model=model)
