"""Drainage engine: the SWMM engine (pyswmm) on the twin's drainage network.

:func:`run_drainage` writes the network as a SWMM INP file in a temporary folder
(:func:`rescity.io.swmm.write_swmm`; pyswmm writes its report and output files beside the
input, never beside the user's model), optionally replaces the rain, and runs it:

* ``rainfall_mm_h``: rainfall intensities (mm/h), one per ``rain_step_s`` from the start;
  every rain gauge of the model is pointed at this series (``INTENSITY``, converted to
  in/h for models in US units), the simulation runs from the model's start for
  ``horizon_s`` and reports every ``step_s``. Without a rainfall the model's own rain,
  period and report step are kept unless ``horizon_s``/``step_s`` are given.
* :class:`~.conditions.Outage` of a pump, :class:`~.conditions.Closure` of a pump,
  orifice, weir or outlet: its setting is 0 while active and 1 (fully open) after;
  before, the model's own setting and controls apply.

Results per node (junctions, storage, dividers, outfalls): the cumulative flooded volume
(m3) and the flooding rate (m3/s) at each report time, the water depth (m), the maximum
depth (m), and the hours of surcharge and of flooding over the run (SWMM's node
statistics); the total flooded volume (m3); and the report's continuity tables
(``continuity["runoff"]["Total Precipitation"]`` etc., as printed: acre-feet in US-unit
models, hectare-metres in SI ones).

Service level of a node at time t: 1 when it does not flood, 0 while it floods (flooding
rate above 1e-6 m3/s); overall: the share of nodes not flooding.

Limits: SWMM allows one open simulation per process (run ensembles in worker processes);
a conduit cannot be closed during a run (SWMM conduits have no setting).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from rescity.model.enums import NetworkType
from rescity.model.network import Network

from .conditions import Closure, Condition, Outage, UnknownElementError, for_network, time_grid
from .result import ServiceResult

FT = 0.3048
FT3 = FT**3
IN_MM = 25.4
#: flow units -> m3/s per unit
FLOW_TO_M3S = {
    "CFS": FT3, "GPM": 3.785411784e-3 / 60, "MGD": 3785.411784 / 86400,
    "CMS": 1.0, "LPS": 1e-3, "MLD": 1000.0 / 86400,
}
US_UNITS = frozenset({"CFS", "GPM", "MGD"})
#: a node floods when its flooding rate exceeds this (m3/s)
FLOODING_M3S = 1e-6
RAIN_SERIES = "RESCITY_RAIN"
#: options every run sets unless ``options`` overrides them: one routing thread (SWMM's
#: OpenMP threads slow a shared 2-core machine down by 10x or more on beta; ensembles
#: parallelise over processes instead)
DEFAULT_OPTIONS = {"THREADS": "1"}
_SETTABLE = ("pump", "orifice", "weir", "outlet")
_NUMBER_ROW = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*\.+\s+(-?[\d.]+)")


@dataclass
class DrainageResult(ServiceResult):
    """Hydraulics of one run; frames indexed by ``t_s``, columns node uids.

    ``flood_volume_m3``: cumulative flooded volume (m3); ``flooding_m3s``: flooding rate
    (m3/s); ``depth_m``: water depth (m); ``link_flow_m3s``: flow in every link (m3/s,
    positive from its start to its end node; columns link uids); ``max_depth_m``, ``surcharge_hours``,
    ``flooding_hours``: per node over the run; ``continuity``: the report's runoff and
    routing continuity tables in report units (``units`` names the flow units).
    """

    flood_volume_m3: pd.DataFrame = field(default_factory=pd.DataFrame)
    flooding_m3s: pd.DataFrame = field(default_factory=pd.DataFrame)
    depth_m: pd.DataFrame = field(default_factory=pd.DataFrame)
    link_flow_m3s: pd.DataFrame = field(default_factory=pd.DataFrame)
    max_depth_m: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    surcharge_hours: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    flooding_hours: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    continuity: dict[str, dict[str, float]] = field(default_factory=dict)
    units: str = ""

    @property
    def total_flood_m3(self) -> float:
        """Total flooded volume over the run (m3), from the nodes' statistics."""
        return float(self.flood_volume_m3.iloc[-1].sum()) if len(self.flood_volume_m3) else 0.0

    def flooded_nodes(self) -> list[str]:
        """Uids of the nodes that flooded at some time."""
        v = self.flood_volume_m3.iloc[-1]
        return [str(u) for u in v.index[v > 0]]


