"""The `foresight` command line: demo, train, predict, simulate, serve, models, db upgrade."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from devices_sim import Fleet, write_failures_csv, write_ground_truth_jsonl, write_manifest_csv, write_telemetry_csv
from ingest.clock import SystemClock
from ingest.contract import PROFILES, Telemetry
from ingest.db import make_engine
from predictors import ModelRegistry

from .bench_cli import bench_app
from .devices_cli import devices_app
from .logs import configure_logging
from .models_cli import models_app
from .users_cli import users_app
from .settings import Settings
from .training import TRAINING_START, train_on_simulation

app = typer.Typer(help="Foresight: predictive, proactive service for smart home appliances.",
                  no_args_is_help=True, add_completion=False)
console = Console()
app.add_typer(devices_app, name="devices")
app.add_typer(bench_app, name="bench")
app.add_typer(users_app, name="users")
app.add_typer(models_app, name="models")
db_app = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _settings() -> Settings:
    return Settings()


@app.command()
def demo(
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds (default: run until Ctrl-C).")] = None,
    summary_json: Annotated[Path | None, typer.Option(help="Write the end-of-run summary here as JSON.")] = None,
    devices: Annotated[int, typer.Option(min=1, max=5000, help="Simulated appliances.")] = 50,
    speed: Annotated[float, typer.Option(min=1.0, help="Simulated hours per real second.")] = 4.0,
    seed: Annotated[int, typer.Option(min=0, help="Fleet seed.")] = 7,
    api: Annotated[bool, typer.Option(help="Serve the HTTP API on FORESIGHT_API_HOST:PORT.")] = True,
    live: Annotated[bool, typer.Option(help="Live summary in the terminal.")] = True,
    technicians: Annotated[bool, typer.Option(help="Simulated technicians complete the visits.")] = True,
) -> None:
    """Run the whole loop on embedded defaults: broker, SQLite, simulated fleet, ingest, scoring, actions, API."""
    from .demo import DemoOptions, run_demo

    settings = _settings()
    configure_logging(level=logging.WARNING, fmt=settings.log_format)
    # Under load a sweep can outlast its interval; APScheduler then skips (coalesces) the next
    # run and says so at WARNING on every tick. Expected, so not shown in the demo's terminal.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    run_demo(settings, DemoOptions(duration_s=duration, summary_json=summary_json, devices=devices,
                                   speed=speed * 3600.0, seed=seed, api=api, live=live,
                                   technicians=technicians))


@app.command()
def train(
    telemetry: Annotated[Path | None, typer.Option(help="Onboard from history: telemetry CSV (device_id,ts,kind,<metrics>).")] = None,
    failures: Annotated[Path | None, typer.Option(help="Failures CSV (device_id,failed_at,mode); needed with --telemetry.")] = None,
    profile: Annotated[Path | None, typer.Option(help="Profile TOML of a new kind (default: inferred from the history).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only check the files and print the profiles; train nothing.")] = False,
    write_profiles: Annotated[Path | None, typer.Option(help="Write each new kind's profile here as <kind>.toml, to edit and pass back with --profile.")] = None,
    devices: Annotated[int, typer.Option(min=10, help="Devices in the simulated training fleet.")] = 300,
    days: Annotated[int, typer.Option(min=14, help="Days of simulated history.")] = 150,
    seed: Annotated[int, typer.Option(min=0)] = 1007,
) -> None:
    """Train and register a model per failure mode: on a simulated history, or from files (docs/onboarding.md)."""
    from predictors import HistoryError

    from .migrate import upgrade
    from .kinds import install_profiles
    from .training import print_reports, train_from_files

    if (telemetry is None) != (failures is None):
        raise typer.BadParameter("give both --telemetry and --failures (a history needs its failures)",
                                 param_hint="--telemetry/--failures")
    if (profile is not None or check or write_profiles is not None) and telemetry is None:
        raise typer.BadParameter("--profile, --check and --write-profiles go with --telemetry and "
                                 "--failures", param_hint="--profile")
    settings = _settings()
    _ensure_sqlite_dir(settings.database_url)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    registry = ModelRegistry(engine, settings.model_dir)
    if telemetry is not None and failures is not None:
        install_profiles(registry.profiles())
        try:
            _, _, reports = train_from_files(registry, telemetry=telemetry, failures=failures,
                                             profile=profile, now=SystemClock().now(),
                                             console=console, check_only=check,
                                             write_profiles=write_profiles)
        except HistoryError as exc:
            console.print(f"[red]error[/]: {exc}\nnothing was trained or registered.")
            raise typer.Exit(2) from None
        if check:
            console.print("the files are fine; nothing was trained (--check).")
            return
        print_reports(reports, console=console)
        if not any(r.trained for r in reports):
            console.print("[red]no model trained[/]: nothing was registered.")
            raise typer.Exit(1)
        return
    with console.status("simulating a history and training"):
        reports, timing = train_on_simulation(registry, devices=devices, days=days, seed=seed,
                                              now=SystemClock().now())
    print_reports(reports, console=console)
    console.print(f"simulated {int(timing['readings'])} readings with {int(timing['failures'])} failures and "
                  f"{int(timing['sensor_faults'])} sensor faults (their readings left out of training) "
                  f"in {timing['simulate_s']:.1f}s, trained in {timing['train_s']:.1f}s")


@app.command()
def predict(
    telemetry: Annotated[Path, typer.Option(help="Telemetry CSV (device_id,ts,kind,<metrics>) to score.")],
    json_path: Annotated[Path, typer.Option("--json", help="Write the predictions here as JSON.")],
) -> None:
    """Score the latest state of every device in a telemetry file with the live models."""
    from predictors import HistoryError

    from .migrate import upgrade
    from .kinds import install_profiles
    from .predicting import predict_file, write_json

    settings = _settings()
    _ensure_sqlite_dir(settings.database_url)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    registry = ModelRegistry(engine, settings.model_dir)
    install_profiles(registry.profiles())
    try:
        with console.status(f"scoring {telemetry}"):
            doc = predict_file(registry, telemetry)
    except HistoryError as exc:
        console.print(f"[red]error[/]: {exc}")
        raise typer.Exit(2) from None
    write_json(doc, json_path)
    s = doc["summary"]
    console.print(f"{s['devices']} devices, {s['scored']} scored ({s['predictions']} predictions); "
                  f"the policy would act on {s['would_act']}, {s['escalated_to_human']} of them "
                  f"escalated to a person; written to {json_path}")


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for telemetry.csv, failures.csv, ground_truth.jsonl, manifest.csv.")],
    devices: Annotated[int, typer.Option(min=1)] = 100,
    days: Annotated[int, typer.Option(min=1)] = 90,
    seed: Annotated[int, typer.Option(min=0)] = 1,
) -> None:
    """Write a simulated fleet history as files (the onboarding format), with its ground truth."""
    from collections import Counter

    from rich.progress import Progress
    from rich.table import Table

    fleet = Fleet.build(n_devices=devices, seed=seed, start=TRAINING_START, initial_wear="mixed")
    messages = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"simulating {devices} devices", total=days)
        for day in range(1, days + 1):  # a day at a time keeps the fleet's outbox small
            messages.extend(fleet.advance(TRAINING_START + timedelta(days=day)))
            progress.advance(task)
    telemetry = [m for m in messages if isinstance(m, Telemetry)]
    out.mkdir(parents=True, exist_ok=True)
    write_telemetry_csv(out / "telemetry.csv", telemetry)
    write_failures_csv(out / "failures.csv", fleet.ground_truth)
    write_ground_truth_jsonl(out / "ground_truth.jsonl", fleet.ground_truth)
    write_manifest_csv(out / "manifest.csv", fleet.devices)
    kinds = {d.device_id: d.kind for d in fleet.devices}
    events = Counter((kinds[g.device_id], g.what, g.mode) for g in fleet.ground_truth)
    readings = Counter(t.kind for t in telemetry)
    table = Table("kind", "devices", "readings", "event", "count")
    for kind, n in sorted(Counter(kinds.values()).items()):
        rows = sorted((what, mode, c) for (k, what, mode), c in events.items() if k == kind) or [("", "", 0)]
        for i, (what, mode, c) in enumerate(rows):
            table.add_row(kind if i == 0 else "", str(n) if i == 0 else "", f"{readings[kind]:,}" if i == 0 else "",
                          f"{what} {mode}".strip(), str(c))
    console.print(table)
    failures = sum(1 for g in fleet.ground_truth if g.what == "failure")
    console.print(f"wrote {len(telemetry)} readings of {devices} devices over {days} days "
                  f"({failures} failures) to {out}")


@app.command()
def evaluate(
    history: Annotated[Path, typer.Option(help="History folder (telemetry.csv, failures.csv[, ground_truth.jsonl]).")],
    json_path: Annotated[Path, typer.Option("--json", help="Write the report JSON here; plots and HTML beside it.")],
    seed: Annotated[int, typer.Option(min=0, help="Seed of the training fleet simulated when no model is live "
                                                  "(use another seed than the history's).")] = 1007,
    sweep_minutes: Annotated[float, typer.Option(min=1.0, help="Scoring interval replayed, in event-time minutes.")] = 60.0,
) -> None:
    """Replay a held-out history through the live models and the policy; report recall, precision, lead time."""
    from rich.table import Table

    from actions.policy import PolicyConfig
    from predictors import Scorer

    from .evaluate import HEADLINE, EvaluationError, evaluate_history, load_history, write_report
    from .migrate import upgrade

    settings = _settings()
    _ensure_sqlite_dir(settings.database_url)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    registry = ModelRegistry(engine, settings.model_dir)
    if not any(registry.live(p.kind, m.name) for p in PROFILES.values() for m in p.failure_modes):
        console.print(f"no live model: training on a simulated fleet first (seed {seed})")
        train_on_simulation(registry, devices=300, days=150, seed=seed, now=SystemClock().now())
    try:
        console.print(f"reading {history}")
        data = load_history(history)
        report = evaluate_history(data, scorer=Scorer(registry), config=PolicyConfig(),
                                  sweep=timedelta(minutes=sweep_minutes), progress=console.print)
    except (EvaluationError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--history") from None
    paths = write_report(report, json_path)
    table = Table("slice", *HEADLINE, "failures", "alerts", "cases")
    rows = [("overall", report["overall"]), *report["by_kind"].items(), *report["by_mode"].items()]
    for name, r in rows:
        table.add_row(name, *(_cell(r.get(k)) for k in (*HEADLINE, "failures", "alerts", "cases")))
    console.print(table)
    console.print(f"report: {paths['html']} (JSON {paths['json']}, plots {paths['lead_png']}, "
                  f"{paths['calibration_png']})")


def _cell(value: object) -> str:
    return "–" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


@app.command()
def serve() -> None:
    """Run the service against FORESIGHT_MQTT_URL and FORESIGHT_DATABASE_URL on the wall clock."""
    import uvicorn

    from .api import create_app
    from .runtime import build_runtime

    settings = _settings()
    configure_logging(level=logging.INFO, fmt=settings.log_format)
    if settings.mqtt_url is None:
        raise typer.BadParameter("set FORESIGHT_MQTT_URL=mqtt://user:pass@host:port", param_hint="environment")
    _ensure_sqlite_dir(settings.database_url)
    rt = build_runtime(settings, clock=SystemClock())
    host, port, user, password = settings.mqtt_endpoint()
    rt.start_ingest(host=host, port=port, username=user, password=password, tls_context=settings.mqtt_tls_context())
    rt.start_scheduler()
    try:  # uvicorn handles SIGINT/SIGTERM and returns
        uvicorn.run(create_app(rt), host=settings.api_host, port=settings.api_port, log_level="info",
                    log_config=None)  # uvicorn's loggers go through configure_logging's handler
    finally:
        rt.stop()


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate FORESIGHT_DATABASE_URL to the newest schema (serve also does this at start-up); safe to repeat."""
    from .migrate import upgrade

    settings = _settings()
    _ensure_sqlite_dir(settings.database_url)
    console.print(f"database at revision {upgrade(settings.database_url, revision)}")


def _ensure_sqlite_dir(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    app()
