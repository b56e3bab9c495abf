"""Use case: model-based leak detection in the live pipeline (the demo city's L-Town).

Composition only; the models live in :mod:`rescity.monitor.models.leak` (the detector)
and :mod:`rescity.monitor.leakwatch` (its live face). This module

1. simulates a leak-free history of the city's water network with the demo's sensors
   (:func:`rescity.demo.day.water_history`: EPANET through WNTR, the scripted day's demand
   patterns and noise model, the :data:`~rescity.demo.day.HISTORY_DAYS` days before it),
2. bins it to the detector's 5-min rows exactly as ``LeakWatch`` bins live readings (the
   last reading in [k 300 s, (k + 1) 300 s) wins; pressure head m, flow m3/h = m3/s x
   3600, tank level m) and fits a :class:`~rescity.monitor.models.leak.LeakDetector` on
   it (residual regression + EPANET leak signatures, the detector's own defaults),
3. caches the fitted detector on disk (``./.rescity/cache/leak-<key>.pickle``, the key a
   SHA-256 of every input: the network's INP text, the sensors, the history's days, seed
   and noise, the detector's parameters and the source of the modules that produce
   them), so a second ``make demo`` skips the fit,
4. builds a :class:`~rescity.monitor.leakwatch.LeakWatch` over the registry's sensor
   indices (alarm assets are water uids, ``water:<pipe>``), primed with the history's
   last day so its 24 h window is full when the day starts, behind an operating-range
   gate (:class:`LeakSource`), as a transition source for the warning stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rescity.model import City
from rescity.monitor.batch import ReadingBatch
from rescity.monitor.engine import Transition
from rescity.monitor.registry import SensorRegistry

CACHE_VERSION = 2
"""Bump when the cached object's layout or the fitting recipe changes."""

STEP_S = 300
"""The detector's row step (s)."""

SIGNATURE_DAY = pd.Timestamp("2019-01-01")
"""A Tuesday: day 0 of L-Town's weekly patterns, where the scripted day's run starts, so
the leak signatures are simulated at the scripted day's load."""

BURST_M3H = 72.0
"""The burst view's smallest main break (m3/h, 20 L/s; ``LeakWatch.burst_m3h``): an
inflow step of this size with a localised pressure drop. Measured on the demo's L-Town
(bench/bench_leak_demo.py --bursts, breaks at the ends of the three sensed DN150 pipes):
30, 60 and 100 L/s found at the first 5-min row after them (0-301 m from the break),
10 and 20 L/s not; no main_break in 10 leak-free days."""

GATE_MARGIN = 0.25
"""Operating-range gate: an inflow reading more than this share of the calibrated
inflow range (max - min over the history, per inflow sensor) outside that range puts
its 5-min row out of the detector's calibrated domain (an assumption; see
:class:`LeakSource`)."""


def default_cache_dir() -> Path:
    """``$RESCITY_CACHE_DIR``, else ``./.rescity/cache`` (beside the embedded store)."""
    return Path(os.environ.get("RESCITY_CACHE_DIR") or Path(".rescity") / "cache")


@dataclass(frozen=True)
class WaterSensors:
    """The sensors the leak detector uses, by the detector's element names, and their
    city sensor ids: pressure at nodes, flow in links, level in tanks; ``inflow`` are
    the flow sensors in links from a reservoir (the network's inflow)."""

    pressure: dict[str, str]
    flow: dict[str, str]
    level: dict[str, str]
    inflow: tuple[str, ...]

    def placement(self) -> Any:
        from rescity.monitor.models.leak import SensorPlacement

        return SensorPlacement(tuple(sorted(self.pressure)), tuple(sorted(self.flow)),
                               tuple(sorted(self.level)), inflow=self.inflow)

    def sensor_of(self) -> dict[str, str]:
        """Detector column name -> city sensor id."""
        return {**self.pressure, **self.flow, **self.level}


