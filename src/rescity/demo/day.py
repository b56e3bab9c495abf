"""The demo city's scripted day: one day of telemetry for every sensor, with the kinds of
events seen in the field injected at known times.

Water pressures and flows come from simulating L-Town with EPANET (through WNTR) for the
day, with the events as extra demands: an abrupt main break (a large leak switched on at
once) and an incipient leak (growing linearly). The other quantities are synthetic but
follow simple physics, documented per quantity below. Sensor noise is Gaussian with the
accuracy of typical field instruments.

Everything is deterministic for a given seed. Times are ms since the epoch (UTC); the
day starts at :data:`DAY_START_MS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rescity.model import City, DependencyKind
from rescity.monitor.batch import DAY_MS, HOUR_MS, MINUTE_MS

DAY_START_MS = 1_784_764_800_000  # 2026-07-22T00:00:00Z: a summer day with a rainstorm
STEP_MS = MINUTE_MS

# the incipient leak near p102: starts at LEAK_START_H, grows linearly to LEAK_M3S over
# LEAK_RAMP_H hours, then holds. Sized so that the live leak detector (24 h window,
# 5-min rows averaging the 1-min readings) catches it before the 10:30 main break
# blinds it: the detection limit measured by bench/bench_leak_demo.py is a leak of
# about 14 m3/h grown in <= 6 h, or a constant 10 m3/h, to be found within 8 h; the
# earlier script (0 -> 4 L/s over 20 h from 02:00, 1.7 L/s at 10:30) was found at
# 14:55 on a day without the break, too late (docs/monitoring.md)
LEAK_START_H = 1.0
LEAK_RAMP_H = 6.0
LEAK_M3S = 0.004  # 4 L/s = 14.4 m3/h

# instrument noise (1 sigma), SI units of each quantity
NOISE = {"pressure": 0.05, "flow": 0.002, "level": 0.01, "methane": 0.3, "strain": 3.0,
         "deflection": 0.0005, "vibration": 0.005, "voltage": 30.0, "current": 2.0,
         "rainfall": 0.2, "traffic": 40.0, "temperature": 0.1}


@dataclass
class ScriptedEvent:
    """One injected event: what, where (asset uid and sensors that see it), when."""

    kind: str
    asset: str
    start_ms: int
    end_ms: int
    sensors: list[str]
    description: str
    description_zh: str


@dataclass
class ScriptedDay:
    """The telemetry (aligned arrays, long format) and the events it contains."""

    sensors: list[str]
    ts_ms: np.ndarray
    values: np.ndarray
    events: list[ScriptedEvent] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sensors)


def _hours(t: np.ndarray) -> np.ndarray:
    return (t - DAY_START_MS) / HOUR_MS


def _rain_profile(h: np.ndarray) -> np.ndarray:
    """Rainfall intensity (mm/h): a convective storm 14:00-17:30 peaking at 15:10
    (a Chicago-like shape, peak 75 mm/h: a rainstorm, 暴雨, by the hourly criterion)."""
    peak, r = 15.17, np.zeros_like(h)
    before = (h >= 14.0) & (h < peak)
    after = (h >= peak) & (h < 17.5)
    r[before] = 75.0 * np.exp(-((peak - h[before]) / 0.35) ** 2)
    r[after] = 75.0 * np.exp(-((h[after] - peak) / 0.8) ** 2)
    return r


def _water(city: City, t: np.ndarray, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], list[ScriptedEvent]]:
    """Pressures (m) and flows (m3/s) of the water sensors from an EPANET run of the day."""
    return _simulate_water(city, t, DAY_START_MS, inject=True)


def _simulate_water(city: City, t: np.ndarray, start_ms: int, *, inject: bool,
                    pattern_start_s: int = 0, leaks: Sequence[tuple[str, float, int]] = ()
                    ) -> tuple[dict[str, np.ndarray], list[ScriptedEvent]]:
    """True (noise-free) pressures (m), flows (m3/s) and tank levels (m) of the water
    sensors at the times ``t`` (ms UTC), from one EPANET run of L-Town starting at
    ``start_ms`` (EPANET time 0, the INP's initial tank levels) and lasting until the
    last of ``t``; the run's demand patterns start at ``pattern_start_s`` (s into L-Town's
    weekly patterns). ``inject``: add the scripted day's main break and incipient leak
    (extra demands, times relative to ``start_ms``) and return their events. ``leaks``:
    extra constant demands (junction id, m3/s, switched on at ms UTC), e.g. a synthetic
    leak for tests."""
    import tempfile

    import wntr

    from rescity.io.epanet import write_epanet

    water = city.networks["water"]
    duration_s = max(24 * 3600, -(-(int(t[-1]) - start_ms) // (300 * 1000)) * 300)
    with tempfile.TemporaryDirectory() as tmp:
        write_epanet(water, f"{tmp}/w.inp")
        wn = wntr.network.WaterNetworkModel(f"{tmp}/w.inp")
        wn.options.time.duration = duration_s
        wn.options.time.hydraulic_timestep = 300
        wn.options.time.report_timestep = 300
        wn.options.time.pattern_timestep = 300
        if pattern_start_s:
            wn.options.time.pattern_start = pattern_start_s
        # the main break: the first pipe of diameter >= 150 mm at a pressure sensor
        sensed = [s.asset.split(":", 1)[1] for s in city.sensors.values()
                  if s.quantity == "pressure" and s.asset.startswith("water:")]
        pipes = sorted((wn.get_link(p) for p in wn.pipe_name_list), key=lambda p: p.name)
        brk = next(p for p in pipes if p.start_node_name in sensed and p.diameter >= 0.2)
        leak = next(p for p in pipes if p.end_node_name in sensed and p.name != brk.name
                    and p.start_node_name != brk.start_node_name)
        if inject:
            steps = 24 * 12 + 1
            hours = np.arange(steps) / 12.0
            brk_mult = np.where(hours >= 10.5, 1.0, 0.0)  # 10:30, abrupt
            leak_mult = np.clip((hours - LEAK_START_H) / LEAK_RAMP_H, 0.0, 1.0)  # growing, then holds
            wn.add_pattern("brk", list(brk_mult[:-1]))
            wn.add_pattern("leak", list(leak_mult[:-1]))
            wn.get_node(brk.start_node_name).demand_timeseries_list.append((0.150, wn.get_pattern("brk"), "break"))
            wn.get_node(leak.end_node_name).demand_timeseries_list.append((LEAK_M3S, wn.get_pattern("leak"), "leak"))
        n_steps = duration_s // 300
        for k, (node, q_m3s, on_ms) in enumerate(leaks):
            mult = (start_ms + np.arange(n_steps) * 300_000 >= on_ms).astype(float)
            wn.add_pattern(f"xleak{k}", list(mult))
            wn.get_node(node).demand_timeseries_list.append((q_m3s, wn.get_pattern(f"xleak{k}"), f"xleak{k}"))
        res = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=f"{tmp}/w")
    p = res.node["pressure"]
    f = res.link["flowrate"]
    sim_t = start_ms + (p.index.to_numpy(dtype=float) * 1000).astype(np.int64)
    out: dict[str, np.ndarray] = {}
    for s in city.sensors.values():
        if not s.asset.startswith("water:"):
            continue
        eid = water.nodes.get(s.asset.split(":", 1)[1]) or water.links.get(s.asset.split(":", 1)[1])
        if s.quantity == "pressure" and eid is not None and eid.id in p:
            series = p[eid.id].to_numpy()
        elif s.quantity == "flow" and eid is not None and eid.id in f:
            series = f[eid.id].to_numpy()
        elif s.quantity == "flow" and eid is not None and eid.id in res.node["demand"]:
            series = res.node["demand"][eid.id].to_numpy()
        elif s.quantity == "level" and eid is not None and eid.id in res.node["head"]:
            series = res.node["head"][eid.id].to_numpy() - wn.get_node(eid.id).elevation
        else:
            continue
        out[s.id] = np.interp(t, sim_t, series)
    if not inject:
        return out, []
    near_brk = [s.id for s in city.sensors.values() if s.asset == f"water:{brk.start_node_name}"]
    near_leak = [s.id for s in city.sensors.values() if s.asset == f"water:{leak.end_node_name}"]
    events = [
        ScriptedEvent("main_break", water.uid(brk.name), DAY_START_MS + int(10.5 * HOUR_MS),
                      DAY_START_MS + DAY_MS, near_brk,
                      f"water main {brk.name} (DN{int(round(brk.diameter * 1000))}) bursts: 150 L/s lost",
                      f"供水主管{brk.name}爆管，漏失150升/秒"),
        ScriptedEvent("incipient_leak", water.uid(leak.name), DAY_START_MS + int(LEAK_START_H * HOUR_MS),
                      DAY_START_MS + DAY_MS, near_leak,
                      f"an incipient leak near pipe {leak.name} grows to {LEAK_M3S * 1000:g} L/s "
                      f"in {LEAK_RAMP_H:g} h",
                      f"管道{leak.name}附近暗漏{LEAK_RAMP_H:g}小时内逐步扩大至{LEAK_M3S * 1000:g}升/秒"),
    ]
    return out, events


@dataclass
class WaterHistory:
    """Leak-free telemetry of the water sensors before the scripted day (long format,
    like :class:`ScriptedDay`: sensor ids, ms UTC, SI values)."""

    sensors: list[str]
    ts_ms: np.ndarray
    values: np.ndarray
    start_ms: int
    days: int


HISTORY_DAYS = 7
"""Days of leak-free history before the scripted day (L-Town's demand patterns are weekly)."""


def water_history(city: City, *, days: int = HISTORY_DAYS, seed: int = 20260715,
                  step_ms: int = STEP_MS, start_ms: int | None = None,
                  leaks: Sequence[tuple[str, float, int]] = ()) -> WaterHistory:
    """The ``days`` days before the scripted day, water sensors only, without events:
    what a utility's SCADA archive holds before the day, for calibrating the leak model.

    The same simulation as the day (one EPANET run of L-Town, 5-min hydraulic steps,
    linear interpolation to ``step_ms``), the same noise model (Gaussian, sigma
    :data:`NOISE` per quantity: 0.05 m of pressure, 0.002 m3/s of flow, 0.01 m of level)
    and clipping to each sensor's physical range; its own ``seed``. The demand patterns
    are placed so the history ends where the scripted day's patterns begin: the day runs
    from pattern time 0, so the history starts ``days`` days earlier in L-Town's weekly
    cycle (pattern start ``(-days mod 7)`` days). Times: from ``DAY_START_MS - days``
    days to just before ``DAY_START_MS``; or from ``start_ms`` (the patterns placed the
    same way relative to the scripted day). ``leaks``: synthetic leaks (junction id,
    m3/s, from ms UTC), for tests; the default history has none.
    """
    rng = np.random.default_rng(seed)
    start = DAY_START_MS - days * DAY_MS if start_ms is None else int(start_ms)
    t = start + np.arange(0, days * DAY_MS, step_ms, dtype=np.int64)
    week_s = 7 * 24 * 3600
    series, _ = _simulate_water(city, t, start, inject=False, leaks=leaks,
                                pattern_start_s=((start - DAY_START_MS) // 1000) % week_s)
    ids: list[str] = []
    v_parts: list[np.ndarray] = []
    for sid in sorted(series):
        sensor = city.sensors[sid]
        x = series[sid] + rng.normal(0.0, NOISE.get(sensor.quantity, 0.0), len(t))
        v_parts.append(np.clip(x, sensor.low, sensor.high))
        ids.extend([sid] * len(t))
    ts = np.tile(t, len(series))
    return WaterHistory(ids, ts, np.concatenate(v_parts) if v_parts else np.zeros(0), start, days)


def scripted_day(city: City, *, seed: int = 20260722, step_ms: int = STEP_MS) -> ScriptedDay:
    """One day of telemetry for every sensor of ``city`` (the demo city)."""
    rng = np.random.default_rng(seed)
    t = DAY_START_MS + np.arange(0, DAY_MS, step_ms, dtype=np.int64)
    h = _hours(t)
    rain = _rain_profile(h)
    # drainage response: a linear reservoir (time constant 25 min) of the rainfall
    k = np.exp(-step_ms / (25 * MINUTE_MS))
    runoff = np.zeros_like(rain)
    for i in range(1, len(rain)):
        runoff[i] = k * runoff[i - 1] + (1 - k) * rain[i]
    diurnal = 0.5 - 0.5 * np.cos(2 * np.pi * (h - 3.0) / 24.0)  # 0 at 03:00, 1 at 15:00
    series, events = _water(city, t, rng)

    adjacency = {d.dependent: d for d in city.interdependencies
                 if d.kind == DependencyKind.SPATIAL_ADJACENCY and d.dependent.startswith("drainage:")}
    methane_manholes = sorted(s.id for s in city.sensors.values()
                              if s.quantity == "methane" and s.asset in adjacency)
    gas_hit = methane_manholes[0] if methane_manholes else None
    level_sensors = sorted(s.id for s in city.sensors.values()
                           if s.quantity == "level" and s.asset.startswith("drainage:"))
    overflow = level_sensors[len(level_sensors) // 2] if level_sensors else None
    bridge_spans = sorted({s.asset for s in city.sensors.values() if s.quantity == "strain"})
    overload = bridge_spans[0] if bridge_spans else None
    silent = sorted(s.id for s in city.sensors.values() if s.quantity == "voltage")[0]

    for s in sorted(city.sensors.values(), key=lambda s: s.id):
        if s.id in series:
            continue
        q = s.quantity
        if q == "rainfall":
            x = rain * (0.9 + 0.2 * rng.random())
        elif q == "level" and s.asset.startswith("drainage:"):
            # fill ratio: dry-weather flow 8-10 %, up to about 50 % of the depth at the
            # storm's peak; the overflow junction fills completely and spills
            asset = city.asset(s.asset)
            depth = float((asset.attrs.get("max_depth_m") if asset is not None else None) or 3.0)
            fill = 0.08 + 0.02 * diurnal + runoff / 75.0 * (0.3 + 0.15 * rng.random())
            if s.id == overflow:
                fill = 0.1 + np.clip(runoff / 25.0, 0, 1.15)
            x = fill * depth
        elif q == "level":  # tunnel sumps
            x = 0.1 + 0.05 * runoff / 75.0
        elif q == "methane":
            x = np.full_like(h, 0.5 + 0.5 * rng.random())
            if s.id == gas_hit:  # a leak builds up in the manhole as rain seals the soil
                x = x + np.clip((h - 14.5) / 1.5, 0, 1) * 28.0 * (h < 20.0)  # vented at 20:00
        elif q == "strain":
            x = 80.0 + 120.0 * diurnal
            if s.asset == overload:
                x = x + 900.0 * ((h >= 8.5) & (h < 8.9))  # a 55-tonne truck convoy
        elif q == "deflection":
            x = 0.004 + 0.006 * diurnal
            if s.asset == overload:
                x = x + 0.04 * ((h >= 8.5) & (h < 8.9))
        elif q == "vibration":
            x = 0.05 + 0.08 * diurnal
        elif q == "traffic":
            x = 300.0 + 1500.0 * np.exp(-((h - 8.3) / 1.2) ** 2) + 1300.0 * np.exp(-((h - 17.8) / 1.4) ** 2)
            if s.asset == overload:
                x = x + 1200.0 * ((h >= 8.4) & (h < 9.0))
        elif q == "voltage":
            x = 20_000.0 - 300.0 * diurnal
        elif q == "current":
            x = 120.0 + 180.0 * diurnal
        elif q == "temperature":
            x = 21.0 + 2.0 * diurnal
        elif q == "pressure":  # gas regulator outlet, in m of water column (0.2 MPa)
            x = np.full_like(h, 20.39)
        else:
            continue
        series[s.id] = np.asarray(x, dtype=float)

    events += [
        ScriptedEvent("rainstorm", "district", DAY_START_MS + 14 * HOUR_MS, DAY_START_MS + int(17.5 * HOUR_MS),
                      sorted(s.id for s in city.sensors.values() if s.quantity == "rainfall"),
                      "a convective rainstorm, 75 mm/h at 15:10", "强对流暴雨，15:10小时雨强75毫米"),
    ]
    if gas_hit:
        events.append(ScriptedEvent("gas_in_manhole", city.sensors[gas_hit].asset, DAY_START_MS + int(14.5 * HOUR_MS),
                                    DAY_START_MS + 20 * HOUR_MS, [gas_hit],
                                    "methane accumulates in a manhole next to a gas main during the storm",
                                    "暴雨期间燃气管旁窨井甲烷聚集"))
    if overflow:
        events.append(ScriptedEvent("drainage_overflow", city.sensors[overflow].asset, DAY_START_MS + int(14.8 * HOUR_MS),
                                    DAY_START_MS + int(17 * HOUR_MS), [overflow],
                                    "a drainage junction surcharges and overflows", "排水节点满管溢流"))
    if overload:
        events.append(ScriptedEvent("bridge_overload", overload, DAY_START_MS + int(8.5 * HOUR_MS),
                                    DAY_START_MS + int(8.9 * HOUR_MS),
                                    sorted(s.id for s in city.sensors.values() if s.asset == overload),
                                    "an overweight truck convoy crosses the bridge", "超载车队通过桥梁"))
    events.append(ScriptedEvent("sensor_silent", city.sensors[silent].asset, DAY_START_MS + 12 * HOUR_MS,
                                DAY_START_MS + DAY_MS, [silent], f"sensor {silent} goes silent",
                                f"传感器{silent}离线"))

    ids: list[str] = []
    ts_parts: list[np.ndarray] = []
    v_parts: list[np.ndarray] = []
    for sid in sorted(series):
        x = series[sid] + rng.normal(0.0, NOISE.get(city.sensors[sid].quantity, 0.0), len(t))
        keep = np.ones(len(t), dtype=bool)
        if sid == silent:
            keep = h < 12.0
        lo, hi = city.sensors[sid].low, city.sensors[sid].high
        x = np.clip(x, lo, hi)
        ids.extend([sid] * int(keep.sum()))
        ts_parts.append(t[keep])
        v_parts.append(x[keep])
    return ScriptedDay(ids, np.concatenate(ts_parts), np.concatenate(v_parts), events)


def describe(day: ScriptedDay) -> list[dict[str, Any]]:
    """The events as plain dicts (for printing and the API)."""
    return [{"kind": e.kind, "asset": e.asset, "start_ms": e.start_ms, "end_ms": e.end_ms,
             "sensors": e.sensors, "description": e.description, "description_zh": e.description_zh}
            for e in day.events]
