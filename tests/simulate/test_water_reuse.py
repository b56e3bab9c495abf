"""One WNTR model shared by the EPANET runs of an ensemble: every run puts it back exactly
(``run_water(restore=True)``), so its results equal those of a fresh model per run."""

from __future__ import annotations

import numpy as np
import pytest
import wntr

from rescity.demo.city import build_demo_city
from rescity.simulate.engines.conditions import Break, Closure, Leak, Outage
from rescity.simulate.engines.water import run_water, water_model

pytestmark = pytest.mark.xdist_group("simulate-water-reuse")

RUNS = [
    [Break("water:p346", 0.0, 10 * 3600.0), Leak("water:p100", 2e-4, 3600.0, None)],
    [Outage("water:PUMP_1", 0.0, 6 * 3600.0), Closure("water:p200", 0.0, None)],
    [Break("water:p346", 3600.0, None), Closure("water:p346", 7200.0, 9000.0), Outage("water:R1", 0.0, None)],
    [Leak("water:p500", 1e-3, 0.0, 5 * 3600.0), Break("water:p501", 2 * 3600.0, 8 * 3600.0)],
    [],
]


@pytest.fixture(scope="module")
def water():
    return build_demo_city().networks["water"]


def _same(a, b):
    for f in ("service", "pressure_m", "leak_m3s", "demand_m3s"):
        x, y = getattr(a, f), getattr(b, f)
        assert list(x.columns) == list(y.columns), f
        assert np.allclose(x.to_numpy(float), y.to_numpy(float), equal_nan=True), f


def test_a_shared_model_gives_the_results_of_fresh_ones_and_comes_back_intact(water):
    fresh_dict = wntr.network.to_dict(water_model(water))
    shared = wntr.network.from_dict(fresh_dict)
    run_water(water, [], 12 * 3600.0, 3600.0, model=shared, simulator="epanet", coarsen_patterns=True,
              restore=True)  # the first run coarsens the shared model's patterns, for good
    coarse = wntr.network.to_dict(shared)
    for conds in RUNS + RUNS[::-1]:
        got = run_water(water, conds, 12 * 3600.0, 3600.0, model=shared, simulator="epanet",
                        coarsen_patterns=True, restore=True)
        want = run_water(water, conds, 12 * 3600.0, 3600.0, model=wntr.network.from_dict(fresh_dict),
                         simulator="epanet", coarsen_patterns=True)
        _same(got, want)
        assert wntr.network.to_dict(shared) == coarse  # every node, link, control and option back
    assert not got.leak_m3s.empty  # the last run (RUNS[0]) leaks


def test_restore_needs_the_epanet_path_and_a_model(water):
    with pytest.raises(ValueError, match="restore"):
        run_water(water, [], 3600.0, 3600.0, restore=True, simulator="epanet")
    with pytest.raises(ValueError, match="restore"):
        run_water(water, [], 3600.0, 3600.0, model=water_model(water), restore=True)