def water_sensors(city: City, network: str = "water") -> WaterSensors:
    """The water network's SCADA-like sensors (consumption meters at nodes are not used:
    the residual regression takes pressures, link flows and tank levels)."""
    net = city.networks[network]
    p: dict[str, str] = {}
    f: dict[str, str] = {}
    lv: dict[str, str] = {}
    for s in city.sensors.values():
        if not s.asset.startswith(f"{network}:"):
            continue
        eid = s.asset.split(":", 1)[1]
        if s.quantity == "pressure" and eid in net.nodes and net.nodes[eid].kind == "junction":
            p[eid] = s.id
        elif s.quantity == "flow" and eid in net.links:
            f[eid] = s.id
        elif s.quantity == "level" and eid in net.nodes and net.nodes[eid].kind == "tank":
            lv[eid] = s.id
    inflow = tuple(sorted(lid for lid in f if "reservoir" in (
        net.nodes[net.links[lid].start].kind, net.nodes[net.links[lid].end].kind)))
    return WaterSensors(p, f, lv, inflow)


BINNING = "mean"
"""How the demo's 1-min readings become the detector's 5-min rows (``LeakWatch.binning``):
the mean of the step's readings, as a SCADA logger averaging over its interval; it
halves the residual noise of the demo (0.0079 -> 0.0039 m, day-to-day, on the history)
against the last reading of the step."""


def rows_frame(sensors: WaterSensors, ids: list[str] | np.ndarray, ts_ms: np.ndarray,
               values: np.ndarray, step_s: int = STEP_S, binning: str = "last") -> pd.DataFrame:
    """Long-format readings (SI) -> the detector's rows: one per ``step_s`` step
    (index: the step's start, UTC), the last reading of each sensor in the step (or
    with ``binning="mean"`` their mean, as ``LeakWatch`` bins), columns named as in the
    detector's placement; flows converted m3/s -> m3/h. Readings are taken in the
    order given (the last one given wins)."""
    if binning not in ("last", "mean"):
        raise ValueError(f"rows_frame: binning must be 'last' or 'mean', got {binning!r}")
    col = {sid: name for name, sid in sensors.sensor_of().items()}
    names = np.asarray([col.get(s, "") for s in ids])
    keep = names != ""
    df = pd.DataFrame({"k": np.asarray(ts_ms)[keep] // (step_s * 1000), "c": names[keep],
                       "v": np.asarray(values)[keep]})
    grouped = df.groupby(["k", "c"], sort=True)["v"]
    wide = (grouped.mean() if binning == "mean" else grouped.last()).unstack()
    pl = sensors.placement()
    wide = wide.reindex(columns=list(pl.pressure) + list(pl.flow) + list(pl.level))
    for c in pl.flow:
        wide[c] = wide[c] * 3600.0
    wide.index = pd.to_datetime(wide.index.to_numpy() * step_s * 1000, unit="ms")
    return wide


@dataclass
class FittedLeakModel:
    """A fitted detector and what the live watch needs besides it: ``prime`` (the
    history's last day of rows, to fill the 24 h window), the calibrated inflow range per
    inflow sensor (m3/h, over the history's readings), the cache ``key``, the seconds the fit took
    and whether it came from the cache."""

    detector: Any  # rescity.monitor.models.leak.LeakDetector
    sensors: WaterSensors
    prime: pd.DataFrame
    inflow_lo_m3h: dict[str, float]
    inflow_hi_m3h: dict[str, float]
    key: str
    fit_s: float = 0.0
    cached: bool = False
    binning: str = "last"  # how readings were binned to rows (``LeakWatch.binning``)


def _source_digest(*modules: Any) -> str:
    h = hashlib.sha256()
    for m in modules:
        h.update(Path(m.__file__).read_bytes())
    return h.hexdigest()


