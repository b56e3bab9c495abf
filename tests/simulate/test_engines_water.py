"""Water engine (WNTR, pressure-driven demand) on the demo city's L-Town: no damage
serves every customer, a break on a main loses customers until its repair, closing the
pipe isolates the break, a pump outage and a closed source are applied."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rescity.demo.city import build_demo_city
from rescity.simulate.engines.conditions import (
    Break,
    Closure,
    Leak,
    Outage,
    UnknownElementError,
)
from rescity.simulate.engines.water import run_water, water_model

H = 3600.0
#: a 225 mm trunk main of L-Town
MAIN = "water:p760"


@pytest.fixture(scope="module")
def water():
    return build_demo_city().networks["water"]


@pytest.fixture(scope="module")
def intact(water):
    return run_water(water, [], 12 * H, H)


@pytest.fixture(scope="module")
def broken(water):
    return run_water(water, [Break(MAIN, start_s=H, end_s=6 * H)], 12 * H, H)


def test_water_model_is_the_twin(water):
    wn = water_model(water)
    assert len(wn.junction_name_list) == 782 and len(wn.pipe_name_list) == 905
    assert wn.get_link("p760").diameter == pytest.approx(water.links["p760"].attrs["diameter_m"])


def test_no_damage_serves_every_customer(intact, water):
    customers = [n for n in water.nodes.values() if (n.attrs.get("base_demand_m3s") or 0) > 0]
    assert intact.service.shape == (13, len(customers))
    assert intact.service_level().min() == pytest.approx(1.0, abs=1e-6)
    assert intact.service.to_numpy().min() > 0.999
    assert intact.customers_without_water().max() == 0
    # served demand equals the expected demand (m3/s)
    assert intact.served_total_m3s().to_numpy() == pytest.approx(
        intact.expected_m3s.sum(axis=1).to_numpy(), rel=1e-6)


def test_break_on_a_main_loses_customers_until_repaired(broken, intact):
    lost = broken.customers_without_water()
    assert lost.loc[0.0] == 0
    assert lost.loc[H:5 * H].min() > 0
    assert lost.loc[6 * H:].max() == 0  # repaired at 6 h
    q = broken.service_level()
    assert q.loc[2 * H] < 0.99 and q.loc[7 * H] == pytest.approx(intact.service_level().loc[7 * H], abs=1e-4)
    leak = broken.leak_m3s[MAIN]
    assert leak.loc[0.0] == 0 and leak.loc[2 * H] > 0.05 and leak.loc[6 * H:].max() == pytest.approx(0, abs=1e-9)


def test_closing_the_broken_pipe_isolates_the_break(water, broken):
    isolated = run_water(water, [Break(MAIN, start_s=H, end_s=6 * H), Closure(MAIN, start_s=H, end_s=6 * H)],
                         12 * H, H)
    assert isolated.leak_m3s[MAIN].abs().max() < 1e-6
    at = 3 * H
    assert isolated.customers_without_water().loc[at] < broken.customers_without_water().loc[at]
    assert isolated.service_level().loc[at] > broken.service_level().loc[at]


def test_leak_area_sets_the_outflow(water):
    small = run_water(water, [Leak(MAIN, area_m2=1e-3, start_s=H)], 3 * H, H)
    big = run_water(water, [Leak(MAIN, area_m2=4e-3, start_s=H)], 3 * H, H)
    q_small, q_big = small.leak_m3s[MAIN].loc[2 * H], big.leak_m3s[MAIN].loc[2 * H]
    p = small.pressure_m.loc[2 * H].median()
    assert q_small == pytest.approx(0.75 * 1e-3 * math.sqrt(2 * 9.81 * p), rel=0.3)
    assert 2.5 < q_big / q_small < 4.0  # q ~ A sqrt(h), with h falling a little


def test_pump_outage_and_closed_source(water, intact):
    r = run_water(water, [Outage("water:PUMP_1", 0.0), Outage("water:R1", 0.0),
                          Outage("water:R2", 0.0)], 12 * H, H)
    # with both reservoirs off and the pump dark, only the tank is left: service falls
    assert r.service_level().iloc[-1] < intact.service_level().iloc[-1] - 0.2


def test_epanet_simulator_agrees_with_wntr_on_a_break(water, broken):
    fast = run_water(water, [Break(MAIN, start_s=H, end_s=6 * H)], 12 * H, H, simulator="epanet")
    assert fast.customers_without_water().tolist() == broken.customers_without_water().tolist()
    assert fast.service_level().to_numpy() == pytest.approx(broken.service_level().to_numpy(), abs=5e-3)
    assert fast.leak_m3s[MAIN].to_numpy() == pytest.approx(broken.leak_m3s[MAIN].to_numpy(), rel=0.01, abs=1e-6)
    assert np.abs(fast.pressure_m.to_numpy() - broken.pressure_m.to_numpy()).max() < 0.1


def test_pdd_law():
    from rescity.simulate.engines.water import pdd_fraction

    got = pdd_fraction(np.array([-1.0, 0.0, 5.0, 20.0, 50.0]), 0.0, 20.0)
    assert got.tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_conditions_on_other_networks_are_ignored_and_unknown_elements_refused(water):
    r = run_water(water, [Outage("power:bus_1", 0.0)], 2 * H, H)
    assert r.customers_without_water().max() == 0
    with pytest.raises(UnknownElementError, match="no element 'nope'"):
        run_water(water, [Closure("water:nope")], 2 * H, H)
    with pytest.raises(UnknownElementError, match="Junction"):
        run_water(water, [Outage("water:n1")], 2 * H, H)
    with pytest.raises(ValueError, match="multiple of the step"):
        run_water(water, [], 2.5 * H, H)
    with pytest.raises(ValueError, match="end_s must be after"):
        Closure(MAIN, start_s=H, end_s=H)
    assert np.isfinite(r.pressure_m.to_numpy()).all()
