"""Process wiring: build every part once from settings and a clock, and run the scoring loop.

The one place where engines, stores, the registry, the MQTT ingester and the scheduler are
constructed; everything below receives what it needs as arguments.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

import actions.db  # noqa: F401  (registers the actions tables on the shared metadata)
from actions import ActionService, Outcome, PolicyConfig, seed_technicians
from actions.booking import Technician
from actions.jobs import register_jobs
from actions.webhook import HttpWebhookSender
from actions.learning import retrain_from_outcomes, watch_drift
from ingest.clock import Clock
from ingest.db import make_engine
from ingest.store import IngestStore
from ingest.subscriber import Ingester
from ingest.writer_process import StoreSpec
from predictors import ModelRegistry, Scorer
from predictors.store import PredictionStore

from .jobs_lease import JobsLease
from .metrics import Metrics
from .migrate import upgrade
from .settings import Settings
from .kinds import install_profiles

__all__ = ["Runtime", "build_runtime", "score_pending"]

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one Foresight process runs, built once."""

    settings: Settings
    clock: Clock
    engine: Engine
    store: IngestStore
    registry: ModelRegistry
    scorer: Scorer
    predictions: PredictionStore
    actions: ActionService
    scheduler: BackgroundScheduler | None = None
    ingester: Ingester | None = None
    metrics: Metrics = field(default_factory=lambda: Metrics(CollectorRegistry()))
    _score_lock: threading.Lock = field(default_factory=threading.Lock)
    scored: int = 0
    _lease: JobsLease | None = None
    _standby: threading.Thread | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start_ingest(self, *, host: str, port: int, username: str | None = None,
                     password: str | None = None, tls_context: ssl.SSLContext | None = None) -> Ingester:
        """Connect the MQTT ingester (returns once subscribed); over TLS when given a context.

        With ``ingest_writer="process"`` the batches are stored by a child process that opens the
        same database (``ingest.writer_process``); the URL, password included, reaches it over a
        private socket, never its command line or environment.
        """
        writer = self.settings.ingest_writer
        assert writer is not None  # Settings resolves the default
        spec = StoreSpec(database_url=self.settings.database_url) if writer == "process" else None
        self.ingester = Ingester(store=self.store, writer=writer, store_spec=spec,
                                 batches_in_flight=self.settings.ingest_batches_in_flight,
                                 writer_timeout_s=self.settings.ingest_writer_timeout_s,
                                 clock=self.clock, host=host, port=port,
                                 client_id=self.settings.ingest_client_id, username=username,
                                 mqtt_version=self.settings.mqtt_version,
                                 session_expiry_s=self.settings.ingest_session_expiry_s,
                                 shared_group=self.settings.ingest_shared_group,
                                 password=password, queue_size=self.settings.ingest_queue_size,
                                 batch_size=self.settings.ingest_batch_size,
                                 on_batch=self.metrics.observe_batch, tls_context=tls_context)
        self.metrics.attach_ingester(self.ingester)
        self.ingester.start()
        return self.ingester

    def start_scheduler(self, *, persistent: bool = True) -> BackgroundScheduler | None:
        """Start APScheduler with the scoring sweep and the actions jobs, in one process per database.

        The process first takes the jobs lease (``foresight.jobs_lease``). Without it — another
        process runs the jobs — this one stays on standby, retrying every
        ``scheduler_standby_retry_s``, and takes over when the holder stops or dies; it returns None
        then. With ``persistent`` the jobs live in the database (``apscheduler_jobs``, built by the
        migrations): a restart finds them, and explicit ids + ``replace_existing`` keep one copy.
        """
        self._stopping.clear()
        self._lease = JobsLease(self.engine)
        if self._lease.try_acquire():
            return self._start_jobs(persistent=persistent)
        log.warning("background jobs run in another process for this database; standing by")
        self._standby = threading.Thread(target=self._stand_by, kwargs={"persistent": persistent},
                                         name="foresight-jobs-standby", daemon=True)
        self._standby.start()
        return None

    def _stand_by(self, *, persistent: bool) -> None:
        assert self._lease is not None
        while not self._stopping.wait(self.settings.scheduler_standby_retry_s):
            try:
                if self._lease.try_acquire():
                    log.warning("took over the background jobs for this database")
                    self._start_jobs(persistent=persistent)
                    return
            except Exception:
                log.exception("could not check the jobs lease; retrying")

    def _start_jobs(self, *, persistent: bool) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(timezone="UTC")
        if persistent:
            scheduler.add_jobstore(SQLAlchemyJobStore(engine=self.engine, tablename="apscheduler_jobs"), "default")
        # Like the actions jobs: the job stores a name, not the runtime (a persistent job store
        # pickles its arguments, and an engine or MQTT client neither pickles nor survives a restart).
        _RUNTIMES[_SCORING] = self
        scheduler.add_job(_score_job, "interval", seconds=self.settings.score_interval_s, args=[_SCORING],
                          id="foresight.score_pending", replace_existing=True, coalesce=True,
                          max_instances=1)
        scheduler.add_job(_roll_up_job, "interval", seconds=self.settings.retention_interval_s, args=[_SCORING],
                          id="foresight.roll_up_readings", replace_existing=True, coalesce=True, max_instances=1)
        register_jobs(scheduler, service=self.actions, interval_s=self.settings.score_interval_s,
                      sender=HttpWebhookSender(allow_private=self.settings.webhook_allow_private))
        for job, job_id, every_s in ((_retrain_job, "foresight.retrain", self.settings.retrain_interval_s),
                                     (_drift_job, "foresight.drift", self.settings.drift_interval_s)):
            scheduler.add_job(job, "interval", seconds=every_s, args=[_SCORING], id=job_id,
                              replace_existing=True, coalesce=True, max_instances=1)
        scheduler.add_job(_lease_job, "interval", seconds=self.settings.scheduler_standby_retry_s, args=[_SCORING],
                          id="foresight.jobs_lease", replace_existing=True, coalesce=True, max_instances=1)
        scheduler.start()
        self.scheduler = scheduler
        return scheduler

    def check_lease(self) -> bool:
        """Keep running the jobs only while the lease is ours; otherwise stop them and stand by."""
        lease, scheduler = self._lease, self.scheduler
        if lease is None or scheduler is None or lease.still_held() or self._stopping.is_set():
            return True
        log.error("lost the background-jobs lease (database session cut); stopping the jobs, standing by")
        self.scheduler = None
        scheduler.shutdown(wait=False)
        lease.release()
        self._standby = threading.Thread(target=self._stand_by, kwargs={"persistent": True},
                                         name="foresight-jobs-standby", daemon=True)
        self._standby.start()
        return False

    def stop(self) -> None:
        self._stopping.set()
        if self._standby is not None:
            self._standby.join(timeout=30)
            self._standby = None
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        if self.ingester is not None:
            self.ingester.stop()
            self.metrics.attach_ingester(None)
            self.ingester = None

    def seed_technicians(self, technicians: list[Technician]) -> None:
        seed_technicians(self.engine, technicians)


