"""The anomaly model as an engine kind: learns a daily pattern, then warns on a burst."""

from __future__ import annotations

import numpy as np
from shapely.geometry import Point

from rescity.model import Sensor
from rescity.monitor.batch import HOUR_MS, MINUTE_MS, ReadingBatch
from rescity.monitor.engine import WarningEngine
from rescity.monitor.registry import SensorRegistry
from rescity.monitor.specs import load_catalogue, parse_model


def test_anomaly_kind_is_in_the_catalogue_and_explains_itself():
    cat = load_catalogue()
    m = cat.models["pressure_anomaly"]
    assert m.kind == "anomaly" and "anomaly score" in m.explain()


def test_anomaly_kind_warns_on_a_pressure_collapse_after_learning():
    reg = SensorRegistry.from_sensors([Sensor(f"water.n{i}.pressure", f"water:n{i}", "pressure",
                                              Point(24.94, 60.17)) for i in range(3)])
    spec = parse_model({"name": "pa", "kind": "anomaly", "select": {"quantity": "pressure"},
                        "thresholds": {"blue": 0.3, "yellow": 0.45, "orange": 0.6, "red": 0.8}},
                       "test")
    eng = WarningEngine([spec], reg)
    rng = np.random.default_rng(3)
    t0 = 1_784_764_800_000
    step = 15 * MINUTE_MS
    n = 21 * 96  # three weeks of 15-minute readings
    burst_at = n - 30
    fired = []
    for k in range(n):
        t = t0 + k * step
        h = (k * step / HOUR_MS) % 24
        base = 45 + 4 * np.sin(2 * np.pi * h / 24) + rng.normal(0, 0.1, 3)
        if k >= burst_at:
            base[1] -= 15.0  # sensor 1 loses 15 m of head: a burst upstream
        trs = eng.process(ReadingBatch.of([0, 1, 2], [t] * 3, base))
        fired += [(k, tr.sensor) for tr in trs if str(tr.kind) == "firing"]
    late = [(k, s) for k, s in fired if k >= burst_at]
    assert late and late[0][1] == "water.n1.pressure" and late[0][0] <= burst_at + 2
    early_quiet = [f for f in fired if 14 * 96 <= f[0] < burst_at]
    assert not early_quiet, early_quiet
