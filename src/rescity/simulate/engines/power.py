"""Power engine: pandapower AC power flow with elements out of service, and islanding.

:func:`run_power` builds the pandapower net of the twin
(:func:`rescity.io.power.to_pandapower`) once and, for every distinct set of active
conditions over the horizon (loads are constant in time here: the twin holds one
operating point), takes elements out of service and solves:

* :class:`~.conditions.Outage` (or :class:`~.conditions.Closure`) of a bus (a substation
  flooded or tripped): the bus is out of service, with everything connected to it;
  of a line (a feeder), a transformer: out of service; a bus-bus switch: opened.
* islanding (``pandapower.topology.unsupplied_buses``): buses without a path to an
  external grid (the slack) through in-service elements and closed switches are
  de-energised, and so are their loads; the power flow (Newton-Raphson) runs on the
  energised part.

Results: per bus energised or not (bool) over time; per load bus the served share
(1 energised, 0 de-energised); MW lost (the in-service active load, p_mw x scaling, at
de-energised buses); the slack's active power and the losses (MW) of each solved state.
Service level: load-weighted, Q(t) = MW served / MW demanded.

Limits: steady state per time step (no dynamics, no protection coordination); a power
flow that does not converge leaves the state's slack and losses NaN and marks
``converged`` False, while the islanding result stands.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rescity.model.enums import NetworkType
from rescity.model.network import Network

from .conditions import Condition, Leak, UnknownElementError, for_network, states, time_grid
from .result import ServiceResult

if TYPE_CHECKING:
    from pandapower.auxiliary import pandapowerNet


@dataclass
class PowerFlow:
    """One solved state: which buses are energised and the flow's totals."""

    energised: np.ndarray  # bool per bus (order of the result's ``buses``)
    converged: bool
    slack_p_mw: float
    losses_p_mw: float
    load_lost_mw: float


@dataclass
class PowerResult(ServiceResult):
    """Power of one run. Frames indexed by ``t_s``; columns asset uids.

    ``service``: load buses, 1 energised / 0 de-energised; ``weights``: their load (MW).
    ``energised``: every bus (bool); ``load_lost_mw``, ``slack_p_mw``, ``losses_p_mw``,
    ``converged``: per time.
    """

    energised: pd.DataFrame = field(default_factory=pd.DataFrame)
    load_lost_mw: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    slack_p_mw: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    losses_p_mw: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    converged: pd.Series = field(default_factory=lambda: pd.Series(dtype=bool))

    def de_energised(self, t_s: float) -> list[str]:
        """Uids of the buses without power at time ``t_s`` (the last report time <= t_s)."""
        row = self.energised.loc[:t_s].iloc[-1]
        return [str(u) for u in row.index[~row.to_numpy(dtype=bool)]]


