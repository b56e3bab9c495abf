"""What every ``rescity`` command module shares: the Typer app, the consoles, the
``--db`` option, opening the store, and turning user errors into one line and exit 2.

The command modules (``cli.py``, ``cli_respond.py``, ``cli_risk.py``) import this module
only, never one another, so ``python -m rescity.cli`` and the ``rescity`` script load
them the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from rescity.io.errors import FormatError

app = typer.Typer(help="ResCity: a safety-resilient city platform (安全韧性城市).", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()

DbOption = Annotated[str | None, typer.Option("--db", help="Database URL (default: $RESCITY_DATABASE_URL or ./.rescity/rescity.db).")]
AsOption = Annotated[str | None, typer.Option("--as", help="Act as this account (its rights are checked).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextmanager
def _store(db: str | None) -> Iterator[Any]:
    from rescity.store import Store

    s = Store.open(db)
    try:
        yield s
    finally:
        s.close()


@contextmanager
def _errors() -> Iterator[None]:
    """Errors a user can fix (a bad file, an unknown name, a refused right) become one
    clear line and exit 2."""
    from rescity.store import StoreError

    try:
        yield
    except (FormatError, StoreError, ValueError, LookupError, PermissionError, FileNotFoundError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        console.print(f"[red]error:[/red] {msg}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def now_ms(now: str | None) -> int:
    """``--now`` (ISO 8601 with a zone) in ms since the epoch; the wall clock if None."""
    import datetime as dt
    import time

    if now is None:
        return int(time.time() * 1000)
    try:
        t = dt.datetime.fromisoformat(now)
    except ValueError:
        raise typer.BadParameter(f"--now: expected ISO 8601 (2026-07-20T08:30:00+08:00), got {now!r}") from None
    if t.tzinfo is None:
        raise typer.BadParameter("--now: give a time zone (e.g. +08:00 or Z)")
    return int(t.timestamp() * 1000)
