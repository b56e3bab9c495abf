"""BattLeDIM 2019 reconstruction on L-Town and the competition's scoring rule.

The original SCADA readings of the Battle of the Leakage Detection and Isolation Methods
(BattLeDIM 2020, Vrachimis et al.) are not available offline. This module rebuilds them:
L-Town from ``epyt`` is the *nominal model* a utility would own; a perturbed copy of it is
the *reality* that produces the measurements; the 23 leaks of 2019 are injected into
reality with their published outflows; sensors sit where the competition put them.

Reality differs from the model (``RealityConfig``, all documented there):

- pipe roughness (Hazen-Williams C) x (1 + U(-r, r)) per pipe, r = 5 %;
- each node's base demand x U(0.9, 1.1) (the rules: "less than 10 %");
- each node's demand x lognormal(0, 5 %) per day (day-to-day consumer variability);
- yearly seasonality 1 + 10 % cos(2 pi (day - 200) / 365.25) (the rules: more in
  July/August, less in December/January; the model's weekly patterns have none);
- the weekly patterns x (1 + N(0, 5 %)) per hour of the week (patterns "with some
  discrepancies");
- a network-wide AR(1) demand factor per 5-min step, sigma 3 %, correlation time 1 h;
- leaks: each leaky pipe is split at its midpoint and the published outflow
  (``leak_outflow_2019_m3h.csv.gz``, m3/h per 5 min) is drawn there as a demand.

The training year (``reconstruct_2018``): the same reality through 2018 with the 14
leaks of the competition's historical configuration as pressure-driven orifices
(EPANET emitters, q = 0.75 pi d^2 / 4 sqrt(2 g p); incipient leaks' diameter grows
linearly to its peak), since their outflows were not published; the four leaks that
run on into 2019 then deliver within about 1 % of their published 2019 outflows.

Sensor noise (``RealityConfig``): pressure white noise sigma 0.1 m plus a fixed offset per
sensor sigma 0.1 m (0.1 % of a 0-100 m transducer's full scale; the competition's 5-min
averages remove most faster noise), flows 1 % white noise, tank level 1 cm; every reading
rounded to 0.01 like the competition's files.

Scoring (``score_detections``) follows KIOS-Research/BattLeDIM ``Scoring_Algorithm.m``:
detections sorted by time; one in 2018 is ignored; it is a true detection of a leak when
the leak runs at the detection step (start <= td <= end) and the pipe distance is at most
300 m; then it earns 0.8 EUR/m3 x the leak's outflow volume from the detection step on
(the sum of the 5-min m3/h values from step td - 1, as MATLAB's 1-based indexing does,
divided by 12) minus 500 EUR x distance / 300 m; among several leaks it matches, the
closest not yet detected one counts; a repeated detection of a detected leak scores 0;
anything else is a false detection, -500 EUR. Distance between two pipes: 0 for the same
pipe, else the shortest path along pipes between their nearest end nodes plus half of
each pipe's length (pumps and valves are not edges, as in the MATLAB code, whose graph
is built from link lengths, zero for them). A perfect team scores 523,153.82 EUR.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import wntr
import yaml

from rescity.monitor.datasets import dataset_dir
from rescity.monitor.models.leak import (
    EN_DURATION,
    EN_EMITTER,
    EN_FLOW,
    EN_HYDSTEP,
    EN_PATTERNSTEP,
    EN_PRESSURE,
    EN_REPORTSTEP,
    EpanetSession,
    SensorPlacement,
    week_steps,
)

__all__ = [
    "DATA_DIR",
    "PERFECT_SCORE_EUR",
    "RealityConfig",
    "ScoreReport",
    "PipeDistance",
    "ltown_inp",
    "read_leaks",
    "read_leaks_2018",
    "leak_diameters",
    "leak_shapes",
    "reconstruct_2018",
    "perfect_detections",
    "read_leak_outflow",
    "read_sensor_placement",
    "build_reality",
    "simulate_sensors",
    "add_sensor_noise",
    "reconstruct",
    "score_detections",
]

# see monitor/datasets.py; RESCITY_BATTLEDIM_DIR overrides it
DATA_DIR = Path(os.environ.get("RESCITY_BATTLEDIM_DIR") or dataset_dir("battledim"))
PERFECT_SCORE_EUR = 523_153.82
STEP_S = 300
STEPS_PER_DAY = 288
YEAR_START = pd.Timestamp("2019-01-01 00:00")
COST_WATER_EUR_M3 = 0.8
COST_CREW_EUR = 500.0
MAX_DISTANCE_M = 300.0


def ltown_inp() -> Path:
    """Path of L-Town's EPANET input file shipped with ``epyt`` (5-min hydraulic step)."""
    import epyt

    return Path(epyt.__file__).parent / "networks" / "L-TOWN.inp"


