"""`foresight demo`: the whole loop on embedded defaults, with a live summary in the terminal.

An embedded amqtt broker (unless FORESIGHT_MQTT_URL names a real one), SQLite under ./var, a
simulated fleet publishing on an accelerated clock, the ingester, the scoring sweep, the actions
and the API on http://127.0.0.1:8000. With ``duration`` it stops by itself and writes a summary,
scored against the simulator's ground truth. Simulated technicians (``demo_technician``) complete
each visit when it ends with what the simulator says they would find, so outcomes become labels.
"""

from __future__ import annotations

import json
import logging
import statistics
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from actions.booking import Technician
from actions.db import BookingRow, CaseRow, LabelRow, NotificationRow, TicketRow
from actions.learning import outcome_labels
from devices_sim import Fleet, GroundTruth, Publisher, write_ground_truth_jsonl, write_manifest_csv
from ingest.clock import AcceleratedClock
from ingest.contract import PROFILES
from ingest.db import Base, create_schema, make_engine
from ingest.store import DeviceInfo
from predictors import ModelRegistry
from predictors.registry import ModelVersionRow

from .api import create_app
from .broker import EmbeddedBroker
from .demo_logins import seed_demo_logins
from .demo_people import seed_demo_households
from .demo_technician import SimulatedTechnicians
from .runtime import Runtime, build_runtime
from .settings import Settings
from .training import train_on_simulation

__all__ = ["DemoOptions", "run_demo"]

log = logging.getLogger(__name__)

#: Simulated time the demo starts at: early summer, so air conditioners run.
DEMO_START = datetime(2026, 6, 1, tzinfo=UTC)
#: The appliances were in service before the demo starts; this much history is published at once.
WARMUP = timedelta(days=4)

#: The demo's service organisation: who can fix what, where, when (UTC working hours).
DEMO_TECHNICIANS: tuple[Technician, ...] = tuple(
    Technician(technician_id=tid, name=name, skills=frozenset(skills), service_areas=frozenset(areas),
               working_hours=(8, 18), working_days=frozenset(range(6)))
    for tid, name, skills, areas in (
        ("tech-ana", "Ana Ruiz", {"hvac", "water_purifier"}, {"SE1", "E2"}),
        ("tech-ben", "Ben Okafor", {"hvac", "rice_cooker"}, {"N7", "E2"}),
        ("tech-chen", "Chen Li", {"rice_cooker", "water_purifier"}, {"SE1", "N7", "E2"}),
        ("tech-dara", "Dara Nolan", {"hvac"}, {"SE1", "N7"}),
    ))


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    duration_s: float | None = None
    summary_json: Path | None = None
    devices: int = 50
    speed: float = 4 * 3600.0  # simulated seconds per real second: 4 simulated hours a second
    seed: int = 7
    api: bool = True
    train_devices: int = 300
    train_days: int = 150
    var_dir: Path = Path("var")
    live: bool = True
    #: Simulated technicians complete the visits (``demo_technician``); off: visits go overdue.
    technicians: bool = True


