"""The HTTP API (FastAPI): devices and their health, notifications, jobs, tickets, health check.

Thin: every route converts a request into a call on the runtime's services and returns their frozen
dataclasses. Authentication and the web pages come later (see the issues); object ids are already
checked against the household / technician in the path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from actions import Booking, Case, InvalidState, NotFound, Notification, Ticket
from ingest.contract import PROFILES
from ingest.presence import Presence
from ingest.store import DeviceInfo
from predictors.types import Prediction

from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .runtime import Runtime

__all__ = ["create_app"]


#: Database ids are 64-bit; anything outside is a 422, not an overflow deep in the driver.
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StatusChange(_Body):
    status: Literal["acknowledged", "done", "dismissed"]


def _no_control_characters(text: str) -> str:
    # Line breaks and tabs are prose; NUL and other control characters are not (PostgreSQL text
    # refuses NUL outright, which would otherwise surface as a 500).
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text):
        raise ValueError("must not contain control characters")
    return text


Text = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_no_control_characters)]


class PersonRequest(_Body):
    message: Annotated[Text, Field(max_length=2000)]
    device_id: str | None = Field(default=None, max_length=64)


class Completion(_Body):
    diagnosis: Text


class Resolution(_Body):
    resolution: Text


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """A device at a glance: presence and the worst of its failure-mode outlooks."""

    device_id: str
    kind: str
    model: str
    household_id: str | None
    service_area: str | None
    status: str
    #: online / offline / stale (silent past its kind's interval; not a failure prediction) / unknown
    presence: str
    last_seen: datetime | None
    health: str  # ok / watch / at_risk / needs_attention / unknown
    worst_mode: str | None
    p_fail: float | None
    ttf_low_h: float | None
    open_cases: int


@dataclass(frozen=True, slots=True)
class DeviceDetail:
    health: DeviceHealth
    features: dict[str, float]
    features_ts: datetime | None
    predictions: list[Prediction]
    cases: list[Case]
    recent_readings: list[dict[str, Any]]


def create_app(rt: Runtime) -> FastAPI:
    """The FastAPI application over an already built runtime."""
    app = FastAPI(title="Foresight", version="0.1.0",
                  description="Predictive, proactive service for smart home appliances.")

    @app.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InvalidState)
    def _conflict(request: Request, exc: InvalidState) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    def _health(devices: list[DeviceInfo]) -> list[DeviceHealth]:
        ids = [d.device_id for d in devices]
        preds: dict[str, list[Prediction]] = {}
        for p in rt.predictions.latest(ids):
            preds.setdefault(p.device_id, []).append(p)
        open_counts = rt.actions.open_case_counts(ids)  # one query, not one per device
        out = []
        for d in devices:
            open_cases = open_counts.get(d.device_id, 0)
            mine = preds.get(d.device_id, [])
            worst = max(mine, key=lambda p: p.p_fail, default=None)
            out.append(DeviceHealth(
                device_id=d.device_id, kind=d.kind, model=d.model, household_id=d.household_id,
                service_area=d.service_area, status=d.status, presence=d.presence, last_seen=d.last_seen,
                health=_health_label(mine, open_cases, rt), worst_mode=worst.mode if worst else None,
                p_fail=worst.p_fail if worst else None,
                ttf_low_h=min((p.ttf_low_h for p in mine), default=None), open_cases=open_cases))
        return out

    @app.get("/healthz", tags=["ops"], responses={503: {"description": "not ready (see `problems`)"}})
    def healthz() -> JSONResponse:
        """Readiness: database reachable, MQTT connected (when ingesting), a live model for every mode."""
        problems: list[str] = []
        body: dict[str, Any] = {"clock": rt.clock.now().isoformat()}
        try:
            body.update(rt.store.counts())
            live = {(v.kind, v.mode) for v in rt.registry.versions() if v.is_live}
            body["live_models"] = sorted(f"{k}.{m}" for k, m in live)
            problems += [f"no live model for {p.kind}.{m.name}" for p in PROFILES.values()
                         for m in p.failure_modes if (p.kind, m.name) not in live]
        except Exception as exc:  # the database is down: say so, do not 500
            problems.append(f"database unreachable: {type(exc).__name__}")
        ingester = rt.ingester
        if ingester is not None:
            body["mqtt_connected"] = ingester.stats.connected
            body["queue_depth"] = ingester.queue_depth()
            if not ingester.stats.connected:
                problems.append("MQTT broker not connected")
        body["status"] = "ok" if not problems else "degraded"
        body["problems"] = problems
        return JSONResponse(body, status_code=200 if not problems else 503)

    @app.get("/metrics", tags=["ops"], response_class=Response)
    def metrics() -> Response:
        """Prometheus text exposition: ingest counters, queue depth, acks outstanding, lag, decisions."""
        return Response(rt.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/devices", tags=["devices"])
    def list_devices(household_id: str | None = Query(default=None, max_length=64),
                     presence: Presence | None = Query(default=None)) -> list[DeviceHealth]:
        """Every device with its presence and health; ``presence=stale`` lists the silent ones."""
        return _health(rt.store.devices(household_id=household_id, presence=presence, now=rt.clock.now()))

    @app.get("/devices/{device_id}", tags=["devices"])
    def device_detail(device_id: str) -> DeviceDetail:
        """One device: health, latest features, predictions per failure mode, cases, recent readings."""
        device = rt.store.device(device_id, now=rt.clock.now())
        if device is None:
            raise HTTPException(404, f"device {device_id} not found")
        found = _health([device])
        vectors = rt.store.latest_features([device_id])
        return DeviceDetail(
            health=found[0], features=dict(vectors[0].values) if vectors else {},
            features_ts=vectors[0].ts if vectors else None,
            predictions=rt.predictions.latest([device_id]), cases=rt.actions.device_cases(device_id),
            recent_readings=[{"seq": r.seq, "ts": r.ts, "metrics": dict(r.metrics)}
                             for r in rt.store.recent_readings(device_id, limit=24)])

    @app.get("/households/{household_id}/notifications", tags=["homeowner"])
    def household_notifications(household_id: str) -> list[Notification]:
        """A household's notifications, newest first."""
        return rt.actions.notifications_for_household(household_id)

    @app.post("/households/{household_id}/notifications/{notification_id}/status", tags=["homeowner"])
    def notification_status(household_id: str, notification_id: Id, body: StatusChange) -> Notification:
        """The homeowner acknowledged, did, or dismissed what a notification asked."""
        _owned_notification(household_id, notification_id)
        return rt.actions.set_notification_status(notification_id, body.status)

    @app.post("/households/{household_id}/talk-to-person", tags=["homeowner"], status_code=201)
    def talk_to_person(household_id: str, body: PersonRequest) -> Ticket:
        """A person is always one step away: opens a ticket with the household's context."""
        if body.device_id is not None:
            device = rt.store.device(body.device_id)
            if device is None or device.household_id != household_id:
                raise HTTPException(404, f"device {body.device_id} not found in household {household_id}")
        return rt.actions.open_ticket_on_request(message=body.message, device_id=body.device_id,
                                                 household_id=household_id)

    @app.get("/technicians/{technician_id}/jobs", tags=["technician"])
    def technician_jobs(technician_id: str) -> list[Booking]:
        """A technician's bookings in start order."""
        if technician_id not in {t.technician_id for t in rt.actions.technicians()}:
            raise HTTPException(404, f"technician {technician_id} not found")
        return rt.actions.bookings_for_technician(technician_id)

    @app.post("/technicians/{technician_id}/jobs/{booking_id}/complete", tags=["technician"])
    def complete_job(technician_id: str, booking_id: Id, body: Completion) -> Booking:
        """The technician finished the visit and says what they found."""
        if rt.actions.booking(booking_id).technician_id != technician_id:
            raise NotFound(f"booking {booking_id}")
        return rt.actions.complete_booking(booking_id, body.diagnosis)

    @app.get("/tickets", tags=["operator"])
    def ticket_queue() -> list[Ticket]:
        """The open ticket queue: most pressing first, then oldest."""
        return rt.actions.open_tickets()

    @app.get("/tickets/{ticket_id}", tags=["operator"])
    def ticket(ticket_id: Id) -> Ticket:
        """One ticket with its full context."""
        return rt.actions.ticket(ticket_id)

    @app.post("/tickets/{ticket_id}/resolve", tags=["operator"])
    def resolve(ticket_id: Id, body: Resolution) -> Ticket:
        """Resolve a ticket with what was done."""
        return rt.actions.resolve_ticket(ticket_id, body.resolution)

    @app.get("/dead-letters", tags=["ops"])
    def dead_letters(limit: int = Query(default=100, ge=1, le=1000),
                     reason: str | None = Query(default=None, max_length=32)) -> list[dict[str, Any]]:
        """Refused messages with their reasons (payload shown as text, invalid bytes replaced)."""
        return [{"id": d.id, "topic": d.topic, "reason": d.reason, "detail": d.detail,
                 "received_at": d.received_at, "payload": d.payload[:2048].decode("utf-8", "replace")}
                for d in rt.store.dead_letters(limit=limit, reason=reason)]

    @app.get("/models", tags=["ops"])
    def models() -> list[dict[str, Any]]:
        """Registered model versions; one live per (kind, failure mode)."""
        return [asdict(v) for v in rt.registry.versions()]

    @app.get("/profiles", tags=["ops"])
    def profiles() -> dict[str, Any]:
        """The appliance profiles the backend knows."""
        return {kind: asdict(p) for kind, p in PROFILES.items()}

    def _owned_notification(household_id: str, notification_id: int) -> None:
        if notification_id not in {n.notification_id for n in rt.actions.notifications_for_household(household_id)}:
            raise HTTPException(404, f"notification {notification_id} not found for household {household_id}")

    return app


def _health_label(preds: list[Prediction], open_cases: int, rt: Runtime) -> str:
    if not preds:
        return "unknown"
    if any(p.sensor_faults or p.ood for p in preds):
        return "needs_attention"
    config = rt.actions.policy_config
    worst = max(p.p_fail for p in preds)
    if open_cases or worst >= config.p_act:
        return "at_risk"
    if worst >= config.uncertain_low:
        return "watch"
    return "ok"