def _data_dir(data_dir: Path | str | None) -> Path:
    d = Path(data_dir) if data_dir is not None else DATA_DIR
    if not (d / "leaks_2019.csv").exists():
        raise FileNotFoundError(f"BattLeDIM data not found: looked for leaks_2019.csv in {d}")
    return d


def read_leaks(data_dir: Path | str | None = None, year: int = 2019) -> pd.DataFrame:
    """The leaks of ``year``: columns pipe, diameter_m, type, start, end, peak (Timestamps).

    2019: the 23 leaks of ``leaks_2019.csv``. 2018: the 14 leaks of the competition's
    training (historical) year, from ``dataset_configuration_historical.yalm`` (its end
    time 2018-12-31 23:55 means "still running when the year ended").
    """
    if year == 2018:
        return read_leaks_2018(data_dir)
    if year != 2019:
        raise ValueError(f"read_leaks: BattLeDIM has leak schedules for 2018 and 2019, not {year}")
    df = pd.read_csv(_data_dir(data_dir) / "leaks_2019.csv", skipinitialspace=True)
    out = pd.DataFrame({
        "pipe": df["Leak Pipe"].str.strip(),
        "diameter_m": df["Leak Diameter"].astype(float),
        "type": df["Leak Type"].str.strip(),
        "start": pd.to_datetime(df["Leak Start"]),
        "end": pd.to_datetime(df["Leak End"]),
        "peak": pd.to_datetime(df["Peak Time"]),
    })
    return out.sort_values("start").reset_index(drop=True)


def read_leaks_2018(data_dir: Path | str | None = None) -> pd.DataFrame:
    """The 14 leaks of 2018 (``dataset_configuration_historical.yalm``), as ``read_leaks``."""
    with open(_data_dir(data_dir) / "dataset_configuration_historical.yalm") as f:
        cfg = yaml.safe_load(f)
    rows = []
    for item in cfg["leakages"]:
        if not isinstance(item, str) or item.lstrip().startswith("#"):
            continue
        pipe, start, end, diam, kind, peak = (x.strip() for x in item.split(","))
        rows.append((pipe, float(diam), kind, pd.Timestamp(start), pd.Timestamp(end),
                     pd.Timestamp(peak)))
    out = pd.DataFrame(rows, columns=["pipe", "diameter_m", "type", "start", "end", "peak"])
    return out.sort_values("start").reset_index(drop=True)


def leak_diameters(leaks: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Each leak's orifice diameter (m) at every timestamp of ``index``; one column per pipe.

    The BattLeDIM generator's leak shapes (checked on the published 2019 outflows, whose
    incipient leaks grow as the square of the elapsed share of the rise time): abrupt,
    d from ``start`` to ``end``; incipient, d x (t - start) / (peak - start) until
    ``peak``, then d until ``end``; 0 outside [start, end].
    """
    t = index.to_numpy()
    out = {}
    for _, lk in leaks.iterrows():
        on = (t >= lk["start"].to_datetime64()) & (t <= lk["end"].to_datetime64())
        if lk["type"] == "incipient" and lk["peak"] > lk["start"]:
            f = ((t - lk["start"].to_datetime64()) / (lk["peak"] - lk["start"]).to_timedelta64())
            d = lk["diameter_m"] * np.clip(f.astype(float), 0.0, 1.0)
        else:
            d = np.full(len(t), lk["diameter_m"])
        out[lk["pipe"]] = np.where(on, d, 0.0)
    return pd.DataFrame(out, index=index)


def leak_shapes(leaks: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Relative orifice area (d(t) / d)^2 in [0, 1] of each leak that runs within ``index``.

    The regressors of a known leak when calibrating on a training period that contains
    it (``ResidualModel.fit(known=...)``): at a given pressure, a leak's outflow is
    proportional to its orifice area.
    """
    d = leak_diameters(leaks, index)
    d = d.loc[:, (d > 0).any(axis=0)]
    diam = leaks.set_index("pipe")["diameter_m"]
    return (d / diam[d.columns]) ** 2


