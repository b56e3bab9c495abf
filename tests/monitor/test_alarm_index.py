"""The indexed alarm book emits exactly the events of the unindexed one (kept verbatim in
``naive_alarms.py``) for any sequence of transitions, acknowledgements, clears, silences,
ticks and restores, under every inhibition scope and grouping by place and jurisdiction."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rescity.monitor.alarms import AlarmBook, IllegalTransition
from rescity.monitor.engine import Transition, TransitionKind
from rescity.monitor.specs import GroupingRule, InhibitRule, SilenceRule

from . import naive_alarms

C = (24.9443, 60.1716)
ASSETS = [f"w:{i}" for i in range(8)]
MODELS = ["p_low", "p_rate", "main_break", "near_src", "same_src", "down_src"]
RULES = [
    InhibitRule(source="main_break", target="p_low", scope="members"),
    InhibitRule(source="main_break", target="p_rate", scope="members", min_level=2),
    InhibitRule(source="near_src", target="p_low", scope="within_m", within_m=250.0),
    InhibitRule(source="same_src", target="p_rate", scope="same_asset"),
    InhibitRule(source="down_src", target="p_low", scope="downstream"),
]


def downstream(asset: str) -> set[str]:
    i = int(asset.split(":")[1])
    return {f"w:{j}" for j in range(i + 1, min(i + 3, len(ASSETS)))}


def locate(lon: float, lat: float) -> str | None:
    return "g1" if lon < C[0] + 300 / 55_600.0 else "g2"


def make(cls: Any, events: Any = None) -> Any:
    kw = {"inhibit": RULES, "grouping": GroupingRule(window_s=600, distance_m=150), "downstream": downstream,
          "locate": locate, "reopen_window_s": 300}
    return cls.restore(events, **kw) if events is not None else cls(**kw)


def transition(model: str, asset: int, ts: int, kind: str, before: int, after: int, members: list[int]) -> Transition:
    details = {"members": sorted(ASSETS[m] for m in members)} if model == "main_break" else {}
    x = C[0] + (asset % 4) * 120.0 / 55_600.0  # a 4 x 2 grid of assets 120 m apart
    y = C[1] + (asset // 4) * 120.0 / 111_320.0
    return Transition(model, ASSETS[asset], f"{ASSETS[asset]}.s{model[0]}", ts, TransitionKind(kind), before, after,
                      float(after), 1.0, "water" if asset % 3 else "sewer", x, y, details)


ops = st.one_of(
    st.tuples(st.just("tr"), st.lists(st.tuples(
        st.sampled_from(MODELS + ["p_low", "main_break", "near_src"]), st.integers(0, len(ASSETS) - 1),
        st.integers(0, 120),
        st.sampled_from(["pending", "firing", "level", "resolved", "update"]),
        st.sampled_from([0, 1, 2, 3, 4]), st.lists(st.integers(0, len(ASSETS) - 1), max_size=4)),
        min_size=1, max_size=12)),
    st.tuples(st.just("ack"), st.integers(0, 50)),
    st.tuples(st.just("clear"), st.integers(0, 50)),
    st.tuples(st.just("silence"), st.sampled_from(["p_*", "p_low", "*"]), st.sampled_from([None, "w:1", "w:[2-4]"]),
              st.integers(0, 20), st.integers(1, 20)),
    st.tuples(st.just("unsilence"), st.integers(0, 5)),
    st.tuples(st.just("tick"), st.integers(0, 60)),
    st.tuples(st.just("restore")),
)


def ev_key(events: list[Any]) -> list[tuple]:
    return [(e.alarm_id, e.ts_ms, str(e.kind), e.level_before, e.level_after, e.value, repr(e.details), e.model, e.asset)
            for e in events]


def state_key(book: Any) -> tuple:
    alarms = tuple((a.id, str(a.state), a.level, tuple(sorted(a.muted_by)), a.incident, a.acknowledged_by)
                   for a in book.open_alarms())
    incs = tuple((i.id, tuple(i.alarm_ids), i.level) for i in book.incidents.values())
    return alarms, incs


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=25))
def test_the_indexed_book_emits_the_events_of_the_unindexed_book(script):
    new, old = make(AlarmBook), make(naive_alarms.AlarmBook)
    clock = 0
    n_sil = 0
    for op in script:
        kind = op[0]
        got: Any
        want: Any
        if kind == "tr":
            trs = []
            for model, asset, dt, k, lv, members in op[1]:
                t = clock + dt * 10_000
                trs.append(transition(model, asset, t, k, 0, lv if k != "resolved" else 0, members))
            clock += 600_000
            got, want = new.ingest(list(trs)), old.ingest(list(trs))
        elif kind in ("ack", "clear"):
            ids = sorted(a.id for a in old.open_alarms())
            if not ids:
                continue
            aid = ids[op[1] % len(ids)]
            res = []
            for book in (new, old):
                try:
                    if kind == "ack":
                        res.append([book.acknowledge(aid, "duty officer", clock)])
                    else:
                        res.append([book.clear(aid, "duty officer", clock)])
                except (IllegalTransition, naive_alarms.IllegalTransition) as e:
                    res.append(str(e))
            got, want = res
            if isinstance(got, list):
                got, want = ev_key(got), ev_key(want)
            assert got == want
            continue
        elif kind == "silence":
            _, model, asset, start, length = op
            n_sil += 1
            rule = SilenceRule(id=f"s{n_sil}", matchers=[{"model": model, "asset": asset}],
                               start_ms=clock + start * 60_000, end_ms=clock + (start + length) * 60_000)
            got, want = new.add_silence(rule, clock), old.add_silence(rule, clock)
        elif kind == "unsilence":
            sid = f"s{op[1]}"
            if sid not in old.silences:
                continue
            got, want = new.remove_silence(sid, clock), old.remove_silence(sid, clock)
        elif kind == "tick":
            clock += op[1] * 60_000
            got, want = new.tick(clock), old.tick(clock)
        else:  # restart: both books rebuilt from their events
            new, old = make(AlarmBook, list(new.events)), make(naive_alarms.AlarmBook, list(old.events))
            continue
        assert ev_key(got) == ev_key(want)
        assert state_key(new) == state_key(old)
    assert ev_key(new.events) == ev_key(old.events)


@settings(max_examples=300, deadline=None)
@given(st.floats(1.0, 2000.0), st.floats(-70.0, 70.0), st.floats(-179.0, 179.0),
       st.lists(st.tuples(st.floats(-3000.0, 3000.0), st.floats(-3000.0, 3000.0)), min_size=1, max_size=30))
def test_the_grid_finds_every_point_within_its_distance(d_m, lat0, lon0, offsets):
    from rescity.model.geo import local_distance_m as _dist_m
    from rescity.monitor.alarms import _Grid

    g = _Grid(d_m)
    k = 111_195.0
    pts = {}
    for i, (dx, dy) in enumerate(offsets):
        lat = lat0 + dy / k
        lon = lon0 + dx / (k * max(0.05, math.cos(math.radians(lat0))))
        pts[f"p{i}"] = (lon, lat)
        g.add(f"p{i}", lon, lat)
    for lon, lat in pts.values():
        near = set(g.near(lon, lat))
        within = {key for key, (x, y) in pts.items() if _dist_m(lon, lat, x, y) <= d_m}
        assert within <= near