def run_drainage(
    network: Network,
    conditions: list[Condition] | tuple[Condition, ...] = (),
    horizon_s: float | None = None,
    step_s: float | None = None,
    *,
    rainfall_mm_h: np.ndarray | list[float] | None = None,
    rain_step_s: float = 300.0,
    options: dict[str, str] | None = None,
) -> DrainageResult:
    """Run ``network`` with SWMM (see the module docstring). ``horizon_s`` defaults to
    the rain's duration plus 6 h with a rainfall, to the model's own period without;
    ``step_s`` to 300 s with a rainfall, to the model's report step without.
    ``options``: [OPTIONS] values to override for this run (e.g. ``{"THREADS": "1"}``,
    ``{"ROUTING_STEP": "00:00:30"}``), written as given; ``THREADS`` is 1 unless given
    (see ``DEFAULT_OPTIONS``)."""
    from rescity.io.swmm import write_swmm

    if network.type is not NetworkType.DRAINAGE:
        raise ValueError(f"network {network.name!r} is {network.type.value}, not drainage")
    mine = for_network(network, conditions)
    for c in mine:
        kind = network.links[c.element].kind if c.element in network.links else \
            network.nodes[c.element].kind
        if not isinstance(c, (Outage, Closure)) or kind not in _SETTABLE:
            raise UnknownElementError(
                f"{type(c).__name__} {c.uid!r}: the drainage engine applies outages and "
                f"closures to {', '.join(_SETTABLE)}, found a {kind}"
            )
    rain = None if rainfall_mm_h is None else np.asarray(rainfall_mm_h, dtype=float)
    if rain is not None:
        if rain.ndim != 1 or len(rain) == 0 or (rain < 0).any() or not np.isfinite(rain).all():
            raise ValueError("rainfall_mm_h must be a non-empty series of intensities >= 0 mm/h")
        if horizon_s is None:
            horizon_s = len(rain) * rain_step_s + 6 * 3600.0
        step_s = 300.0 if step_s is None else step_s
    with tempfile.TemporaryDirectory(prefix="rescity-drainage-") as tmp:
        inp = Path(tmp) / "model.inp"
        write_swmm(network, inp)
        text = inp.read_text(errors="replace")
        units = _option(text, "FLOW_UNITS") or "CFS"
        start = _start(text)
        if horizon_s is None:
            end = _datetime(_option(text, "END_DATE"), _option(text, "END_TIME"))
            horizon_s = (end - start).total_seconds()
        if step_s is None:
            step_s = _hms(_option(text, "REPORT_STEP") or "00:15:00")
        times = time_grid(horizon_s, step_s)
        text = _set_period(text, start, horizon_s, step_s, {**DEFAULT_OPTIONS, **(options or {})})
        if rain is not None:
            scale = 1.0 / IN_MM if units in US_UNITS else 1.0
            text = _set_rain(text, rain * scale, rain_step_s)
        inp.write_text(text)
        return _simulate(network, inp, mine, times, units)


