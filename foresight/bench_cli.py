"""``foresight bench``: benchmarks that print figures (not tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["bench_app"]

bench_app = typer.Typer(help="Benchmarks: measure and print figures.", no_args_is_help=True)


@bench_app.command("ingest")
def ingest(
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the figures here as JSON.")] = None,
    devices: Annotated[int, typer.Option(min=1, help="Distinct device ids the publisher cycles through.")] = 10_000,
    messages: Annotated[int, typer.Option(min=1, help="Telemetry messages in each scenario's backlog.")] = 40_000,
    seconds: Annotated[float, typer.Option(min=1.0, help="Stop measuring a phase after this long.")] = 60.0,
    rate: Annotated[float, typer.Option(min=0.0, help="Paced phase rate in msgs/s (0: half the drain rate).")] = 0.0,
    paced_seconds: Annotated[float, typer.Option(min=1.0, help="Length of the paced (latency) phase.")] = 15.0,
    soak_seconds: Annotated[float, typer.Option(min=0.0, help="Memory soak after the scenarios (0: none).")] = 0.0,
    scenario: Annotated[list[str] | None, typer.Option(
        help="Run only these scenarios: raw, naive, sqlite, sqlite_thread, postgres, postgres_2_workers "
             "(repeatable).")] = None,
) -> None:
    """Raw paho vs naive ORM vs Foresight's ingest path (SQLite with the writer process and the writer
    thread, PostgreSQL, two workers), side by side."""
    from .ingest_bench import SCENARIOS, BenchOptions, run_ingest_bench
    from .mosquitto import MosquittoNotInstalled
    from .postgres_cluster import PostgresNotInstalled

    chosen = tuple(scenario or SCENARIOS)
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        raise typer.BadParameter(f"unknown {unknown}; choose from {list(SCENARIOS)}", param_hint="--scenario")
    try:
        figures = run_ingest_bench(BenchOptions(devices=devices, messages=messages, seconds=seconds, rate=rate,
                                                paced_seconds=paced_seconds, scenarios=chosen,
                                                soak_seconds=soak_seconds), log=typer.echo)
    except (MosquittoNotInstalled, PostgresNotInstalled) as exc:
        raise typer.BadParameter(str(exc)) from exc
    text = json.dumps(figures, indent=2)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
    typer.echo(text)