def run_demo(settings: Settings, options: DemoOptions) -> dict[str, Any]:
    """Run the demo until ``duration_s`` (or Ctrl-C); returns the summary."""
    console = Console()
    demo_dir = options.var_dir / "demo"
    demo_dir.mkdir(parents=True, exist_ok=True)
    console.print(f"[bold]Foresight demo[/bold] — database {settings.database_url}")
    _fresh_demo_database(settings)
    _ensure_models(settings, options, console)

    broker = None
    if settings.mqtt_url is None:
        broker = EmbeddedBroker(port=_free_port())
        broker.start()
        host, port, user, password, tls = broker.host, broker.port, None, None, None
        console.print(f"embedded MQTT broker (amqtt) on {host}:{port}")
    else:
        host, port, user, password = settings.mqtt_endpoint()
        tls = settings.mqtt_tls_context()
        console.print(f"MQTT broker {host}:{port}" + (" (TLS)" if tls else ""))

    clock = AcceleratedClock(DEMO_START, options.speed)
    rt = build_runtime(settings, clock=clock)
    fleet = _demo_fleet(options)
    rt.store.register_devices(DeviceInfo(**row) for row in fleet.manifest())  # type: ignore[arg-type]
    write_manifest_csv(demo_dir / "manifest.csv", fleet.devices)
    rt.seed_technicians(list(DEMO_TECHNICIANS))
    seed_demo_households(rt, fleet)
    logins = seed_demo_logins(rt, fleet, DEMO_TECHNICIANS)

    server, server_thread = (None, None)
    publisher = Publisher(fleet=fleet, host=host, port=port, now=clock.now, tls_context=tls)
    # The same fleet again (same seed: same devices, same failures), for the technicians' eyes.
    technicians = SimulatedTechnicians(rt, technician_ids=[t.technician_id for t in DEMO_TECHNICIANS],
                                       shadow=_demo_fleet(options)) if options.technicians else None
    wall_start = time.monotonic()
    try:
        rt.start_ingest(host=host, port=port, username=user, password=password, tls_context=tls)
        rt.start_scheduler()
        if technicians is not None:
            technicians.start()
        if options.api:
            server, server_thread = _start_api(rt, settings)
            if server.started:
                base = f"http://{settings.api_host}:{settings.api_port}"
                console.print(f"web app on {base}  (API docs: {base}/docs) — sign in as:")
                for login in logins:
                    console.print(f"  {login.role.value:<10}  user [bold]{login.user_id}[/bold]  "
                                  f"password [bold]{login.password}[/bold]  — {login.about}")
            else:
                console.print(f"[red]API could not start on {settings.api_host}:{settings.api_port} (port in use?); "
                              "set FORESIGHT_API_PORT — the demo runs on without it[/red]")
        publisher.start()
        _run_until(rt, fleet, options, console, wall_start)
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        if technicians is not None:
            technicians.stop()
        publisher.stop()
        if rt.ingester is not None:
            rt.ingester.wait_idle(timeout_s=10)
        rt.stop()
        if server is not None:
            server.should_exit = True
            server_thread.join(timeout=10)  # type: ignore[union-attr]
        if broker is not None:
            broker.stop()
    truth = fleet.ground_truth
    write_ground_truth_jsonl(demo_dir / "ground_truth.jsonl", truth)
    summary = summarize(rt, truth, sim_start=DEMO_START, sim_end=clock.now(),
                        wall_s=time.monotonic() - wall_start, speed=options.speed,
                        published=publisher.published)
    summary["database"] = settings.database_url
    rt.engine.dispose()
    if options.summary_json is not None:
        options.summary_json.parent.mkdir(parents=True, exist_ok=True)
        options.summary_json.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    console.print(_summary_table(summary))
    return summary


def summarize(rt: Runtime, truth: list[GroundTruth], *, sim_start: datetime, sim_end: datetime,
              wall_s: float, speed: float, published: int) -> dict[str, Any]:
    """Counts of what happened, and how many real failures were anticipated, with what lead."""
    counts = rt.store.counts()
    with Session(rt.engine) as s:
        n = {name: s.scalar(select(func.count()).select_from(table)) or 0
             for name, table in (("notifications", NotificationRow), ("bookings", BookingRow),
                                 ("tickets", TicketRow), ("labels", LabelRow))}
        visits = dict(s.execute(select(BookingRow.status, func.count()).group_by(BookingRow.status)).all())
        outcomes = dict(s.execute(select(LabelRow.outcome, func.count()).where(LabelRow.source == "technician")
                                  .group_by(LabelRow.outcome)).all())
        cases = list(s.execute(select(CaseRow.device_id, CaseRow.mode, CaseRow.opened_at)))
    failures = [g for g in truth if g.what == "failure" and sim_start <= g.at <= sim_end]
    leads: list[float] = []
    for g in failures:
        opened = [o for d, m, o in cases if d == g.device_id and m == g.mode
                  and g.at - timedelta(days=14) <= o <= g.at]
        if opened:
            leads.append((g.at - min(opened)).total_seconds() / 3600)
    return {
        "readings_ingested": counts["readings"], "rejected": counts["rejected"], "devices": counts["devices"],
        "notifications": n["notifications"], "bookings": n["bookings"], "tickets": n["tickets"],
        "visits_completed": visits.get("completed", 0), "visits_overdue": visits.get("overdue", 0),
        "visit_outcomes": {k: outcomes[k] for k in sorted(outcomes)},
        "labels": n["labels"], "training_labels": len(outcome_labels(rt.engine)),
        "messages_published": published,
        "failures": len(failures),
        "failures_anticipated": len(leads),
        "failures_anticipated_48h": sum(1 for lead in leads if lead >= 48),
        "median_lead_time_h": round(statistics.median(leads), 1) if leads else None,
        "min_lead_time_h": round(min(leads), 1) if leads else None,
        "sensor_faults": sum(1 for g in truth if g.what == "sensor_fault" and g.at <= sim_end),
        "simulated_start": sim_start.isoformat(), "simulated_end": sim_end.isoformat(),
        "simulated_days": round((sim_end - sim_start).total_seconds() / 86400, 2),
        "wall_seconds": round(wall_s, 1), "speed": speed,
    }