def _simulate(
    network: Network, inp: Path, conditions: list[Condition], times: np.ndarray, units: str
) -> DrainageResult:
    from pyswmm import Links, Nodes, Simulation

    flow = FLOW_TO_M3S[units]
    length = FT if units in US_UNITS else 1.0
    volume = FT3 if units in US_UNITS else 1.0
    rows_t: list[float] = [0.0]
    with Simulation(str(inp), reportfile=str(inp.with_suffix(".rpt")),
                    outputfile=str(inp.with_suffix(".out"))) as sim:
        nodes = list(Nodes(sim))
        ids = [n.nodeid for n in nodes]
        links = {lk.linkid: lk for lk in Links(sim)}
        targets = [(c, links[network.links[c.element].file_id]) for c in conditions]
        k = len(ids)
        vol = [np.zeros(k)]
        rate = [np.zeros(k)]
        depth = [np.array([n.depth for n in nodes])]
        link_list = list(links.values())
        lflow = [np.array([lk.flow for lk in link_list])]
        sim.step_advance(int(times[1] - times[0]))
        t0 = sim.start_time
        was: dict[int, bool] = {}
        _settings(targets, 0.0, was)
        for _ in sim:
            t = (sim.current_time - t0).total_seconds()
            rows_t.append(t)
            stats = [n.statistics for n in nodes]
            vol.append(np.array([s["flooding_volume"] for s in stats]))
            rate.append(np.array([n.flooding for n in nodes]))
            depth.append(np.array([n.depth for n in nodes]))
            lflow.append(np.array([lk.flow for lk in link_list]))
            _settings(targets, t, was)
        stats = [n.statistics for n in nodes]
        sim.report()
    rpt = inp.with_suffix(".rpt").read_text(errors="replace")
    tt = np.asarray(rows_t)
    cols = [network.uid(i) for i in ids]

    def frame(rows: list[np.ndarray], scale: float, cumulative: bool,
              names: list[str] = cols) -> pd.DataFrame:
        a = np.vstack(rows) * scale
        out = np.empty((len(times), a.shape[1]))
        for j in range(a.shape[1]):
            out[:, j] = np.interp(times, tt, a[:, j]) if cumulative else \
                a[np.clip(np.searchsorted(tt, times - 1e-6), 0, len(tt) - 1), j]
        return pd.DataFrame(out, index=pd.Index(times, name="t_s"), columns=names)

    vol_f = frame(vol, volume, True)
    rate_f = frame(rate, flow, False)
    depth_f = frame(depth, length, False)
    twin_link = {lk.file_id: lk.id for lk in network.links.values()}
    flow_f = frame(lflow, flow, False, [network.uid(twin_link.get(i, i)) for i in links])
    service = (rate_f <= FLOODING_M3S).astype(float)
    return DrainageResult(
        times_s=times,
        service=service,
        weights=pd.Series(1.0, index=cols),
        flood_volume_m3=vol_f,
        flooding_m3s=rate_f,
        depth_m=depth_f,
        link_flow_m3s=flow_f,
        max_depth_m=pd.Series([s["max_depth"] * length for s in stats], index=cols),
        surcharge_hours=pd.Series([s["surcharge_duration"] for s in stats], index=cols),
        flooding_hours=pd.Series([s["flooding_duration"] for s in stats], index=cols),
        continuity=continuity(rpt),
        units=units,
    )


def _settings(targets: list[tuple[Condition, object]], t: float, was: dict[int, bool]) -> None:
    """Setting 0 for the links whose condition becomes active at ``t``, 1 for those whose
    conditions all ended (``was``: each link's state so far; a link no condition has
    touched yet keeps the model's own setting and controls)."""
    active: dict[int, bool] = {}
    for c, link in targets:
        active[id(link)] = active.get(id(link), False) or c.active(t)
    for _c, link in targets:
        now = active[id(link)]
        if was.get(id(link), False) != now:
            link.target_setting = 0.0 if now else 1.0  # type: ignore[attr-defined]
            was[id(link)] = now