class PowerModel:
    """The pandapower net of a twin power network, to solve states of it repeatedly.

    ``solve(out)`` takes the twin element ids in ``out`` out of service (in place, put
    back after the solve; not thread-safe: one model per thread) and returns the
    :class:`PowerFlow`."""

    def __init__(self, network: Network) -> None:
        from rescity.io.power import to_pandapower

        if network.type is not NetworkType.POWER:
            raise ValueError(f"network {network.name!r} is {network.type.value}, not power")
        self.network = network
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.net: pandapowerNet = to_pandapower(network)
        self.bus_ids = [f"bus_{int(b)}" for b in self.net.bus.index]
        load = self.net.load
        on = load[load["in_service"].astype(bool)]
        p = (on["p_mw"] * on["scaling"]).groupby(on["bus"]).sum()
        self.load_mw = {f"bus_{int(b)}": float(v) for b, v in p.items()}
        self._cache: dict[frozenset[str], PowerFlow] = {}

    def solve(self, out: frozenset[str] | set[str] = frozenset()) -> PowerFlow:
        """Power flow with the elements ``out`` (twin ids: ``bus_3``, ``line_7``,
        ``trafo_0``, ``switch_2``) out of service; cached per set."""
        key = frozenset(out)
        if key not in self._cache:
            self._cache[key] = self._solve(key)
        return self._cache[key]

    def _solve(self, out: frozenset[str]) -> PowerFlow:
        # the elements go out of service in place and come back afterwards: a copy of the
        # net per state cost half as much as the power flow itself
        net = self.net
        saved: list[tuple[str, int, str, Any]] = []
        try:
            for eid in sorted(out):
                saved.append(_take_out(net, eid))
            return self._solve_state(net)
        finally:
            for table, i, col, was in reversed(saved):
                net[table].loc[i, col] = was

    def _solve_state(self, net: Any) -> PowerFlow:
        import pandapower as pp
        import pandapower.topology as top

        unsupplied = {int(b) for b in top.unsupplied_buses(net)}
        off_service = {int(b) for b in net.bus.index[~net.bus["in_service"].astype(bool)]}
        dark = unsupplied | off_service
        energised = np.array([int(b) not in dark for b in net.bus.index])
        lost = float(sum(v for b, v in self.load_mw.items() if int(b[4:]) in dark))
        converged, slack, losses = True, float("nan"), float("nan")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pp.runpp(net, calculate_voltage_angles="auto")
            slack = float(net.res_ext_grid["p_mw"].sum())
            # res_bus p_mw is consumption minus generation: its sum is minus the losses
            losses = -float(net.res_bus["p_mw"].sum())
        except Exception:  # noqa: BLE001 - pandapower raises several types on divergence
            converged = False
        return PowerFlow(energised, converged, slack, losses, lost)


def _take_out(net: Any, eid: str) -> tuple[str, int, str, Any]:
    """Put one twin element out of service in the pandapower net; returns what to put
    back: (table, index, column, previous value)."""
    prefix, _, index = eid.rpartition("_")
    i = int(index)
    table, col = {"bus": ("bus", "in_service"), "line": ("line", "in_service"), "trafo": ("trafo", "in_service"),
                  "switch": ("switch", "closed")}.get(prefix, ("", ""))
    if not table:
        raise UnknownElementError(f"power element {eid!r} has no pandapower table")
    if i not in net[table].index:
        raise UnknownElementError(f"power element {eid!r}: no {table} {i} in the pandapower net")
    was = net[table].at[i, col]
    net[table].loc[i, col] = False
    return table, i, col, was


def run_power(
    network: Network,
    conditions: list[Condition] | tuple[Condition, ...] = (),
    horizon_s: float = 24 * 3600.0,
    step_s: float = 3600.0,
    *,
    model: PowerModel | None = None,
) -> PowerResult:
    """Solve ``network`` at each report time of the horizon with the conditions active
    then (see the module docstring). ``model``: a :class:`PowerModel` of the network to
    reuse (its cache of solved states is shared between runs)."""
    mine = for_network(network, conditions)
    for c in mine:
        if isinstance(c, Leak):
            raise UnknownElementError(f"Leak {c.uid!r}: power elements do not leak")
    pm = PowerModel(network) if model is None else model
    times = time_grid(horizon_s, step_s)
    idx = pd.Index(times, name="t_s")
    flows = [pm.solve(frozenset(mine[i].element for i in s)) for s in states(mine, times)]
    uid = network.uid
    energised = pd.DataFrame(np.vstack([f.energised for f in flows]), index=idx,
                             columns=[uid(b) for b in pm.bus_ids])
    load_buses = [b for b in pm.bus_ids if pm.load_mw.get(b, 0.0) > 0]
    cols = [uid(b) for b in load_buses]
    service = energised[cols].astype(float)
    return PowerResult(
        times_s=times,
        service=service,
        weights=pd.Series([pm.load_mw[b] for b in load_buses], index=cols),
        energised=energised,
        load_lost_mw=pd.Series([f.load_lost_mw for f in flows], index=idx, name="load_lost_mw"),
        slack_p_mw=pd.Series([f.slack_p_mw for f in flows], index=idx, name="slack_p_mw"),
        losses_p_mw=pd.Series([f.losses_p_mw for f in flows], index=idx, name="losses_p_mw"),
        converged=pd.Series([f.converged for f in flows], index=idx, name="converged"),
    )
