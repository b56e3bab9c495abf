"""``rescity incidents | audit | users | publish``: the response loop from the command line,
thin over :mod:`rescity.service.respond`.

The command line runs with the store's own rights (as the platform, ``system``) unless
``--as USERNAME`` names an account, whose rights are then checked like the API's.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from rescity.cli_common import AsOption, DbOption, JsonOption, _errors, _store, app, console, out
from rescity.cli_common import now_ms as _now_ms

incidents_app = typer.Typer(help="Incidents (事件): list, show, open, act, check deadlines.", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit trail (全程留痕).", no_args_is_help=True)
users_app = typer.Typer(help="Accounts, roles and their jurisdictions.", no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(audit_app, name="audit")
app.add_typer(users_app, name="users")

_LEVEL = {1: "[red]1 red 红[/red]", 2: "[dark_orange]2 orange 橙[/dark_orange]",
          3: "[yellow]3 yellow 黄[/yellow]", 4: "[blue]4 blue 蓝[/blue]"}


def _service(store: Any, as_user: str | None) -> tuple[Any, Any]:
    from rescity.respond.access import SYSTEM
    from rescity.service.respond import ResponseService

    svc = ResponseService(store)
    if as_user is None:
        return svc, SYSTEM
    user = svc.user(as_user)
    if user is None:
        raise KeyError(f"no account {as_user!r} (rescity users list)")
    return svc, user


def _hhmm(ms: int | None) -> str:
    return "" if ms is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


@incidents_app.command("list")
def incidents_list(
    state: Annotated[list[str] | None, typer.Option("--state", help="Only these states (repeatable).")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open incidents.")] = False,
    as_user: AsOption = None, as_json: JsonOption = False, db: DbOption = None,
) -> None:
    """The incidents you may see, newest first."""
    from rescity.respond.lifecycle import incident_to_doc

    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        incs = svc.incidents(user, states=state, open_only=open_only)
    if as_json:
        out.print_json(json.dumps([incident_to_doc(i, timeline=False) for i in incs], default=str))
        return
    t = Table(title=f"incidents · 事件 ({len(incs)})")
    for col in ("id", "created (UTC)", "level · 级别", "state · 状态", "tier", "title", "place", "units"):
        t.add_column(col)
    for i in incs:
        t.add_row(i.id, _hhmm(i.created_ms), _LEVEL.get(i.level, str(i.level)),
                  f"{i.state.value} {i.state.label_zh}", i.tier.value, i.title,
                  i.street or i.district or "", ", ".join(i.units))
    out.print(t)


@incidents_app.command("show")
def incidents_show(incident_id: str, as_user: AsOption = None, as_json: JsonOption = False,
                   db: DbOption = None) -> None:
    """One incident: its fields, deadlines and timeline."""
    from rescity.respond.lifecycle import incident_to_doc

    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        inc = svc.incident(user, incident_id)
    doc = incident_to_doc(inc)
    if as_json:
        out.print_json(json.dumps(doc, default=str))
        return
    out.print(f"[bold]{inc.id}[/bold] {_LEVEL.get(inc.level, '')} {inc.title}"
              + (f" · {inc.title_zh}" if inc.title_zh else ""))
    out.print(f"state {inc.state.value} ({inc.state.label_zh}), tier {inc.tier.value}, "
              f"place {inc.grid or '-'} / {inc.street or '-'} / {inc.district or '-'}, "
              f"network {inc.network or '-'}, asset {inc.asset or '-'}")
    out.print(f"units: {', '.join(inc.units) or '-'}; accepted by: {', '.join(inc.accepted_by) or '-'}")
    if inc.due:
        out.print("due: " + ", ".join(f"{m} {_hhmm(v)}" for m, v in inc.due.items()))
    t = Table(title="timeline · 处置过程")
    for col in ("time (UTC)", "actor", "action", "state", "data"):
        t.add_column(col)
    for ev in inc.timeline:
        t.add_row(_hhmm(ev.ts_ms), ev.actor, ev.action.value,
                  f"{ev.before.value if ev.before else ''} -> {ev.after.value}",
                  json.dumps({k: v for k, v in ev.data.items() if k != "due"}, ensure_ascii=False,
                             default=str)[:120])
    out.print(t)
    out.print("allowed now: " + ", ".join(doc["allowed_actions"]))


@incidents_app.command("open")
def incidents_open(
    title: Annotated[str, typer.Option(help="What happened.")],
    type_: Annotated[str, typer.Option("--type", help="Incident type, e.g. gas_leak, waterlogging.")],
    level: Annotated[str, typer.Option(help="1-4 or red/orange/yellow/blue.")],
    lon: Annotated[float | None, typer.Option(help="Longitude (WGS84).")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude (WGS84).")] = None,
    jurisdiction: Annotated[str | None, typer.Option(help="A jurisdiction code instead of a point.")] = None,
    network: Annotated[str | None, typer.Option(help="Network type (gas, water, ...).")] = None,
    asset: Annotated[str | None, typer.Option(help="Asset uid (network:id).")] = None,
    dispatch: Annotated[bool, typer.Option(help="Verify and route at once.")] = False,
    now: Annotated[str | None, typer.Option(help="The time of the act (ISO 8601; default: now).")] = None,
    as_user: AsOption = None, db: DbOption = None,
) -> None:
    """Open an incident by hand (or from an inspection with --as a grid worker)."""
    from rescity.model.incident import IncidentSource
    from rescity.respond.access import Role

    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        src = IncidentSource.INSPECTION if user.role == Role.GRID_WORKER else IncidentSource.MANUAL
        inc = svc.open_incident(user, title=title, type=type_, level=level, ts_ms=_now_ms(now),
                                lon=lon, lat=lat, jurisdiction=jurisdiction, network=network,
                                asset=asset, source=src, dispatch=dispatch)
    out.print(f"opened {inc.id} ({inc.state.value}) at {inc.street or inc.district}; "
              f"units: {', '.join(inc.units) or '-'}")


@incidents_app.command("act")
def incidents_act(
    incident_id: str,
    action: Annotated[str, typer.Argument(help="verify, dismiss, dispatch, accept, arrive, resolve, reject, review, close, reopen, merge, escalate, link, note, ...")],
    data: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE data of the action (repeatable), e.g. --set reason='sensor fault'.")] = None,
    units: Annotated[str | None, typer.Option(help="Comma-separated unit ids (dispatch).")] = None,
    now: Annotated[str | None, typer.Option(help="The time of the act (ISO 8601; default: now).")] = None,
    as_user: AsOption = None, db: DbOption = None,
) -> None:
    """Do an action on an incident."""
    d: dict[str, Any] = {}
    for kv in data or []:
        if "=" not in kv:
            raise typer.BadParameter(f"--set: expected KEY=VALUE, got {kv!r}")
        k, v = kv.split("=", 1)
        d[k.strip()] = v
    if units:
        d["units"] = [u.strip() for u in units.split(",") if u.strip()]
    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        inc = svc.act(user, incident_id, action, _now_ms(now), d)
    out.print(f"{inc.id}: {action} -> {inc.state.value} ({inc.state.label_zh}); tier {inc.tier.value}")


@incidents_app.command("tick")
def incidents_tick(now: Annotated[str | None, typer.Option(help="The time to check at (ISO 8601; default: now).")] = None,
                   db: DbOption = None) -> None:
    """Check every open incident's deadlines; escalate the late ones one tier."""
    with _errors(), _store(db) as store:
        svc, _ = _service(store, None)
        evs = svc.tick(_now_ms(now))
    for ev in evs:
        out.print(f"{ev.incident_id}: {ev.action.value} {json.dumps(ev.data, default=str)[:160]}")
    out.print(f"{len(evs)} events")


