"""Averaging L-Town's 5-minute demand patterns to the 1 h report step keeps every hour's
demand volume and changes the service of a burst only slightly."""

from __future__ import annotations

import numpy as np
import pytest

from rescity.demo.city import build_demo_city
from rescity.simulate.engines.conditions import Break
from rescity.simulate.engines.water import coarsen_demand_patterns, run_water, water_model


@pytest.fixture(scope="module")
def water():
    return build_demo_city().networks["water"]


def test_hourly_means_keep_the_volume(water):
    wn = water_model(water)
    before = {p: np.asarray(wn.get_pattern(p).multipliers, float) for p in wn.pattern_name_list}
    assert coarsen_demand_patterns(wn, 3600.0)
    assert wn.options.time.pattern_timestep == 3600
    for p, m in before.items():
        after = np.asarray(wn.get_pattern(p).multipliers, float)
        if len(m) > 1:
            assert len(after) == len(m) // 12
            assert after.sum() * 12 == pytest.approx(m.sum())
            assert after[0] == pytest.approx(m[:12].mean())
    assert not coarsen_demand_patterns(wn, 3600.0 * 1.5)  # not a whole multiple: unchanged


def test_a_burst_serves_about_the_same(water):
    burst = [Break("water:p346", 3600.0, 8 * 3600.0)]
    fine = run_water(water, burst, 12 * 3600.0, 3600.0, simulator="epanet")
    coarse = run_water(water, burst, 12 * 3600.0, 3600.0, simulator="epanet", coarsen_patterns=True)
    a, b = fine.service_level().to_numpy(), coarse.service_level().to_numpy()
    assert np.abs(a - b).max() < 0.02
    assert coarse.customers_without_water().max() > 0