def continuity(report: str) -> dict[str, dict[str, float]]:
    """The first column of the runoff and flow routing continuity tables of a SWMM
    report (``{"runoff": {"Total Precipitation": 15.679, ...}, "routing": {...}}``)."""
    tables = {"runoff": "Runoff Quantity Continuity", "routing": "Flow Routing Continuity"}
    out: dict[str, dict[str, float]] = {}
    lines = report.splitlines()
    for key, title in tables.items():
        start = next((i for i, ln in enumerate(lines) if title in ln), None)
        rows: dict[str, float] = {}
        if start is not None:
            for ln in lines[start + 2:]:
                if not ln.strip():
                    break
                m = _NUMBER_ROW.match(ln)
                if m:
                    rows[m.group(1).strip()] = float(m.group(2))
        out[key] = rows
    return out


# -- editing the INP text ----------------------------------------------------------------


def _sections(text: str) -> list[tuple[str | None, list[str]]]:
    """The file as (section name or None for the preamble, lines incl. header) blocks."""
    blocks: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and "]" in s:
            blocks.append((s[1:s.index("]")].upper(), [line]))
        else:
            blocks[-1][1].append(line)
    return blocks


def _join(blocks: list[tuple[str | None, list[str]]]) -> str:
    return "\n".join(line for _, lines in blocks for line in lines) + "\n"


def _rows(lines: list[str]) -> list[int]:
    """Indices of the data rows of a block (not the header, comments or blanks)."""
    return [i for i, ln in enumerate(lines[1:], 1) if ln.strip() and not ln.strip().startswith(";")]


def _option(text: str, key: str) -> str | None:
    for name, lines in _sections(text):
        if name == "OPTIONS":
            for i in _rows(lines):
                f = lines[i].split()
                if f[0].upper() == key and len(f) > 1:
                    return f[1]
    return None


def _datetime(date: str | None, clock: str | None) -> datetime:
    d = datetime.strptime(date or "01/01/2000", "%m/%d/%Y")
    return d + timedelta(seconds=_hms(clock or "00:00:00"))


def _start(text: str) -> datetime:
    return _datetime(_option(text, "START_DATE"), _option(text, "START_TIME"))


def _hms(clock: str) -> float:
    parts = [float(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.append(0.0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _set_period(
    text: str, start: datetime, horizon_s: float, step_s: float, extra: dict[str, str]
) -> str:
    """Report from the start, end at start + horizon, report every step (and the
    ``extra`` options)."""
    end = start + timedelta(seconds=horizon_s)
    values = {**{k.upper(): str(v) for k, v in extra.items()},
        "REPORT_START_DATE": start.strftime("%m/%d/%Y"), "REPORT_START_TIME": start.strftime("%H:%M:%S"),
        "END_DATE": end.strftime("%m/%d/%Y"), "END_TIME": end.strftime("%H:%M:%S"),
        "REPORT_STEP": _clock(step_s),
    }
    blocks = _sections(text)
    for name, lines in blocks:
        if name == "OPTIONS":
            seen = set()
            for i in _rows(lines):
                key = lines[i].split()[0].upper()
                if key in values:
                    lines[i] = f"{key:<20} {values[key]}"
                    seen.add(key)
            lines.extend(f"{k:<20} {v}" for k, v in values.items() if k not in seen)
    return _join(blocks)


def _set_rain(text: str, intensity: np.ndarray, step_s: float) -> str:
    """Every rain gauge reads ``intensity`` (model units per hour) every ``step_s``."""
    blocks = _sections(text)
    interval = _clock(step_s)[:5]
    names = [n for n, _ in blocks]
    for name, lines in blocks:
        if name == "RAINGAGES":
            for i in _rows(lines):
                gauge = lines[i].split()[0]
                lines[i] = f"{gauge:<16} INTENSITY {interval} 1.0 TIMESERIES {RAIN_SERIES}"
    series = [f"{RAIN_SERIES:<16} {k * step_s / 3600:.6f} {v:.6g}" for k, v in enumerate(intensity)]
    series.append(f"{RAIN_SERIES:<16} {len(intensity) * step_s / 3600:.6f} 0")
    if "TIMESERIES" in names:
        blocks[names.index("TIMESERIES")][1].extend(series)
    else:
        blocks.append(("TIMESERIES", ["[TIMESERIES]", *series]))
    return _join(blocks)