def build_runtime(settings: Settings, *, clock: Clock, policy_config: PolicyConfig | None = None) -> Runtime:
    """Migrate the database to the current schema and build every service object (nothing is started)."""
    if settings.database_url.startswith("sqlite:///"):
        Path(settings.database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade(engine)  # Alembic on every backend: a no-op at head (~15 ms on SQLite)
    registry = ModelRegistry(engine, settings.model_dir)
    install_profiles(registry.profiles())  # kinds onboarded from history (foresight train --telemetry)
    return Runtime(settings=settings, clock=clock, engine=engine,
                   store=IngestStore(engine, clock=clock), registry=registry, scorer=Scorer(registry),
                   predictions=PredictionStore(engine),
                   actions=ActionService(engine, clock=clock, policy_config=policy_config),
                   metrics=Metrics(CollectorRegistry()))


def score_pending(rt: Runtime, *, limit: int = 5000) -> list[Outcome]:
    """Score every device whose features changed since last scored, and act on the predictions."""
    with rt._score_lock:
        vectors = rt.store.pending_vectors(limit=limit)
        if not vectors:
            return []
        now = rt.clock.now()
        predictions = rt.scorer.score_many(vectors, now=now)
        rt.predictions.save(predictions)
        outcomes = rt.actions.handle(predictions)
        rt.store.mark_scored(vectors)
        rt.scored += len(predictions)
        rt.metrics.observe_outcomes(len(predictions), outcomes)
        return outcomes


_SCORING = "default"
_RUNTIMES: dict[str, Runtime] = {}


def _score_job(name: str) -> None:
    """Scheduler job: one scoring sweep; errors are logged and the next sweep retries."""
    try:
        score_pending(_RUNTIMES[name])
    except Exception:
        log.exception("scoring sweep failed; the vectors stay pending and are retried")


def _lease_job(name: str) -> None:
    """Scheduler job: stop running the jobs if this process no longer holds the jobs lease."""
    try:
        _RUNTIMES[name].check_lease()
    except Exception:
        log.exception("could not check the background-jobs lease")


def _roll_up_job(name: str) -> None:
    """Scheduler job: roll readings past the retention window into daily aggregates."""
    rt = _RUNTIMES[name]
    try:
        done = rt.store.roll_up(retention=timedelta(days=rt.settings.retention_days))
        if done.readings_rolled_up:
            log.info("rolled %d readings of %d devices up to before %s", done.readings_rolled_up, done.devices,
                     done.cutoff.isoformat())
    except Exception:
        log.exception("retention roll-up failed; the next run retries")


def _retrain_job(name: str) -> None:
    """Scheduler job: retrain the live models from the outcome labels; promote only what does not regress."""
    rt = _RUNTIMES[name]
    try:
        for r in retrain_from_outcomes(rt.engine, rt.registry, now=rt.clock.now(),
                                       retention=timedelta(days=rt.settings.retention_days)):
            log.info("retrain %s.%s: %s (challenger %s)", r.kind, r.mode, r.reason, r.challenger)
    except Exception:
        log.exception("retrain failed; the live models stay as they were")


def _drift_job(name: str) -> None:
    """Scheduler job: compare live features with each model's training reference; ticket on drift."""
    rt = _RUNTIMES[name]
    try:
        for alert in watch_drift(rt.engine, rt.registry, now=rt.clock.now()):
            log.warning("feature drift on %s: %s", alert.report.version,
                        ", ".join(f.feature for f in alert.report.drifting))
    except Exception:
        log.exception("drift check failed; the next check retries")
