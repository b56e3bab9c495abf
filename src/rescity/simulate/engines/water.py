"""Water supply engine: WNTR's WNTRSimulator with pressure-driven demand.

:func:`water_model` turns the twin's water network into a
``wntr.network.WaterNetworkModel`` (the native WNTR model with the twin's values
applied, exactly what :func:`rescity.io.epanet.write_epanet` writes, without the file).
:func:`run_water` applies the conditions and simulates the horizon:

* :class:`~.conditions.Leak` on a pipe: the pipe is split at its midpoint
  (``wntr.morph.split_pipe``) and the new junction leaks through ``area_m2``; on a
  junction: the junction leaks. Outflow q = Cd A sqrt(2 g h) (m3/s), WNTR's leak model,
  from ``start_s`` to ``end_s`` (the repair).
* :class:`~.conditions.Break` on a pipe: ``wntr.morph.break_pipe`` disconnects the two
  halves, each end leaking through the full section A = pi d^2 / 4; the repair at
  ``end_s`` stops both leaks and reconnects the halves (a short bypass pipe of the same
  diameter, closed during the break, is opened).
* :class:`~.conditions.Closure` of a pipe or valve: the link is closed from ``start_s``
  and reopened at ``end_s`` (a closed broken pipe closes both halves: the break is
  isolated).
* :class:`~.conditions.Outage` of a pump: WNTR's pump outage (a very-high-priority rule
  holds the pump closed, over the model's own level controls); of a tank or reservoir:
  every link connected to it is closed (the source is unavailable).

Pressure-driven demand (Wagner et al. 1988, WNTR's PDD): a junction receives
d = D (p - p_min)^e / (p_req - p_min)^e for p_min < p < p_req, D above p_req and 0 below
p_min (D the expected demand, p the pressure head in m, e = 0.5).

Service level of a customer (a junction with base demand > 0) at time t: served demand
over expected demand, d(t) / D(t), clipped to [0, 1] (1 when nothing is expected then);
overall: total served over total expected demand. A customer is without water when its
level is below a threshold (0.5 by default).

Limits: WNTRSimulator solves the network at every report step (no sub-step dynamics);
condition times are rounded up to the next step; water quality is not simulated.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rescity.model.enums import NetworkType
from rescity.model.network import Network

from .conditions import (
    Break,
    Closure,
    Condition,
    Leak,
    Outage,
    UnknownElementError,
    for_network,
    time_grid,
)
from .result import ServiceResult

if TYPE_CHECKING:
    import wntr

#: default PDD pressures (m of head): no water below, full demand above
MINIMUM_PRESSURE_M = 0.0
REQUIRED_PRESSURE_M = 20.0
#: a customer below this service level is counted as without water
WITHOUT_WATER_BELOW = 0.5
#: length of the bypass that reconnects a repaired break (m)
_REPAIR_LENGTH_M = 1.0


def water_model(network: Network) -> wntr.network.WaterNetworkModel:
    """The WNTR model of a water network: its native model with the twin's nodes, links
    and attributes applied (the same model :func:`rescity.io.epanet.write_epanet` writes,
    built in memory). Link names are the file's ids (``attrs["file_id"]``)."""
    import wntr

    from rescity.io import epanet

    if network.type is not NetworkType.WATER:
        raise ValueError(f"network {network.name!r} is {network.type.value}, not water")
    net = network.with_file_ids()
    # io/epanet.py has no public in-memory export yet; these are write_epanet's steps
    data, _units = epanet._native_model(net)
    removed = epanet._sync_nodes(data, net) | epanet._sync_links(data, net)
    epanet._prune(data, removed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return wntr.network.from_dict(data)


@dataclass
class WaterResult(ServiceResult):
    """Hydraulics of one run. Frames are indexed by ``t_s``; columns are asset uids.

    * ``service``: customers' served fraction d/D (0..1); ``weights``: expected demand D
      (m3/s) of each customer at each time.
    * ``demand_m3s`` / ``expected_m3s``: served and expected demand of the customers (m3/s).
    * ``pressure_m``: pressure head at the twin's junctions (m).
    * ``leak_m3s``: outflow of each leak or break (m3/s), columns named by the condition's
      uid (a break's two ends are summed).
    """

    demand_m3s: pd.DataFrame = field(default_factory=pd.DataFrame)
    expected_m3s: pd.DataFrame = field(default_factory=pd.DataFrame)
    pressure_m: pd.DataFrame = field(default_factory=pd.DataFrame)
    leak_m3s: pd.DataFrame = field(default_factory=pd.DataFrame)

    def without_water(self, threshold: float = WITHOUT_WATER_BELOW) -> pd.DataFrame:
        """Customers below ``threshold`` service level at each time (bool frame)."""
        return self.service < threshold

    def customers_without_water(self, threshold: float = WITHOUT_WATER_BELOW) -> pd.Series:
        """Number of customers below ``threshold`` at each time."""
        return self.without_water(threshold).sum(axis=1).rename("customers_without_water")

    def served_total_m3s(self) -> pd.Series:
        """Total served customer demand at each time (m3/s)."""
        return self.demand_m3s.sum(axis=1).rename("served_m3s")


def coarsen_demand_patterns(wn: wntr.network.WaterNetworkModel, step_s: float) -> bool:
    """Average the patterns to the report step when it is a whole multiple of the pattern
    step: multiplier_k = mean of the k-th block of ``step_s / pattern_step`` values. The
    demand of every step keeps its volume, and the solver takes one hydraulic step per
    report step instead of one per pattern step (L-Town: 5-min patterns, 12x fewer solves
    at 1 h). Returns whether it did."""
    ps = int(wn.options.time.pattern_timestep)
    k = int(round(step_s / ps)) if ps > 0 else 0
    if k <= 1 or abs(step_s - k * ps) > 1e-9:
        return False
    for name in wn.pattern_name_list:
        pat = wn.get_pattern(name)
        m = np.asarray(pat.multipliers, dtype=float)
        if len(m) <= 1:
            continue
        n = -(-len(m) // k)
        padded = np.concatenate([m, np.resize(m, n * k - len(m))]) if n * k > len(m) else m
        pat.multipliers = padded.reshape(n, k).mean(axis=1).tolist()
    wn.options.time.pattern_timestep = int(k * ps)
    return True


_EXPECTED: dict[tuple[int, str, int, float, float, int], pd.DataFrame] = {}
"""Expected demand per (network object, horizon, step): WNTR computes it in Python loops
over the patterns, about 1.6 s for L-Town over a week; every run of an ensemble shares it."""


def run_water(
    network: Network,
    conditions: list[Condition] | tuple[Condition, ...] = (),
    horizon_s: float = 24 * 3600.0,
    step_s: float = 3600.0,
    *,
    minimum_pressure_m: float = MINIMUM_PRESSURE_M,
    required_pressure_m: float = REQUIRED_PRESSURE_M,
    model: wntr.network.WaterNetworkModel | None = None,
    coarsen_patterns: bool = False,
    simulator: str = "wntr",
    restore: bool = False,
) -> WaterResult:
    """Simulate ``network`` over ``horizon_s`` at ``step_s`` (s) with the conditions.

    ``coarsen_patterns``: average the demand patterns to ``step_s`` first
    (:func:`coarsen_demand_patterns`; for long runs and ensembles).
    ``model``: a WNTR model from :func:`water_model` to start from (it is modified: pass
    a fresh one per run, e.g. ``wntr.network.from_dict`` of a saved dictionary), saving
    the conversion when many runs share one network. See the module docstring for how
    each condition is applied and what the service level is.

    ``simulator``: ``"wntr"`` (WNTRSimulator, the default) or ``"epanet"`` (EPANET 2.2
    through WNTR's EpanetSimulator, same PDD, about 10x faster on L-Town): there a leak
    is an emitter (q = C sqrt(h), C = Cd A sqrt(2 g): the same law) on a node behind a
    1 m pipe that time controls open at ``start_s`` and close at ``end_s``; closures are
    time controls; a pump in outage loses the model's own controls for the run; the
    served demand is the PDD law at EPANET's pressures (:func:`pdd_fraction`).

    ``restore`` (EPANET only): put ``model`` back as it was after the run
    (:class:`ModelUndo`), so one model serves every run of an ensemble instead of a fresh
    copy per run (a copy of L-Town takes about 5 % of a run).
    """
    import wntr

    if not 0 <= minimum_pressure_m < required_pressure_m:
        raise ValueError(
            "PDD needs 0 <= minimum pressure < required pressure, found "
            f"{minimum_pressure_m} and {required_pressure_m} m"
        )
    if simulator not in ("wntr", "epanet"):
        raise ValueError(f"simulator must be 'wntr' or 'epanet', found {simulator!r}")
    if restore and (simulator != "epanet" or model is None):
        raise ValueError("restore=True needs a model and the EPANET simulator (the WNTR "
                         "simulator's leaks and outages live on the model's elements)")
    epanet = simulator == "epanet"
    times = time_grid(horizon_s, step_s)
    mine = for_network(network, conditions)
    wn = water_model(network) if model is None else model
    id_of = {lk.file_id: lk.id for lk in network.links.values()}
    customers = [
        j for j in wn.junction_name_list
        if j in network.nodes and float(network.nodes[j].attrs.get("base_demand_m3s") or 0) > 0
    ]
    if coarsen_patterns:
        coarsen_demand_patterns(wn, step_s)
    opts = wn.options
    opts.time.duration = float(horizon_s)
    opts.time.hydraulic_timestep = int(step_s)
    opts.time.report_timestep = int(step_s)
    opts.time.rule_timestep = int(step_s)
    opts.hydraulic.demand_model = "PDA" if epanet else "PDD"
    opts.hydraulic.minimum_pressure = float(minimum_pressure_m)
    opts.hydraulic.required_pressure = float(required_pressure_m)
    key = (id(network), network.name, len(network.nodes), float(horizon_s), float(step_s),
           len(customers) + (1 << 20 if coarsen_patterns else 0))
    expected = _EXPECTED.get(key)
    if expected is None:  # base demands x patterns: the same for every run of this network
        expected = wntr.metrics.expected_demand(wn).reindex(times, method="nearest")[customers]
        if len(_EXPECTED) > 32:
            _EXPECTED.clear()
        _EXPECTED[key] = expected

    undo = ModelUndo(wn) if restore else None
    try:
        leak_nodes = _apply(wn, network, mine, id_of, epanet)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if epanet:
                import tempfile

                with tempfile.TemporaryDirectory(prefix="rescity-epanet-") as tmp:
                    res = wntr.sim.EpanetSimulator(wn).run_sim(file_prefix=f"{tmp}/run")
            else:
                res = wntr.sim.WNTRSimulator(wn).run_sim()
    finally:
        if undo is not None:
            undo.restore()
    node = res.node
    demand = node["demand"].reindex(times, method="nearest")[customers]
    exp = expected.to_numpy()
    if epanet:
        # EPANET's reported demand at low pressure was found to be the full demand while
        # its pressures match WNTRSimulator's PDD solution (within 0.04 m on L-Town with
        # a main break): the served demand is taken from the PDD law at those pressures
        p = node["pressure"].reindex(times, method="nearest")[customers].to_numpy()
        frac = pdd_fraction(p, minimum_pressure_m, required_pressure_m)
        demand = pd.DataFrame(exp * frac, index=demand.index, columns=demand.columns)
    served = np.where(exp > 1e-12, demand.to_numpy() / np.where(exp > 1e-12, exp, 1.0), 1.0)
    uid = network.uid
    cols = [uid(j) for j in customers]
    service = pd.DataFrame(np.clip(served, 0.0, 1.0), index=_index(times), columns=cols)
    junctions = [j for j in wn.junction_name_list if j in network.nodes]
    pressure = node["pressure"].reindex(times, method="nearest")[junctions]
    leak_cols: dict[str, np.ndarray] = {}
    if leak_nodes:
        ld = node["demand" if epanet else "leak_demand"].reindex(times, method="nearest")
        for cuid, names in leak_nodes.items():
            leak_cols[cuid] = ld[names].sum(axis=1).to_numpy()
    weights = pd.DataFrame(exp, index=_index(times), columns=cols)
    return WaterResult(
        times_s=times,
        service=service,
        weights=weights,
        demand_m3s=pd.DataFrame(demand.to_numpy(), index=_index(times), columns=cols),
        expected_m3s=weights.copy(),
        pressure_m=pd.DataFrame(
            pressure.to_numpy(), index=_index(times), columns=[uid(j) for j in junctions]
        ),
        leak_m3s=pd.DataFrame(leak_cols, index=_index(times)),
    )


class ModelUndo:
    """What the EPANET path of :func:`run_water` changes in a WNTR model, recorded before
    and undone after a run: the controls it adds (time controls) or removes (a pump's own
    controls), the links and nodes it adds (the halves of split or broken pipes, the leak
    holes and their pipes), and the pipes it shortens or reconnects (a split pipe keeps
    its first half) or whose initial status it sets (closures from t = 0). Options and
    coarsened patterns are set again by every run."""

    def __init__(self, wn: wntr.network.WaterNetworkModel) -> None:
        self.wn = wn
        self.nodes = set(wn.node_name_list)
        self.links = {name: (lk.start_node_name, lk.end_node_name, getattr(lk, "length", None),
                             lk.initial_status, getattr(lk, "initial_setting", None))
                      for name, lk in wn.links()}
        self.controls = dict(wn.controls())

    def restore(self) -> None:
        wn = self.wn
        for name in [n for n, _ in wn.controls() if n not in self.controls]:
            wn.remove_control(name)
        for name, ctl in self.controls.items():
            if name not in wn.control_name_list:
                wn.add_control(name, ctl)
        for name in [n for n in wn.link_name_list if n not in self.links]:
            wn.remove_link(name, force=True)
        for name, (a, b, length, status, setting) in self.links.items():
            lk = wn.get_link(name)
            if lk.start_node_name != a:
                lk.start_node = wn.get_node(a)
            if lk.end_node_name != b:
                lk.end_node = wn.get_node(b)
            if length is not None and lk.length != length:
                lk.length = length
            if lk.initial_status != status:
                lk.initial_status = status
            if setting is not None and lk.initial_setting != setting:
                lk.initial_setting = setting
        for name in [n for n in wn.node_name_list if n not in self.nodes]:
            wn.remove_node(name, force=True)


def pdd_fraction(
    pressure_m: np.ndarray, minimum_pressure_m: float, required_pressure_m: float,
    exponent: float = 0.5,
) -> np.ndarray:
    """Share of the expected demand a junction receives at pressure head ``p`` (m):
    ((p - p_min) / (p_req - p_min))^e clipped to [0, 1] (Wagner et al. 1988)."""
    x = (np.asarray(pressure_m, dtype=float) - minimum_pressure_m) / (
        required_pressure_m - minimum_pressure_m)
    return np.power(np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0), exponent)


def _index(times: np.ndarray) -> pd.Index:
    return pd.Index(times, name="t_s")


def _apply(
    wn: wntr.network.WaterNetworkModel,
    network: Network,
    conditions: list[Condition],
    id_of: dict[str, str],
    epanet: bool = False,
) -> dict[str, list[str]]:
    """Put the conditions into the WNTR model; return, per leak/break condition uid, the
    names of its leaking junctions."""
    file_of = {v: k for k, v in id_of.items()}
    halves: dict[str, list[str]] = {}  # broken pipe -> the links to close to isolate it
    leaks: dict[str, list[str]] = {}
    n = 0
    for c in conditions:
        n += 1
        el = file_of.get(c.element, c.element)
        if isinstance(c, Break):
            pipe = _pipe(wn, el, c)
            area = c.area_m2 if c.area_m2 is not None else math.pi * pipe.diameter ** 2 / 4
            a, b, bypass = f"{el}__brk{n}a", f"{el}__brk{n}b", f"{el}__brk{n}"
            wntr_break(wn, el, f"{el}__brk{n}p", a, b)
            outs = [_leak(wn, j, area, c, epanet, pipe.diameter) for j in (a, b)]
            wn.add_pipe(bypass, a, b, _REPAIR_LENGTH_M, pipe.diameter, pipe.roughness,
                        initial_status="CLOSED" if c.start_s == 0 else "OPEN")
            if c.start_s > 0:
                _time_status(wn, bypass, c.start_s, closed=True, tag=f"brk{n}")
            if c.end_s is not None:
                _time_status(wn, bypass, c.end_s, closed=False, tag=f"brk{n}")
            halves.setdefault(el, []).extend([el, f"{el}__brk{n}p", bypass])
            leaks[c.uid] = outs
        elif isinstance(c, Leak):
            if c.element in network.nodes:
                node = wn.get_node(c.element)
                if node.node_type != "Junction":
                    raise UnknownElementError(f"Leak {c.uid!r}: a {node.node_type} cannot leak")
                j = c.element
                size = max([wn.get_link(x).diameter for x in wn.get_links_for_node(j)
                            if wn.get_link(x).link_type == "Pipe"] or [0.3])
            else:
                size = _pipe(wn, el, c).diameter
                j = f"{el}__leak{n}"
                wntr_split(wn, el, f"{el}__leak{n}p", j)
            leaks[c.uid] = [_leak(wn, j, c.area_m2, c, epanet, size)]
    for c in conditions:
        el = file_of.get(c.element, c.element)
        if isinstance(c, Closure):
            if c.element in network.nodes:
                raise UnknownElementError(f"Closure {c.uid!r}: a node cannot be closed "
                                          "(use Outage for a tank or reservoir)")
            for name in halves.get(el, [el]):
                _close(wn, name, c.start_s, c.end_s, f"cl{id(c)}", epanet)
        elif isinstance(c, Outage):
            if c.element in network.nodes:
                node = wn.get_node(c.element)
                if node.node_type not in ("Tank", "Reservoir"):
                    raise UnknownElementError(
                        f"Outage {c.uid!r}: a {node.node_type} has no service to lose "
                        "(expected a pump, tank or reservoir)"
                    )
                for name in wn.get_links_for_node(c.element):
                    _close(wn, name, c.start_s, c.end_s, f"out{id(c)}", epanet)
            else:
                link = wn.get_link(el)
                if link.link_type != "Pump":
                    raise UnknownElementError(
                        f"Outage {c.uid!r}: a {link.link_type} cannot have an outage "
                        "(use Closure for pipes and valves)"
                    )
                if epanet:
                    for cname in [k for k, ctl in wn.controls() if link in ctl.requires()]:
                        wn.remove_control(cname)
                    _close(wn, el, c.start_s, c.end_s, f"out{id(c)}", True)
                else:
                    link.add_outage(wn, int(c.start_s), None if c.end_s is None else int(c.end_s))
    return leaks


def _leak(
    wn: wntr.network.WaterNetworkModel, junction: str, area_m2: float, c: Leak | Break,
    epanet: bool, diameter_m: float,
) -> str:
    """A leak at ``junction`` active on [start_s, end_s); returns the node whose outflow
    is the leak's (its ``leak_demand`` in WNTR, its ``demand`` in EPANET)."""
    end = None if c.end_s is None else int(c.end_s)
    if not epanet:
        wn.get_node(junction).add_leak(wn, area_m2, c.discharge_coeff, int(c.start_s), end)
        return junction
    j = wn.get_node(junction)
    hole = f"{junction}__hole"
    wn.add_junction(hole, base_demand=0.0, elevation=j.elevation, coordinates=j.coordinates)
    wn.get_node(hole).emitter_coefficient = c.discharge_coeff * area_m2 * math.sqrt(2 * 9.81)
    link = f"{junction}__holepipe"
    wn.add_pipe(link, junction, hole, _REPAIR_LENGTH_M, max(diameter_m, 0.05), 140.0)
    if c.start_s > 0:  # no leak yet: the hole is shut until start_s
        _close(wn, link, 0.0, c.start_s, hole, True)
    if end is not None:
        _time_status(wn, link, end, closed=True, tag=f"{hole} end")
    return hole


def _close(
    wn: wntr.network.WaterNetworkModel, link_name: str, start_s: float, end_s: float | None,
    tag: str, epanet: bool,
) -> None:
    """Close a link on [start_s, end_s): time controls for EPANET, a high-priority rule
    for WNTRSimulator."""
    if not epanet:
        _close_between(wn, link_name, start_s, end_s, tag=tag)
        return
    from wntr.network.elements import LinkStatus

    if start_s == 0:
        wn.get_link(link_name).initial_status = LinkStatus.Closed
    else:
        _time_status(wn, link_name, start_s, closed=True, tag=tag)
    if end_s is not None:
        _time_status(wn, link_name, end_s, closed=False, tag=tag)


def _pipe(wn: wntr.network.WaterNetworkModel, name: str, c: Condition) -> Any:
    link = wn.get_link(name)
    if link.link_type != "Pipe":
        raise UnknownElementError(
            f"{type(c).__name__} {c.uid!r}: only pipes (and junctions for leaks) can leak or "
            f"break, found a {link.link_type}"
        )
    return link


def wntr_split(wn: wntr.network.WaterNetworkModel, pipe: str, new_pipe: str, junction: str) -> None:
    """Split ``pipe`` at its midpoint with a new ``junction`` (WNTR morph, in place)."""
    import wntr

    wntr.morph.split_pipe(wn, pipe, new_pipe, junction, add_pipe_at_end=True,
                          split_at_point=0.5, return_copy=False)


def wntr_break(
    wn: wntr.network.WaterNetworkModel, pipe: str, new_pipe: str, a: str, b: str
) -> None:
    """Break ``pipe`` at its midpoint into two disconnected halves ending at ``a``, ``b``."""
    import wntr

    wntr.morph.break_pipe(wn, pipe, new_pipe, a, b, add_pipe_at_end=True,
                          split_at_point=0.5, return_copy=False)


def _time_status(
    wn: wntr.network.WaterNetworkModel, link_name: str, t_s: float, *, closed: bool, tag: str
) -> None:
    """A control setting ``link_name`` closed or open at simulation time ``t_s``."""
    from wntr.network.controls import Control, ControlAction, SimTimeCondition
    from wntr.network.elements import LinkStatus

    link = wn.get_link(link_name)
    status = LinkStatus.Closed if closed else LinkStatus.Open
    ctrl = Control(SimTimeCondition(wn, "=", int(t_s)), ControlAction(link, "status", status))
    wn.add_control(f"rescity {tag} {link_name} {'close' if closed else 'open'} {int(t_s)}", ctrl)


def _close_between(
    wn: wntr.network.WaterNetworkModel, link_name: str, start_s: float, end_s: float | None,
    *, tag: str,
) -> None:
    """Hold a link closed on [start_s, end_s) with a very-high-priority rule (it wins
    over the model's own controls, as WNTR's pump outage does)."""
    from wntr.network.controls import AndCondition, ControlAction, Rule, SimTimeCondition
    from wntr.network.elements import LinkStatus

    link = wn.get_link(link_name)
    if start_s == 0:
        link.initial_status = LinkStatus.Closed
    cond: Any = SimTimeCondition(wn, "Above", int(start_s) - 1 if start_s > 0 else -1)
    if end_s is not None:
        cond = AndCondition(cond, SimTimeCondition(wn, "Below", int(end_s)))
    act = ControlAction(link, "status", LinkStatus.Closed)
    wn.add_control(f"rescity {tag} {link_name} closed", Rule(cond, act, priority=6))
    if end_s is not None:
        _time_status(wn, link_name, end_s, closed=False, tag=tag)