def cache_key(city: City, sensors: WaterSensors, *, days: int, seed: int,
              detector_params: dict[str, Any], network: str = "water",
              binning: str = BINNING) -> tuple[str, str]:
    """(key, INP text): SHA-256 (first 20 hex digits) over every input of the fit."""
    from rescity.demo import day
    from rescity.io.epanet import write_epanet
    from rescity.monitor import leakwatch
    from rescity.monitor.models import leak

    with tempfile.TemporaryDirectory() as tmp:
        write_epanet(city.networks[network], f"{tmp}/w.inp")
        inp = Path(f"{tmp}/w.inp").read_text()
    # the INP's "; Created: <time>" comment changes with every write: not an input
    stable = "\n".join(ln for ln in inp.splitlines() if not ln.startswith("; Created"))
    doc = {"version": CACHE_VERSION, "inp": hashlib.sha256(stable.encode()).hexdigest(),
           "sensors": asdict(sensors), "days": days, "seed": seed, "noise": day.NOISE,
           "step_ms": day.STEP_MS, "day_start_ms": day.DAY_START_MS,
           "ranges": {s.id: [s.low, s.high] for s in city.sensors.values() if s.asset.startswith(f"{network}:")},
           "params": detector_params, "signature_day": str(SIGNATURE_DAY), "binning": binning,
           "code": _source_digest(day, leak, leakwatch, sys.modules[__name__])}
    key = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return key, inp