@incidents_app.command("metrics")
def incidents_metrics(as_user: AsOption = None, as_json: JsonOption = False, db: DbOption = None) -> None:
    """Time to acknowledge / arrive / resolve per unit and per warning model; false alarms."""
    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        m = svc.metrics(user)
    if as_json:
        out.print_json(json.dumps(m, default=str))
        return

    def s(x: dict[str, Any]) -> str:
        return "-" if x["median_s"] is None else f"{x['median_s'] / 60:.1f} min (n={x['n']})"

    t = Table(title="per unit · 按单位 (median)")
    for col in ("unit", "incidents", "acknowledge", "arrive", "resolve"):
        t.add_column(col)
    for u, r in m["units"].items():
        t.add_row(u, str(r["incidents"]), s(r["acknowledge"]), s(r["arrive"]), s(r["resolve"]))
    out.print(t)
    t = Table(title="per warning model · 按预警模型")
    for col in ("model", "incidents", "false alarms", "share", "resolve"):
        t.add_column(col)
    for k, r in m["models"].items():
        share = "-" if r["false_alarm_share"] is None else f"{100 * r['false_alarm_share']:.0f} %"
        t.add_row(k, str(r["incidents"]), str(r["false_alarms"]), share, s(r["resolve"]))
    out.print(t)


@audit_app.command("verify")
def audit_verify(db: DbOption = None) -> None:
    """Verify the audit chain: exits 1 and names the first bad record if any record was
    edited, deleted or reordered (or an incident row disagrees with its events)."""
    with _errors(), _store(db) as store:
        svc, _ = _service(store, None)
        v = svc.verify_audit()
    if v.ok:
        out.print(f"[green]{v.describe()}[/green]")
        return
    console.print(f"[red]{v.describe()}[/red]", soft_wrap=True, highlight=False)
    raise typer.Exit(1)