def read_leak_outflow(data_dir: Path | str | None = None) -> pd.DataFrame:
    """Each leak's outflow (m3/h) at the 105,120 5-minute steps of 2019; one column per pipe."""
    return pd.read_csv(_data_dir(data_dir) / "leak_outflow_2019_m3h.csv.gz", index_col=0,
                       parse_dates=True)


def read_sensor_placement(data_dir: Path | str | None = None) -> SensorPlacement:
    """The competition's sensors (``dataset_configuration.yalm``): 33 pressure, 3 flow, 1 level."""
    with open(_data_dir(data_dir) / "dataset_configuration.yalm") as f:
        cfg = yaml.safe_load(f)
    return SensorPlacement(
        pressure=tuple(str(s) for s in cfg["pressure_sensors"]),
        flow=tuple(str(s) for s in cfg["flow_sensors"]),
        level=tuple(str(s) for s in cfg["level_sensors"]),
        inflow=("p227", "p235"),
        amr=tuple(str(s) for s in cfg.get("amrs", [])),
    )


# --------------------------------------------------------------------------- reality
@dataclass(frozen=True)
class RealityConfig:
    """How the simulated reality differs from the nominal model, and the sensor noise.

    Fractions are relative (0.05 = 5 %). Defaults and the reason for each are in the
    module docstring.
    """

    seed: int = 2019
    roughness_rel: float = 0.05  # C x (1 + U(-r, r)) per pipe
    base_demand_rel: float = 0.10  # base demand x U(1 - r, 1 + r) per node
    daily_node_sigma: float = 0.05  # lognormal sigma per node per day
    seasonal_amp: float = 0.10  # 1 + A cos(2 pi (doy - 200) / 365.25)
    pattern_jitter: float = 0.05  # weekly pattern x (1 + N(0, s)) per hour of week
    step_sigma: float = 0.03  # network-wide AR(1) factor per 5-min step
    step_corr_s: float = 3600.0  # its correlation time
    pressure_noise_m: float = 0.10
    pressure_bias_m: float = 0.10
    flow_noise_rel: float = 0.01
    level_noise_m: float = 0.01
    round_to: float = 0.01

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class Reality:
    """The perturbed L-Town, its leak nodes, and the random fields that drive its demands."""

    wn: wntr.network.WaterNetworkModel
    config: RealityConfig
    leak_nodes: dict[str, str]  # leaky pipe -> its leak junction
    node_factor: dict[str, float]  # static base-demand factor per junction
    pattern_jitter: dict[str, np.ndarray]  # per pattern, 168 hourly factors