def fit_demo_leak_model(city: City, *, cache_dir: Path | None = None, days: int | None = None,
                        seed: int = 20260715, binning: str = BINNING,
                        **detector_params: Any) -> FittedLeakModel:
    """The demo city's fitted leak detector, from the cache or fitted now (about 8 s:
    1-2 s of EPANET history, 6 s of leak signatures) and cached. ``binning``: how the
    history's readings become rows (the live watch bins the same way)."""
    from rescity.demo.day import HISTORY_DAYS, water_history

    days = HISTORY_DAYS if days is None else days
    sensors = water_sensors(city)
    key, inp = cache_key(city, sensors, days=days, seed=seed, detector_params=detector_params,
                         binning=binning)
    folder = cache_dir or default_cache_dir()
    path = folder / f"leak-{key}.pickle"
    if path.exists():
        try:
            with path.open("rb") as fh:
                fitted: FittedLeakModel = pickle.load(fh)
            fitted.cached = True
            return fitted
        except Exception:  # a broken or stale cache file: fit again
            pass
    t0 = time.perf_counter()
    import wntr

    from rescity.monitor.models.leak import LeakDetector

    with tempfile.TemporaryDirectory() as tmp:
        Path(f"{tmp}/w.inp").write_text(inp)
        wn = wntr.network.WaterNetworkModel(f"{tmp}/w.inp")
    hist = water_history(city, days=days, seed=seed)
    train = rows_frame(sensors, hist.sensors, hist.ts_ms, hist.values, binning=binning)
    pl = sensors.placement()
    det = LeakDetector(wn, pl, **detector_params).fit(train, signature_day=SIGNATURE_DAY)
    per_day = 86400 // det.step_s
    # the gate judges single readings, so its range is that of the history's readings
    # (not of the rows, whose averaging narrows it)
    raw = rows_frame(sensors, hist.sensors, hist.ts_ms, hist.values, step_s=1, binning="last")
    inflow = raw[list(pl.inflow)]
    fitted = FittedLeakModel(det, sensors, train.iloc[-per_day:].copy(),
                             {c: float(inflow[c].min()) for c in pl.inflow},
                             {c: float(inflow[c].max()) for c in pl.inflow}, key,
                             time.perf_counter() - t0, binning=binning)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=folder, delete=False, suffix=".tmp") as out:
        pickle.dump(fitted, out, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(out.name, path)  # atomic: a concurrent reader sees the old file or the new one
    return fitted


@dataclass
class LeakSource:
    """``LeakWatch`` as a transition source of the warning stage, behind an
    operating-range gate.

    The residual regression is calibrated on the history's inflows; far outside them it
    extrapolates (Q_in and Q_in^2 terms), and a main break (150 L/s in the demo, about
    540 m3/h where L-Town takes 100-300 m3/h) makes the matched filter find a cascade of
    spurious "leaks" all over the network. So a 5-min row in which an inflow reading q
    (m3/h) lies outside [lo - m, hi + m] (lo, hi: its calibrated range; m =
    :data:`GATE_MARGIN` x (hi - lo)) is withheld from the leak checks
    (``LeakWatch.gated_steps``): it counts as a missing row, and once fewer than
    ``min_window_h`` hours of rows are in the window the watch stops judging (no checks)
    until the network is back in range; the burst is the threshold and cluster models'
    (``main_break``) and the watch's burst view's (which reads gated rows too). Gated
    rows: ``stats["gated_rows"]``.

    Transitions of the priming (the history's last day, fed at construction) are
    returned by the first :meth:`ingest` (there should be none: the history is leak-free).
    """

    watch: Any  # rescity.monitor.leakwatch.LeakWatch
    inflow_index: np.ndarray  # registry indices of the inflow sensors
    inflow_lo_m3s: np.ndarray
    inflow_hi_m3s: np.ndarray
    step_ms: int = STEP_S * 1000
    stats: dict[str, int] = field(default_factory=lambda: {"gated_rows": 0, "primed_rows": 0})
    first_gated_ms: int | None = None
    pending: list[Transition] = field(default_factory=list)
    _gated: set[int] = field(default_factory=set, repr=False)
    fitted: Any = field(default=None, repr=False)  # the FittedLeakModel it watches with

    def ingest(self, batch: ReadingBatch, now_ms: int) -> list[Transition]:
        """Gate, then ``LeakWatch.ingest(batch, now_ms)``; the watch's transitions."""
        if len(batch):
            pos = np.searchsorted(self.inflow_index, batch.sensor)
            pos = np.minimum(pos, len(self.inflow_index) - 1)
            is_in = self.inflow_index[pos] == batch.sensor
            v = batch.value
            out = is_in & ((v < self.inflow_lo_m3s[pos]) | (v > self.inflow_hi_m3s[pos]))
            steps = batch.ts // self.step_ms
            new = set(np.unique(steps[out]).tolist()) - self._gated
            if new:
                self._gated |= new
                self.stats["gated_rows"] += len(new)
                if self.first_gated_ms is None:
                    self.first_gated_ms = int(min(new)) * self.step_ms
            if self._gated:
                horizon = (int(now_ms) // self.step_ms) - 24 * 3600 * 1000 // self.step_ms
                self._gated = {k for k in self._gated if k >= horizon}
                self.watch.gated_steps = set(self._gated)
        out_tr, self.pending = self.pending + self.watch.ingest(batch, int(now_ms)), []
        return out_tr

    def advance(self, now_ms: int) -> list[Transition]:
        """Close the rows ``now_ms`` completes without new readings."""
        out_tr, self.pending = self.pending + self.watch.advance(int(now_ms)), []
        return out_tr


def pipe_places(city: City, network: str = "water") -> Any:
    """``pipe id -> (lon, lat)``: the middle of the pipe's line in the city's network
    (NaN for a pipe the city does not have), the place of its leak and burst alarms."""
    links = city.networks[network].links
    cache: dict[str, tuple[float, float]] = {}

    def place(pipe: str) -> tuple[float, float]:
        if pipe not in cache:
            link = links.get(pipe)
            if link is None:
                cache[pipe] = (float("nan"), float("nan"))
            else:
                mid = link.geometry.interpolate(0.5, normalized=True)
                cache[pipe] = (float(mid.x), float(mid.y))
        return cache[pipe]

    return place


def leak_source(fitted: FittedLeakModel, registry: SensorRegistry, *, network: str = "water",
                prime: bool = True, city: City | None = None, **watch_params: Any) -> LeakSource:
    """A :class:`LeakSource` over ``registry``: the watch's sensor indices are the
    registry's indices of the detector's sensors; with ``prime``, the history's last day
    is fed first (readings at each row's start, SI), so the first check of the day has a
    full 24 h window. With ``city``, alarms are placed at their pipe's middle
    (:func:`pipe_places`). The burst view is on (``burst_m3h`` = :data:`BURST_M3H`)
    unless ``watch_params`` say otherwise."""
    from rescity.monitor.leakwatch import LeakWatch

    sensor_of = fitted.sensors.sensor_of()
    index = registry.index
    missing = [sid for sid in sensor_of.values() if sid not in index]
    if missing:
        raise ValueError(f"leak_source: sensors not in the registry: {missing}")
    watch_params.setdefault("binning", fitted.binning)
    watch_params.setdefault("burst_m3h", BURST_M3H)
    if city is not None and network in city.networks:
        watch_params.setdefault("place_of", pipe_places(city, network))
    watch = LeakWatch(fitted.detector, {name: index[sid] for name, sid in sensor_of.items()},
                      network=network, asset_of=lambda pipe: f"{network}:{pipe}", **watch_params)
    inflow = sorted(fitted.sensors.inflow, key=lambda c: index[sensor_of[c]])
    lo = np.array([fitted.inflow_lo_m3h[c] for c in inflow])
    hi = np.array([fitted.inflow_hi_m3h[c] for c in inflow])
    m = GATE_MARGIN * (hi - lo)
    src = LeakSource(watch, np.array([index[sensor_of[c]] for c in inflow], dtype=np.int64),
                     (lo - m) / 3600.0, (hi + m) / 3600.0, step_ms=fitted.detector.step_s * 1000,
                     fitted=fitted)
    if prime and len(fitted.prime):
        rows = fitted.prime
        ts = (pd.DatetimeIndex(rows.index).asi8 // 1_000_000).astype(np.int64)
        cols = list(rows.columns)
        vals = rows.to_numpy(dtype=float).copy()
        for j, c in enumerate(cols):
            if c in fitted.detector.placement.flow:
                vals[:, j] /= 3600.0  # back to SI, as live readings are
        s = np.tile([index[sensor_of[c]] for c in cols], len(ts))
        batch = ReadingBatch.of(s, np.repeat(ts, len(cols)), vals.ravel())
        src.pending = watch.ingest(batch, int(ts[-1]) + src.step_ms)
        src.stats["primed_rows"] = len(ts)
    return src


def demo_leak_source(city: City, registry: SensorRegistry, *, cache_dir: Path | None = None) -> LeakSource:
    """The demo city's leak source: :func:`fit_demo_leak_model` (cached) +
    :func:`leak_source` over ``registry``."""
    return leak_source(fit_demo_leak_model(city, cache_dir=cache_dir), registry, city=city)


def worker_leak_source(city: City, registry: SensorRegistry, *, cache_dir: Path | None = None,
                       network: str = "water") -> LeakSource | None:
    """The leak source of an ingestion worker over ``city``, not yet primed (see
    :func:`restore_leak_source`), or None when the city's water network lacks what the
    detector needs (pressure sensors at junctions and a flow sensor on a pipe from a
    reservoir) or the registry lacks one of those sensors."""
    if network not in city.networks:
        return None
    sensors = water_sensors(city, network)
    if not sensors.pressure or not sensors.inflow:
        return None
    if any(sid not in registry.index for sid in sensors.sensor_of().values()):
        return None
    return leak_source(fit_demo_leak_model(city, cache_dir=cache_dir), registry,
                       network=network, prime=False, city=city)


def restore_leak_source(src: LeakSource, monitoring: Any, open_alarms: list[Any],
                        registry: SensorRegistry) -> dict[str, int]:
    """Bring a worker's fresh leak source back to where the last one stopped, from the
    store (a worker killed with SIGKILL keeps no state but the store's):

    1. the open ``leak_model`` alarms of the alarm book (rebuilt from the stored alarm
       events) become the watch's known leaks (``LeakWatch.restore_leaks``): tracked,
       graded and resolved, never reported again; its burst view's open ``main_break``
       alarms at pipes its open breaks (``LeakWatch.restore_bursts``);
    2. the window is re-primed: the stored readings of the detector's sensors in the
       last ``window_h`` hours (plus the row grace) before the newest of them
       (``monitoring.readings``), preceded by the leak-free history's rows older than
       the first of them (what primed the first worker), fed through the gate with the
       readings' own clock (``now`` = the newest stored reading), so the rows they
       complete are closed as the first worker closed them and the rows still open wait
       for the redelivered and new readings. Transitions of the re-priming are dropped:
       the alarm book already holds the first worker's.

    With no stored readings the history's last day is the priming, as in the demo.
    Returns counts: ``restored`` leaks and breaks, ``readings`` re-primed,
    ``history_rows``."""
    fitted: FittedLeakModel = src.fitted
    sensor_of = fitted.sensors.sensor_of()
    det = fitted.detector
    mine = {a.asset.split(":", 1)[1]: int(a.level) for a in open_alarms
            if a.model == "leak_model" and a.asset.startswith(f"{src.watch.network}:")}
    restored = src.watch.restore_leaks(mine)
    bursts = {a.asset.split(":", 1)[1]: (int(a.level), float(a.value)) for a in open_alarms
              if a.model == src.watch.burst_model and a.asset.startswith(f"{src.watch.network}:")}
    restored += src.watch.restore_bursts(bursts)
    uids, last = monitoring.latest(per_sensor=1)
    watched = set(sensor_of.values())
    newest = max((int(t) for u, t in zip(uids, np.asarray(last).tolist(), strict=True) if u in watched),
                 default=None)
    index = registry.index
    s_parts: list[np.ndarray] = []
    t_parts: list[np.ndarray] = []
    v_parts: list[np.ndarray] = []
    first: int | None = None
    start: int | None = None
    if newest is not None:
        start = newest - int((det.window_h * 3600 + src.watch.grace_s) * 1000) - src.step_ms
        for sid in sorted(watched):
            ts, v = monitoring.readings(sid, start, newest + 1)
            if len(ts):
                s_parts.append(np.full(len(ts), index[sid], dtype=np.int64))
                t_parts.append(ts)
                v_parts.append(v)
                first = int(ts[0]) if first is None else min(first, int(ts[0]))
    rows = fitted.prime
    hist_ts = (pd.DatetimeIndex(rows.index).asi8 // 1_000_000).astype(np.int64)
    keep = hist_ts < (first if first is not None else np.iinfo(np.int64).max)
    if start is not None:  # only the part of the window that the stored readings do not cover
        keep &= hist_ts >= start
    n_hist = int(keep.sum())
    if n_hist:
        cols = list(rows.columns)
        vals = rows.to_numpy(dtype=float)[keep].copy()
        for j, c in enumerate(cols):
            if c in det.placement.flow:
                vals[:, j] /= 3600.0  # back to SI, as live readings are
        s_parts.insert(0, np.tile([index[sensor_of[c]] for c in cols], n_hist))
        t_parts.insert(0, np.repeat(hist_ts[keep], len(cols)))
        v_parts.insert(0, vals.ravel())
    n_read = sum(len(t) for t in t_parts) - n_hist * len(rows.columns)
    if t_parts:
        t_all = np.concatenate(t_parts)
        order = np.argsort(t_all, kind="stable")
        batch = ReadingBatch.of(np.concatenate(s_parts)[order], t_all[order],
                                np.concatenate(v_parts)[order])
        now = newest if newest is not None else int(t_all.max()) + src.step_ms
        src.ingest(batch, int(now))  # the first worker's transitions are in the book
    src.pending = []
    src.stats["primed_rows"] = n_hist
    return {"restored": restored, "readings": int(n_read), "history_rows": n_hist}