@audit_app.command("head")
def audit_head(db: DbOption = None) -> None:
    """The chain's head (last seq and hash): keep a copy where nobody can rewrite it."""
    from rescity.store.respond import ResponseStore

    with _errors(), _store(db) as store:
        seq, h = ResponseStore(store.engine).head()
    out.print(f"{seq} {h}")


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="commander, district_officer, operator, grid_worker, citizen, auditor.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    jurisdiction: Annotated[list[str] | None, typer.Option("--jurisdiction", help="A jurisdiction code (repeatable).")] = None,
    network: Annotated[list[str] | None, typer.Option("--network", help="A network the operator answers for (repeatable).")] = None,
    unit: Annotated[str | None, typer.Option(help="The operator's unit id.")] = None,
    db: DbOption = None,
) -> None:
    """Create or update an account."""
    from rescity.respond.access import SYSTEM

    with _errors(), _store(db) as store:
        svc, _ = _service(store, None)
        u = svc.add_user(SYSTEM, username=username, role=role, password=password,
                         jurisdictions=jurisdiction or [], networks=network or [], unit=unit,
                         ts_ms=int(time.time() * 1000))
    out.print(f"account {u.username} ({u.role.value})")


@users_app.command("list")
def users_list(as_json: JsonOption = False, db: DbOption = None) -> None:
    """Accounts with their roles and scopes (no password hashes)."""
    from rescity.store.respond import ResponseStore

    with _errors(), _store(db) as store:
        rows = [{k: v for k, v in r.items() if k != "password_hash"}
                for r in ResponseStore(store.engine).user_rows()]
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    t = Table(title=f"accounts ({len(rows)})")
    for col in ("username", "role", "jurisdictions", "networks", "unit"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["username"], r["role"], ", ".join(r["jurisdictions"]), ", ".join(r["networks"]),
                  r["unit"] or "")
    out.print(t)



@app.command()
def publish(
    incident: Annotated[str, typer.Option("--incident", help="The incident id.")],
    fmt: Annotated[str, typer.Option("--format", help="cap (CAP 1.2) or gb (GB/T 35965.1 style).")] = "cap",
    out_file: Annotated[str | None, typer.Option("--out", help="Write the message to this file.")] = None,
    update: Annotated[bool, typer.Option("--update", help="An update of the incident's last warning.")] = False,
    cancel: Annotated[bool, typer.Option("--cancel", help="Cancel the incident's warning (解除).")] = False,
    drop_dir: Annotated[str | None, typer.Option("--drop-dir", help="Also drop it into this folder (file channel).")] = None,
    webhook: Annotated[str | None, typer.Option("--webhook", help="Also POST it to this URL.")] = None,
    now: Annotated[str | None, typer.Option(help="The time of sending (ISO 8601; default: now).")] = None,
    as_user: AsOption = None, db: DbOption = None,
) -> None:
    """Publish the public warning of an incident (CAP 1.2 or the national format)."""
    from pathlib import Path

    from rescity.respond.publish import FilePublisher, WebhookPublisher
    from rescity.service.publication import publish as do_publish

    if update and cancel:
        raise typer.BadParameter("--update and --cancel exclude each other")
    channels: list[Any] = []
    if drop_dir:
        channels.append(FilePublisher(drop_dir))
    if webhook:
        channels.append(WebhookPublisher(webhook))
    with _errors(), _store(db) as store:
        svc, user = _service(store, as_user)
        res = do_publish(svc, user, incident, ts_ms=_now_ms(now), fmt=fmt,
                         msg_type="update" if update else "cancel" if cancel else "alert",
                         channels=channels)
    if out_file:
        Path(out_file).write_bytes(res.payload)
        out.print(f"wrote {out_file}")
    else:
        out.print(res.payload.decode("utf-8"), highlight=False, markup=False)
    w = res.warning
    console.print(f"{w.msg_type.value} {w.identifier} ({w.status.value}): {w.en.headline} · {w.zh.headline}")
    for r in res.receipts:
        console.print(f"  {r.channel} {r.target}: {'ok' if r.ok else 'FAILED ' + r.detail}")
    if any(not r.ok for r in res.receipts):
        raise typer.Exit(1)


@incidents_app.command("follow")
def incidents_follow(interval: Annotated[float, typer.Option(help="Seconds between steps.")] = 5.0,
                     db: DbOption = None) -> None:
    """The response worker: turn new alarm groups into incidents and check deadlines every
    INTERVAL seconds, until SIGTERM or Ctrl+C (run it beside `rescity ingest`)."""
    import signal
    import threading

    from rescity.service.loop import follow

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def show(res: Any) -> None:
        for i in res.incidents:
            out.print(f"{_hhmm(i.updated_ms)} {i.id} {i.type} level {i.level} {i.state.value}: "
                      f"{', '.join(i.units)}")
        for ev in res.deadline_events:
            out.print(f"{_hhmm(ev.ts_ms)} {ev.incident_id} {ev.action.value} {ev.data.get('milestone') or ev.data.get('tier') or ''}")

    with _errors(), _store(db) as store:
        try:
            n = follow(store, interval_s=interval, stop=stop, on_step=show)
        except KeyboardInterrupt:
            n = -1
    console.print(f"stopped after {n} steps" if n >= 0 else "stopped")