def build_reality(config: RealityConfig, leak_pipes: list[str],
                  wn: wntr.network.WaterNetworkModel | None = None) -> Reality:
    """Perturb the nominal L-Town into "reality" and split each leaky pipe for its leak node."""
    rng = np.random.default_rng(config.seed)
    wn = wntr.network.WaterNetworkModel(str(ltown_inp())) if wn is None else wn
    for _, pipe in sorted(wn.pipes()):
        pipe.roughness *= 1.0 + rng.uniform(-config.roughness_rel, config.roughness_rel)
    node_factor = {name: float(1.0 + rng.uniform(-config.base_demand_rel, config.base_demand_rel))
                   for name in sorted(wn.junction_name_list)}
    jitter = {name: 1.0 + config.pattern_jitter * rng.standard_normal(168)
              for name in sorted(wn.pattern_name_list)}
    leak_nodes = {}
    for pipe in leak_pipes:
        node = f"{pipe}_leaknode"
        wn = wntr.morph.split_pipe(wn, pipe, f"{pipe}_B", node, split_at_point=0.5,
                                  return_copy=False)
        pat = f"LEAK_{pipe}"
        wn.add_pattern(pat, [0.0])
        wn.get_node(node).add_demand(base=1.0 / 3600.0, pattern_name=pat)  # 1 m3/h x pattern
        leak_nodes[pipe] = node
    return Reality(wn, config, leak_nodes, node_factor, jitter)


def _seasonal(index: pd.DatetimeIndex, amp: float) -> np.ndarray:
    doy = index.dayofyear.to_numpy() + (index.hour.to_numpy() + index.minute.to_numpy() / 60) / 24
    return 1.0 + amp * np.cos(2 * np.pi * (doy - 200.0) / 365.25)


LEAK_CD = 0.75  # discharge coefficient of a leak orifice (as in WNTR's leak model)
GRAVITY = 9.81  # m/s2


