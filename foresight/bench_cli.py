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
    messages: Annotated[int, typer.Option(min=1, help="Telemetry messages published per scenario.")] = 40_000,
    seconds: Annotated[float, typer.Option(min=1.0, help="Stop measuring a scenario after this long.")] = 25.0,
    rate: Annotated[float, typer.Option(min=0.0, help="Publish rate in msgs/s (0: as fast as possible).")] = 0.0,
) -> None:
    """Raw paho vs naive ORM vs Foresight's ingest path, on a private Mosquitto, side by side."""
    from .ingest_bench import BenchOptions, run_ingest_bench
    from .mosquitto import MosquittoNotInstalled

    try:
        figures = run_ingest_bench(BenchOptions(devices=devices, messages=messages, seconds=seconds, rate=rate),
                                   log=typer.echo)
    except MosquittoNotInstalled as exc:
        raise typer.BadParameter(str(exc), param_hint="mosquitto") from exc
    text = json.dumps(figures, indent=2)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text + "\n")
    typer.echo(text)