def _demo_fleet(options: DemoOptions) -> Fleet:
    """The demo's fleet: deterministic by seed, so a second build is the same fleet."""
    return Fleet.build(n_devices=options.devices, seed=options.seed, start=DEMO_START - WARMUP,
                       initial_wear="mixed", plant_after=WARMUP)


def _run_until(rt: Runtime, fleet: Fleet, options: DemoOptions, console: Console, wall_start: float) -> None:
    deadline = None if options.duration_s is None else wall_start + options.duration_s
    if not options.live:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
        return
    with Live(console=console, refresh_per_second=2, transient=False) as live:
        while deadline is None or time.monotonic() < deadline:
            live.update(_live_table(rt, fleet))
            time.sleep(0.5)
        live.update(_live_table(rt, fleet))


def _live_table(rt: Runtime, fleet: Fleet) -> Table:
    summary = summarize(rt, fleet.ground_truth, sim_start=DEMO_START, sim_end=rt.clock.now(),
                        wall_s=0, speed=0, published=0)
    table = Table(title=f"simulated time {rt.clock.now():%Y-%m-%d %H:%M} UTC", show_header=False)
    for key in ("readings_ingested", "rejected", "devices", "notifications", "bookings", "visits_completed",
                "visits_overdue", "labels", "tickets", "failures", "failures_anticipated",
                "failures_anticipated_48h", "median_lead_time_h"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    if rt.ingester is not None:
        table.add_row("ingest queue", str(rt.ingester.queue_depth()))
    return table


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Demo summary", show_header=False)
    for key, value in summary.items():
        table.add_row(key, str(value))
    return table


def _fresh_demo_database(settings: Settings) -> None:
    """Each demo run starts from empty operational tables; trained models are kept between runs.

    Only an SQLite database is reset; a demo pointed at another database leaves it as it is.
    """
    if not settings.database_url.startswith("sqlite"):
        return
    engine = make_engine(settings.database_url)
    keep = {ModelVersionRow.__tablename__}
    Base.metadata.drop_all(engine, tables=[t for t in Base.metadata.sorted_tables if t.name not in keep])
    create_schema(engine)
    engine.dispose()


def _ensure_models(settings: Settings, options: DemoOptions, console: Console) -> None:
    """Train on a simulated history unless every failure mode has been trained already.

    A mode whose model did not beat the base rate is registered but not live; it counts as trained,
    so the next run does not spend minutes training it again to the same result.
    """
    engine = make_engine(settings.database_url)
    create_schema(engine)
    registry = ModelRegistry(engine, settings.model_dir)
    versions = registry.versions()
    trained = {(v.kind, v.mode) for v in versions}
    live = {(v.kind, v.mode) for v in versions if v.is_live}
    missing = [f"{profile.kind}.{mode.name}" for profile in PROFILES.values() for mode in profile.failure_modes
               if (profile.kind, mode.name) not in trained]
    if not missing:
        console.print("live models: " + ", ".join(v.version for v in versions if v.is_live))
        unskilled = [f"{kind}.{mode}" for kind, mode in sorted(trained - live)]
        if unskilled:
            console.print("trained but not live (no better than the base rate): " + ", ".join(unskilled))
        engine.dispose()
        return
    console.print(f"not trained yet: {', '.join(missing)}: training on a simulated history "
                  f"({options.train_devices} devices × {options.train_days} days, a few minutes)…")
    reports, timing = train_on_simulation(registry, devices=options.train_devices, days=options.train_days,
                                          seed=options.seed + 1000, now=DEMO_START)
    for r in reports:
        s = r.summary
        console.print(f"  {r.kind}.{r.mode}: {r.version or 'skipped: ' + r.skipped}"
                      + (f" — held-out AUC {s.get('auc')}, Brier {s.get('brier')} "
                         f"(base rate {s.get('brier_base_rate')})" if r.trained else ""))
    console.print(f"  simulated {int(timing['readings'])} readings, {int(timing['failures'])} failures in "
                  f"{timing['simulate_s']:.1f}s; trained in {timing['train_s']:.1f}s")
    engine.dispose()


def _start_api(rt: Runtime, settings: Settings) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(create_app(rt), host=settings.api_host, port=settings.api_port,
                            log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=2)  # open live streams must not hold up the exit
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server, thread


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