def simulate_sensors(reality: Reality, index: pd.DatetimeIndex, placement: SensorPlacement,
                     leak_outflow: pd.DataFrame | None = None, seed: int = 0,
                     leak_diameter: pd.DataFrame | None = None,
                     leak_flow_out: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Run reality with EPANET over ``index`` (5-min steps); true (noise-free) sensor values.

    Columns: pressure sensors (m), flow sensors (m3/h), level sensors (m). The leak
    outflows (m3/h, rows aligned with ``index``) are drawn at the leak nodes. Leaks given
    instead by ``leak_diameter`` (m, per step, as ``leak_diameters``) are pressure-driven
    orifices, EPANET emitters with q = K sqrt(p), K = Cd pi d^2 / 4 sqrt(2 g) x 3600
    ((m3/h) / m^0.5, Cd = 0.75, p the leak node's pressure in m); their outflow
    q(t) (m3/h) is written into ``leak_flow_out[pipe]`` if a dict is given.
    """
    cfg = reality.config
    rng = np.random.default_rng([cfg.seed, seed, 7])
    n = len(index)
    wstep = week_steps(index)
    season = _seasonal(index, cfg.seasonal_amp)
    phi = np.exp(-STEP_S / cfg.step_corr_s)
    eps = rng.standard_normal(n) * cfg.step_sigma * np.sqrt(1 - phi**2)
    ar = np.empty(n)
    ar[0] = rng.standard_normal() * cfg.step_sigma
    for k in range(1, n):  # AR(1), stationary sigma = step_sigma
        ar[k] = phi * ar[k - 1] + eps[k]
    global_factor = np.clip(1.0 + ar, 0.5, 1.5)
    hour_of_week = wstep // 12
    wn = reality.wn
    with EpanetSession(wn) as ep:
        ep.set_time(EN_DURATION, (n - 1) * STEP_S)
        ep.set_time(EN_HYDSTEP, STEP_S)
        ep.set_time(EN_PATTERNSTEP, STEP_S)
        ep.set_time(EN_REPORTSTEP, STEP_S)
        for name in wn.pattern_name_list:
            if name.startswith("LEAK_"):
                pipe = name[5:]
                q = (leak_outflow[pipe].to_numpy() if leak_outflow is not None
                     and pipe in leak_outflow else np.zeros(n)).astype(float)
                ep.set_pattern(name, q[:n])
                continue
            base = np.asarray(wn.get_pattern(name).multipliers, dtype=float)
            mult = base[wstep % len(base)] * reality.pattern_jitter[name][hour_of_week]
            if name != "P-Industrial":
                mult = mult * season
            ep.set_pattern(name, mult * global_factor)
        # demand categories to perturb per day: (node index, demand index, real base)
        cats = []
        for name in sorted(reality.node_factor):
            idx = ep.node_index(name)
            for d in range(1, ep.num_demands(idx) + 1):
                b = ep.base_demand(idx, d)
                if b > 0:
                    cats.append((idx, d, b * reality.node_factor[name]))
        n_days = (n + STEPS_PER_DAY - 1) // STEPS_PER_DAY + 1
        node_ids = sorted({c[0] for c in cats})
        day_noise = {i: np.exp(cfg.daily_node_sigma * rng.standard_normal(n_days)
                               - 0.5 * cfg.daily_node_sigma**2) for i in node_ids}
        p_idx = [ep.node_index(s) for s in placement.pressure]
        f_idx = [ep.link_index(s) for s in placement.flow]
        l_idx = [ep.node_index(s) for s in placement.level]
        n_p, n_f = len(p_idx), len(f_idx)
        out = np.full((n, n_p + n_f + len(l_idx)), np.nan)
        day0 = int((index[0] - index[0].normalize()) / pd.Timedelta(seconds=STEP_S))
        k_orifice = LEAK_CD * np.pi / 4 * np.sqrt(2 * GRAVITY) * 3600.0
        emit = []  # (pipe, node index, K per step)
        if leak_diameter is not None:
            for pipe in leak_diameter.columns:
                node = reality.leak_nodes[pipe]
                kk = k_orifice * leak_diameter[pipe].to_numpy(dtype=float)[:n] ** 2
                emit.append((pipe, ep.node_index(node), kk))
        emit_q = np.zeros((n, len(emit)))
        emit_k = np.full(len(emit), -1.0)

        def set_emitters(k: int) -> None:
            for j, (_, i, kk) in enumerate(emit):
                if kk[k] != emit_k[j]:
                    ep.set_node_value(i, EN_EMITTER, kk[k])
                    emit_k[j] = kk[k]

        def set_day(day: int) -> None:
            for idx, d, b in cats:
                ep.set_base_demand(idx, d, b * day_noise[idx][day])

        set_day(0)
        set_emitters(0)
        ep.init_hydraulics()
        while True:
            t = ep.run_step()
            if t % STEP_S == 0:
                k = t // STEP_S
                if k >= n:
                    break
                row = out[k]
                for j, (_, i, _kk) in enumerate(emit):
                    emit_q[k, j] = emit_k[j] * np.sqrt(max(ep.node_value(i, EN_PRESSURE), 0.0))
                if k + 1 < n:
                    set_emitters(k + 1)
                for j, i in enumerate(p_idx):
                    row[j] = ep.node_value(i, EN_PRESSURE)
                for j, i in enumerate(f_idx):
                    row[n_p + j] = ep.link_value(i, EN_FLOW)
                for j, i in enumerate(l_idx):
                    row[n_p + n_f + j] = ep.node_value(i, EN_PRESSURE)
                if (k + 1 + day0) % STEPS_PER_DAY == 0:  # next step starts a new day
                    set_day((k + 1 + day0) // STEPS_PER_DAY)
            if ep.next_step() <= 0:
                break
    if leak_flow_out is not None:
        for j, (pipe, _, _) in enumerate(emit):
            leak_flow_out[pipe] = emit_q[:, j]
    cols = list(placement.pressure) + list(placement.flow) + list(placement.level)
    return pd.DataFrame(out, index=index, columns=cols)


def add_sensor_noise(true: pd.DataFrame, placement: SensorPlacement, config: RealityConfig,
                     seed: int = 0) -> pd.DataFrame:
    """Measured = true + noise, rounded to ``config.round_to`` (see ``RealityConfig``).

    The per-sensor pressure offset depends only on ``config.seed`` (the same transducer
    in every period); the white noise on ``seed`` too.
    """
    bias_rng = np.random.default_rng([config.seed, 11])
    rng = np.random.default_rng([config.seed, seed, 13])
    out = true.copy()
    p = list(placement.pressure)
    bias = config.pressure_bias_m * bias_rng.standard_normal(len(p))
    out[p] = true[p].to_numpy() + bias + config.pressure_noise_m * rng.standard_normal(
        (len(true), len(p)))
    f = list(placement.flow)
    out[f] = true[f].to_numpy() * (1 + config.flow_noise_rel * rng.standard_normal(
        (len(true), len(f))))
    lv = list(placement.level)
    out[lv] = true[lv].to_numpy() + config.level_noise_m * rng.standard_normal(
        (len(true), len(lv)))
    return (out / config.round_to).round() * config.round_to


TRAIN_START = pd.Timestamp("2018-12-04 00:00")  # a Tuesday; 28 days up to 2019-01-01


def reconstruct(config: RealityConfig | None = None, cache_dir: Path | str | None = None,
                data_dir: Path | str | None = None, train_days: int = 28,
                train_old_leaks: bool = True,
                verbose: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measured SCADA tables (training period, 2019): simulated, noised, cached.

    Training: the ``train_days`` days before 2019 (from ``TRAIN_START``), with the four
    leaks that started in 2018 and run through 2019 already there (drawing the outflow
    of the first days of 2019: they have reached their plateau); with
    ``train_old_leaks=False`` the training period is leak-free instead (so those four
    leaks look new on 2019-01-01). 2019: all 23 leaks.
    Cached as parquet under ``cache_dir`` (keyed by the config); returns copies.
    """
    config = config or RealityConfig()
    placement = read_sensor_placement(data_dir)
    leaks = read_leaks(data_dir)
    outflow = read_leak_outflow(data_dir)
    paths = None
    if cache_dir is not None:
        d = Path(cache_dir)
        d.mkdir(parents=True, exist_ok=True)
        key = f"{config.key()}_{train_days}"
        paths = (d / f"train_{key}{'' if train_old_leaks else '_leakfree'}.parquet",
                 d / f"2019_{key}.parquet")
        if all(p.exists() for p in paths):
            return pd.read_parquet(paths[0]), pd.read_parquet(paths[1])
    old = leaks[leaks["start"] < YEAR_START]["pipe"].tolist() if train_old_leaks else []
    n_train = train_days * STEPS_PER_DAY
    idx_train = pd.date_range(YEAR_START - pd.Timedelta(days=train_days), periods=n_train,
                              freq="5min")
    q_train = outflow[old].iloc[:n_train].set_axis(idx_train)
    t0 = time.perf_counter()
    reality = build_reality(config, old)
    train = simulate_sensors(reality, idx_train, placement, q_train, seed=1)
    t1 = time.perf_counter()
    year_path = paths[1] if paths is not None else None
    if year_path is not None and year_path.exists():
        year = pd.read_parquet(year_path)
        year_noisy = True
    else:
        reality = build_reality(config, leaks["pipe"].tolist())
        year = simulate_sensors(reality, pd.DatetimeIndex(outflow.index), placement, outflow,
                                seed=2)
        year_noisy = False
    t2 = time.perf_counter()
    if verbose:
        print(f"simulated training {train_days} d in {t1 - t0:.1f} s, 2019 in {t2 - t1:.1f} s")
    train = add_sensor_noise(train, placement, config, seed=1)
    if not year_noisy:
        year = add_sensor_noise(year, placement, config, seed=2)
    if paths is not None:
        train.to_parquet(paths[0])
        year.to_parquet(paths[1])
    return train, year


# --------------------------------------------------------------------------- scoring
class PipeDistance:
    """Pipe-to-pipe distance (m) of the BattLeDIM scoring code on a network model.

    0 for the same pipe; else min over end-node pairs of the shortest path along pipes
    (weights = lengths; pumps and valves are no edges) + half of each pipe's length.
    """

    def __init__(self, wn: wntr.network.WaterNetworkModel) -> None:
        g = nx.Graph()
        self._ends: dict[str, tuple[str, str]] = {}
        self._len: dict[str, float] = {}
        for name, pipe in wn.pipes():
            a, b = pipe.start_node_name, pipe.end_node_name
            self._ends[name] = (a, b)
            self._len[name] = float(pipe.length)
            if g.has_edge(a, b):
                g[a][b]["w"] = float(pipe.length)  # the MATLAB matrix keeps the last one
            else:
                g.add_edge(a, b, w=float(pipe.length))
        for name, link in wn.links():
            if name not in self._ends:  # pumps, valves: known for their ends only
                self._ends[name] = (link.start_node_name, link.end_node_name)
                self._len[name] = 0.0
        g.add_nodes_from(wn.node_name_list)
        self._g = g
        self._sp: dict[str, dict[str, float]] = {}

    def _from(self, node: str) -> dict[str, float]:
        if node not in self._sp:
            self._sp[node] = nx.single_source_dijkstra_path_length(self._g, node, weight="w")
        return self._sp[node]

    def __call__(self, pipe_a: str, pipe_b: str) -> float:
        if pipe_a == pipe_b:
            return 0.0
        if pipe_a not in self._ends or pipe_b not in self._ends:
            return float("inf")
        best = min(self._from(u).get(v, float("inf"))
                   for u in self._ends[pipe_a] for v in self._ends[pipe_b])
        return best + self._len[pipe_a] / 2 + self._len[pipe_b] / 2


@dataclass
class ScoreReport:
    """Result of ``score_detections``.

    ``rows``: one per detection in time order (time, pipe, leak matched or None,
    distance_m, score_eur, kind in true/repeat/false/ignored).
    """

    total_eur: float
    true_detections: int
    false_detections: int
    missed: int
    rows: pd.DataFrame = field(repr=False)

    @property
    def share_of_perfect(self) -> float:
        return self.total_eur / PERFECT_SCORE_EUR

    @property
    def mean_distance_m(self) -> float:
        d = self.rows.loc[self.rows["kind"] == "true", "distance_m"]
        return float(d.mean()) if len(d) else float("nan")


def _step(t: pd.Timestamp, year_start: pd.Timestamp = YEAR_START) -> int:
    return int(round((pd.Timestamp(t) - year_start) / pd.Timedelta(seconds=STEP_S)))


def score_detections(detections: pd.DataFrame | list[tuple[pd.Timestamp, str]],
                     leaks: pd.DataFrame | None = None, outflow: pd.DataFrame | None = None,
                     distance: PipeDistance | None = None,
                     year_start: pd.Timestamp | None = None) -> ScoreReport:
    """Score detections (time, pipe) with the BattLeDIM rule (module docstring), in EUR.

    ``year_start``: the first step of the scored period (default 2019-01-01 00:00; the
    outflow rows must start there); detections before it are ignored. With another
    period (e.g. the 2018 tuning year) ``leaks`` and ``outflow`` must be that period's.
    """
    y0 = YEAR_START if year_start is None else pd.Timestamp(year_start)
    leaks = read_leaks() if leaks is None else leaks
    outflow = read_leak_outflow() if outflow is None else outflow
    if distance is None:
        distance = PipeDistance(wntr.network.WaterNetworkModel(str(ltown_inp())))
    det = (pd.DataFrame(detections, columns=["time", "pipe"]) if isinstance(detections, list)
           else detections[["time", "pipe"]].copy())
    det["time"] = pd.to_datetime(det["time"])
    det = det.sort_values("time", kind="stable").reset_index(drop=True)
    t0 = [_step(t, y0) for t in leaks["start"]]
    t1 = [_step(t, y0) for t in leaks["end"]]
    series = {p: outflow[p].to_numpy() for p in leaks["pipe"]}
    detected: set[int] = set()
    rows = []
    for time_, pipe in zip(det["time"], det["pipe"], strict=True):
        td = _step(time_, y0)
        if td < 0:
            rows.append((time_, pipe, None, np.nan, 0.0, "ignored"))
            continue
        hits = []
        for j, lp in enumerate(leaks["pipe"]):
            x = distance(pipe, lp)
            if t0[j] <= td <= t1[j] and x <= MAX_DISTANCE_M:
                hits.append((x, j))
        fresh = [(x, j) for x, j in hits if j not in detected]
        if not hits:
            rows.append((time_, pipe, None, np.nan, -COST_CREW_EUR, "false"))
        elif not fresh:
            rows.append((time_, pipe, None, np.nan, 0.0, "repeat"))
        else:
            x, j = min(fresh)
            detected.add(j)
            water_m3 = series[leaks["pipe"][j]][max(td, 1) - 1:].sum() / 12.0
            eur = water_m3 * COST_WATER_EUR_M3 - x / MAX_DISTANCE_M * COST_CREW_EUR
            rows.append((time_, pipe, leaks["pipe"][j], x, eur, "true"))
    df = pd.DataFrame(rows, columns=["time", "pipe", "leak", "distance_m", "score_eur", "kind"])
    return ScoreReport(
        total_eur=round(float(df["score_eur"].sum()), 2),
        true_detections=len(detected),
        false_detections=int((df["kind"] == "false").sum()),
        missed=len(leaks) - len(detected),
        rows=df,
    )


def perfect_detections(leaks: pd.DataFrame | None = None,
                       year_start: pd.Timestamp | None = None) -> pd.DataFrame:
    """The competition's PERFECT_TEAM: every leak at its start (2018 leaks at 2019-01-01 00:05).

    With ``year_start``, leaks that started before it are reported 5 min after it and
    leaks that ended before it are left out.
    """
    leaks = read_leaks() if leaks is None else leaks
    y0 = YEAR_START if year_start is None else pd.Timestamp(year_start)
    leaks = leaks[leaks["end"] >= y0]
    t = [max(s, y0 + pd.Timedelta(minutes=5)) for s in leaks["start"]]
    return pd.DataFrame({"time": t, "pipe": leaks["pipe"]})


# --------------------------------------------------------------------------- 2018
YEAR_2018 = pd.Timestamp("2018-01-01 00:00")


def reconstruct_2018(config: RealityConfig | None = None, cache_dir: Path | str | None = None,
                     data_dir: Path | str | None = None,
                     verbose: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training year as the competition gave it: 2018 SCADA with its 14 known leaks.

    The same reality as ``reconstruct`` (same ``config``: same pipes, demands, sensor
    offsets), simulated from 2018-01-01 00:00 to 2018-12-31 23:55 (105,120 steps) with
    the leaks of ``dataset_configuration_historical.yalm`` as pressure-driven orifices
    (``leak_diameters``, ``simulate_sensors``); the 2018 outflows were not published, so
    they are what the orifices deliver. Sensor white noise from its own seed (3).
    Returns (measured readings, leak outflow m3/h per 5-min step, one column per pipe),
    cached as parquet under ``cache_dir`` (keyed by the config).
    """
    config = config or RealityConfig()
    placement = read_sensor_placement(data_dir)
    leaks = read_leaks(data_dir, year=2018)
    paths = None
    if cache_dir is not None:
        d = Path(cache_dir)
        d.mkdir(parents=True, exist_ok=True)
        paths = (d / f"2018_{config.key()}.parquet", d / f"2018_{config.key()}_outflow.parquet")
        if all(p.exists() for p in paths):
            return pd.read_parquet(paths[0]), pd.read_parquet(paths[1])
    index = pd.date_range(YEAR_2018, periods=365 * STEPS_PER_DAY, freq="5min")
    diam = leak_diameters(leaks, index)
    t0 = time.perf_counter()
    reality = build_reality(config, leaks["pipe"].tolist())
    flows: dict[str, np.ndarray] = {}
    true = simulate_sensors(reality, index, placement, seed=3, leak_diameter=diam,
                            leak_flow_out=flows)
    if verbose:
        print(f"simulated 2018 in {time.perf_counter() - t0:.1f} s")
    measured = add_sensor_noise(true, placement, config, seed=3)
    outflow = pd.DataFrame(flows, index=index)[list(leaks["pipe"])]
    if paths is not None:
        measured.to_parquet(paths[0])
        outflow.to_parquet(paths[1])
    return measured, outflow
