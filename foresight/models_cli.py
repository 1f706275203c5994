"""`foresight models`: the registered versions and why each is (not) live; retrain and drift now."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from actions.learning import retrain_from_outcomes, watch_drift
from ingest.clock import SystemClock

from .settings import Settings

if TYPE_CHECKING:
    from .runtime import Runtime

models_app = typer.Typer(help="Model versions, retraining from outcomes, feature drift.",
                         no_args_is_help=True)
console = Console()


@contextmanager
def _runtime() -> Iterator[Runtime]:
    from .runtime import build_runtime

    rt = build_runtime(Settings(), clock=SystemClock())
    try:
        yield rt
    finally:
        rt.engine.dispose()


@models_app.command("list")
def list_versions(
    kind: Annotated[str | None, typer.Option(help="Only this appliance kind.")] = None,
) -> None:
    """Every registered version, which one is live per mode, and the decision recorded for it."""
    table = Table("version", "live", "created", "brier", "auc", "why")
    with _runtime() as rt:
        for v in rt.registry.versions(kind):
            table.add_row(v.version, "live" if v.is_live else "", f"{v.created_at:%Y-%m-%d %H:%M}",
                          str(v.summary.get("brier")), str(v.summary.get("auc")), v.note or "-")
    console.print(table)


@models_app.command()
def retrain() -> None:
    """Retrain every live model from the stored readings and outcome labels now (as the daily job)."""
    table = Table("kind", "mode", "champion", "challenger", "decision")
    with _runtime() as rt:
        for r in retrain_from_outcomes(rt.engine, rt.registry, now=rt.clock.now(),
                                       retention=timedelta(days=rt.settings.retention_days)):
            table.add_row(r.kind, r.mode, r.champion or "-", r.challenger or "-", r.reason)
    console.print(table)


@models_app.command()
def drift() -> None:
    """Check the live models for feature drift now; opens a ticket per drifting model (as the job)."""
    with _runtime() as rt:
        alerts = watch_drift(rt.engine, rt.registry, now=rt.clock.now())
    for a in alerts:
        ticket = f"ticket {a.ticket_id}" if a.ticket_id else "ticket already open"
        names = ", ".join(f"{f.feature} (PSI {f.psi:.2f})" for f in a.report.drifting)
        console.print(f"{a.report.version}: {names} -- {ticket}")
    if not alerts:
        console.print("no live model drifts")
