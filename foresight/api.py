"""The HTTP API (FastAPI) and the process's web app: sign-in, devices, notifications, jobs, tickets.

Thin: every route checks who is calling (``security.Gate``), checks that the object named in the
path belongs to them, and calls the runtime's services. Access in one table:

=====================================  ===========================  ==========================
route                                  who                          someone else's object
=====================================  ===========================  ==========================
/devices, /devices/{id}                homeowner (own household),   404
                                       technician (devices of own
                                       open visits), operator (all)
/households/{id}/notifications[...]    that household's homeowner;  404 (other household),
                                       operators read               403 (technician)
/households/{id}/talk-to-person        that household's homeowner   404 / 403
/technicians/{id}/jobs[...]            that technician; operators   404 / 403
                                       read
/tickets[...], /fleet, ops routes      operator                     403
/healthz, /auth/login                  anyone
=====================================  ===========================  ==========================
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from actions import (
    AvailabilityWindow,
    Booking,
    HouseholdPrefs,
    InvalidState,
    NoSlot,
    NotFound,
    Notification,
    NotificationActionResult,
    TechnicianJob,
    Ticket,
)
from ingest.clock import Clock, SystemClock
from ingest.contract import PROFILES
from ingest.presence import Presence

from .auth import AuthStore, InvalidCredentials, Principal, Role
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .runtime import Runtime
from .schemas import (
    ERRORS,
    ActionRequest,
    Cancellation,
    Completion,
    Login,
    LoginResult,
    PersonRequest,
    PreferencesIn,
    PreferencesOut,
    PrincipalOut,
    Reschedule,
    Resolution,
    StatusChange,
    prefs_out,
)
from .security import BodyLimit, Gate, RateLimited, RateLimiter, own_household, own_technician
from .views import (
    DeviceDetail,
    DeviceHealth,
    FleetOverview,
    device_detail,
    device_health,
    fleet_overview,
    household_visits,
)

__all__ = ["create_app"]


#: Database ids are 64-bit; anything outside is a 422, not an overflow deep in the driver.
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: Text ids (household, technician, device) are bounded like the columns that hold them.
Key = Annotated[str, Path(min_length=1, max_length=64)]

#: How often the live stream looks for new notifications, and how long one stream lasts before the
#: browser's EventSource reconnects (with Last-Event-ID, so nothing is missed).
STREAM_POLL_S = 1.0
STREAM_MAX_S = 300.0
STREAM_KEEPALIVE_S = 15.0


def _anyone(request: Request) -> Principal:
    return request.app.state.gate.principal(request)


def _operator(request: Request) -> Principal:
    return request.app.state.gate.principal(request, Role.OPERATOR)


#: The signed-in caller (any role), and a signed-in operator.
Caller = Annotated[Principal, Depends(_anyone)]
Operator = Annotated[Principal, Depends(_operator)]


def create_app(rt: Runtime, *, auth_clock: Clock | None = None) -> FastAPI:
    """The FastAPI application (API and web pages) over an already built runtime.

    ``auth_clock`` times token expiry; it defaults to the wall clock, since the runtime's clock
    may be a simulated one running hours per second.
    """
    from .web import mount_web  # the pages import this module's helpers

    settings = rt.settings
    auth = AuthStore(rt.engine, clock=auth_clock or SystemClock(),
                     token_ttl=timedelta(hours=settings.token_ttl_h))
    gate = Gate(auth, limiter=RateLimiter(per_minute=settings.rate_limit_per_minute),
                login_limiter=RateLimiter(per_minute=settings.login_attempts_per_minute),
                secret_key=settings.secret_key)
    app = FastAPI(title="Foresight", version="0.1.0",
                  description="Predictive, proactive service for smart home appliances. "
                              "Sign in with `POST /auth/login`, then send `Authorization: Bearer <token>`.",
                  responses=ERRORS)
    app.state.gate = gate
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(NotFound)
    def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": f"{exc} not found"}, status_code=404)

    @app.exception_handler(InvalidState)
    def _conflict(request: Request, exc: InvalidState) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(NoSlot)
    def _no_slot(request: Request, exc: NoSlot) -> JSONResponse:
        return JSONResponse({"detail": f"{exc}; a person will arrange it (ticket {exc.ticket_id})"
                             if exc.ticket_id else str(exc), "ticket_id": exc.ticket_id}, status_code=409)

    @app.exception_handler(ValueError)
    def _bad_value(request: Request, exc: ValueError) -> JSONResponse:
        # The actions services raise ValueError for a request they cannot honour as asked
        # (a snooze in the past, a resolution without words): the caller's to fix, a 422.
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RateLimited)
    def _too_many(request: Request, exc: RateLimited) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=429,
                            headers={"Retry-After": str(int(exc.retry_after_s))})

    # -- sign-in ------------------------------------------------------------------------------

    @app.post("/auth/login", tags=["auth"])
    def login(request: Request, body: Login) -> LoginResult:
        """Exchange a user id and password for a bearer token (valid ``FORESIGHT_TOKEN_TTL_H`` hours)."""
        gate.check_login_rate(request, body.user_id)
        try:
            token, expires, principal = auth.login(body.user_id, body.password)
        except InvalidCredentials as exc:
            raise HTTPException(401, str(exc)) from None
        return LoginResult(token=token, expires_at=expires, user=PrincipalOut(**asdict(principal)))

    @app.post("/auth/logout", tags=["auth"], status_code=204)
    def logout(request: Request, who: Caller) -> Response:
        """Revoke the token this request was made with."""
        auth.revoke(request.headers["authorization"][7:].strip())
        return Response(status_code=204)

    @app.get("/auth/me", tags=["auth"])
    def me(who: Caller) -> PrincipalOut:
        """Who the token belongs to."""
        return PrincipalOut(**asdict(who))

    # -- ops ----------------------------------------------------------------------------------

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
    def metrics(who: Operator) -> Response:
        """Prometheus text exposition (operators; Prometheus sends a bearer token)."""
        return Response(rt.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/dead-letters", tags=["ops"])
    def dead_letters(who: Operator, limit: int = Query(default=100, ge=1, le=1000),
                     reason: str | None = Query(default=None, max_length=32)) -> list[dict[str, Any]]:
        """Refused messages with their reasons (payload shown as text, invalid bytes replaced)."""
        return [{"id": d.id, "topic": d.topic, "reason": d.reason, "detail": d.detail,
                 "received_at": d.received_at, "payload": d.payload[:2048].decode("utf-8", "replace")}
                for d in rt.store.dead_letters(limit=limit, reason=reason)]

    @app.get("/models", tags=["ops"])
    def models(who: Operator) -> list[dict[str, Any]]:
        """Registered model versions; one live per (kind, failure mode)."""
        return [asdict(v) for v in rt.registry.versions()]

    @app.get("/profiles", tags=["ops"])
    def profiles(who: Caller) -> dict[str, Any]:
        """The appliance profiles the backend knows."""
        return {kind: asdict(p) for kind, p in PROFILES.items()}

    @app.get("/fleet", tags=["operator"])
    def fleet(who: Operator, days: int = Query(default=14, ge=1, le=90)) -> FleetOverview:
        """Health by appliance kind, alerts per day, and the live models' held-out quality."""
        return fleet_overview(rt, days=days)

    # -- devices ------------------------------------------------------------------------------

    @app.get("/devices", tags=["devices"])
    def list_devices(who: Caller, household_id: str | None = Query(default=None, max_length=64),
                     presence: Presence | None = Query(default=None)) -> list[DeviceHealth]:
        """The devices the caller may see, with presence and health; ``presence=stale`` lists the silent ones."""
        if who.role is Role.HOMEOWNER:
            if household_id is not None and household_id != who.household_id:
                raise HTTPException(404, f"household {household_id} not found")
            household_id = who.household_id
        devices = rt.store.devices(household_id=household_id, presence=presence, now=rt.clock.now())
        if who.role is Role.TECHNICIAN:
            mine = _technician_devices(who)
            devices = [d for d in devices if d.device_id in mine]
        return device_health(rt, devices)

    @app.get("/devices/{device_id}", tags=["devices"])
    def get_device(device_id: Key, who: Caller) -> DeviceDetail:
        """One device: health, latest features, predictions per failure mode, cases, recent readings."""
        return device_detail(rt, visible_device(who, device_id))

    def visible_device(who: Principal, device_id: str):  # type: ignore[no-untyped-def]
        device = rt.store.device(device_id, now=rt.clock.now())
        allowed = device is not None and (
            who.role is Role.OPERATOR
            or (who.role is Role.HOMEOWNER and device.household_id == who.household_id)
            or (who.role is Role.TECHNICIAN and device_id in _technician_devices(who)))
        if not allowed:
            raise HTTPException(404, f"device {device_id} not found")
        return device

    def _technician_devices(who: Principal) -> frozenset[str]:
        # Only open visits (coming up, under way, overdue): a past visit gives no lasting access.
        return rt.actions.technician_devices(who.technician_id or "")

    # -- homeowner ----------------------------------------------------------------------------

    @app.get("/households/{household_id}/notifications", tags=["homeowner"])
    def household_notifications(household_id: Key, who: Caller) -> list[Notification]:
        """A household's notifications, newest first (its homeowner; operators read)."""
        own_household(who, household_id, operator_reads=True)
        return rt.actions.notifications_for_household(household_id)

    @app.get("/households/{household_id}/notifications/stream", tags=["homeowner"],
             response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "Server-sent events: `event: notification`, `id:` the notification id"}})
    async def notification_stream(request: Request, household_id: Key,
                                  after: int = Query(default=0, ge=0, le=2**63 - 1)) -> StreamingResponse:
        """Live notifications over SSE: each new or changed notification (``data.event`` created /
        updated), ``id:`` the feed position; resumes after ``Last-Event-ID`` (or ``after``)."""
        who = await run_in_threadpool(gate.principal, request)
        own_household(who, household_id, operator_reads=True)
        last = request.headers.get("last-event-id", "")
        cursor = int(last) if last.isdigit() and len(last) < 19 else after
        return StreamingResponse(_stream(request, household_id, cursor), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _stream(request: Request, household_id: str, cursor: int):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        started = idle_since = loop.time()
        yield "retry: 3000\n\n"
        while loop.time() - started < STREAM_MAX_S and not await request.is_disconnected():
            fresh = await run_in_threadpool(rt.actions.feed_after, household_id, cursor, limit=100)
            for item in fresh:
                cursor = item.feed_id
                data = json.dumps({"event": item.event, **jsonable_encoder(item.notification)})
                yield f"id: {cursor}\nevent: notification\ndata: {data}\n\n"
                idle_since = loop.time()
            if loop.time() - idle_since >= STREAM_KEEPALIVE_S:
                yield ": keep-alive\n\n"
                idle_since = loop.time()
            await asyncio.sleep(STREAM_POLL_S)

    @app.post("/households/{household_id}/notifications/{notification_id}/status", tags=["homeowner"])
    def notification_status(household_id: Key, notification_id: Id, body: StatusChange,
                            who: Caller) -> Notification:
        """The homeowner acknowledged, did, or dismissed what a notification asked."""
        own_household(who, household_id)
        owned_notification(household_id, notification_id)
        return rt.actions.set_notification_status(notification_id, body.status)

    @app.post("/households/{household_id}/notifications/{notification_id}/actions", tags=["homeowner"])
    def notification_action(household_id: Key, notification_id: Id, body: ActionRequest,
                            who: Caller) -> NotificationActionResult:
        """One tap on a notification: acknowledge, snooze, done, book a technician, this is wrong,
        or talk to a person (always a ticket for a human, never answered by automation)."""
        own_household(who, household_id)
        return rt.actions.notification_action(notification_id, body.action, household_id=household_id,
                                              snooze_until=body.snooze_until, message=body.message or "")

    @app.get("/households/{household_id}/tickets", tags=["homeowner"])
    def household_tickets(household_id: Key, who: Caller) -> list[Ticket]:
        """The household's requests to a person and other tickets about its appliances, open first."""
        own_household(who, household_id, operator_reads=True)
        return household_ticket_list(household_id)

    def household_ticket_list(household_id: str) -> list[Ticket]:
        return (rt.actions.tickets(status="open", household_id=household_id)
                + rt.actions.tickets(status="resolved", household_id=household_id, limit=20))

    @app.get("/households/{household_id}/preferences", tags=["homeowner"])
    def get_preferences(household_id: Key, who: Caller) -> PreferencesOut:
        """Channels, quiet hours, language, time zone and when someone is home for a visit."""
        own_household(who, household_id, operator_reads=True)
        return prefs_out(rt.actions.household(household_id))

    @app.put("/households/{household_id}/preferences", tags=["homeowner"])
    def put_preferences(household_id: Key, body: PreferencesIn, who: Caller) -> PreferencesOut:
        """Replace the household's preferences (safety messages still arrive during quiet hours)."""
        own_household(who, household_id)
        return prefs_out(save_preferences(household_id, body))

    def save_preferences(household_id: str, body: PreferencesIn) -> HouseholdPrefs:
        current = rt.actions.household(household_id)
        return rt.actions.upsert_household(HouseholdPrefs(
            household_id=household_id, name=body.name, language=body.language, timezone=body.timezone,
            quiet_start=body.quiet_start, quiet_end=body.quiet_end, channels=frozenset(body.channels),
            webhook_url=body.webhook_url, webhook_secret=body.webhook_secret or current.webhook_secret,
            availability=tuple(AvailabilityWindow(weekdays=frozenset(w.weekdays), start=w.start, end=w.end)
                               for w in body.availability)))

    @app.get("/households/{household_id}/visits", tags=["homeowner"])
    def visits(household_id: Key, who: Caller) -> list[Booking]:
        """The household's coming technician visits, soonest first (its homeowner; operators read)."""
        own_household(who, household_id, operator_reads=True)
        return household_visits(rt, household_id)

    @app.post("/households/{household_id}/visits/{booking_id}/reschedule", tags=["homeowner"])
    def reschedule_visit(household_id: Key, booking_id: Id, body: Reschedule, who: Caller) -> Booking:
        """Move a visit to ``start``, or to the next slot that fits the household and a technician."""
        own_household(who, household_id)
        owned_visit(household_id, booking_id)
        return rt.actions.reschedule_booking(booking_id, start=body.start)

    @app.post("/households/{household_id}/visits/{booking_id}/cancel", tags=["homeowner"])
    def cancel_visit(household_id: Key, booking_id: Id, body: Cancellation, who: Caller) -> Booking:
        """Cancel a visit, saying why (a person follows up while the fault is still expected)."""
        own_household(who, household_id)
        owned_visit(household_id, booking_id)
        return rt.actions.cancel_booking(booking_id, reason=body.reason, by="homeowner", actor=who.user_id)

    def owned_visit(household_id: str, booking_id: int) -> Booking:
        booking = rt.actions.booking(booking_id)
        if booking.household_id != household_id:
            raise NotFound(f"booking {booking_id}")
        return booking

    @app.post("/households/{household_id}/talk-to-person", tags=["homeowner"], status_code=201)
    def talk_to_person(household_id: Key, body: PersonRequest, who: Caller) -> Ticket:
        """A person is always one step away: opens a ticket with the household's context."""
        own_household(who, household_id)
        return open_person_ticket(household_id, message=body.message, device_id=body.device_id)

    def owned_notification(household_id: str, notification_id: int) -> Notification:
        for n in rt.actions.notifications_for_household(household_id):
            if n.notification_id == notification_id:
                return n
        raise HTTPException(404, f"notification {notification_id} not found for household {household_id}")

    def open_person_ticket(household_id: str, *, message: str, device_id: str | None) -> Ticket:
        if device_id is not None:
            device = rt.store.device(device_id)
            if device is None or device.household_id != household_id:
                raise HTTPException(404, f"device {device_id} not found in household {household_id}")
        return rt.actions.open_ticket_on_request(message=message, device_id=device_id,
                                                 household_id=household_id)

    # -- technician ---------------------------------------------------------------------------

    @app.get("/technicians/{technician_id}/jobs", tags=["technician"])
    def technician_jobs(technician_id: Key, who: Caller) -> list[Booking]:
        """A technician's bookings in start order (that technician; operators read)."""
        own_technician(who, technician_id, operator_reads=True)
        if technician_id not in {t.technician_id for t in rt.actions.technicians()}:
            raise HTTPException(404, f"technician {technician_id} not found")
        return rt.actions.bookings_for_technician(technician_id)

    @app.get("/technicians/{technician_id}/schedule", tags=["technician"])
    def technician_schedule(technician_id: Key, who: Caller,
                            day: date | None = Query(default=None)) -> list[TechnicianJob]:
        """Active and overdue visits (of one UTC day, if given) with the device, diagnosis and readings."""
        own_technician(who, technician_id, operator_reads=True)
        return rt.actions.technician_jobs(technician_id, day=day)

    @app.post("/technicians/{technician_id}/jobs/{booking_id}/complete", tags=["technician"])
    def complete_job(technician_id: Key, booking_id: Id, body: Completion, who: Caller) -> Booking:
        """The technician finished the visit: what they found (the outcome is a label) and the parts used."""
        own_technician(who, technician_id)
        owned_booking(technician_id, booking_id)
        return rt.actions.complete_booking(booking_id, body.diagnosis, outcome=body.outcome, parts=body.parts,
                                           actor=who.user_id)

    def owned_booking(technician_id: str, booking_id: int) -> Booking:
        booking = rt.actions.booking(booking_id)
        if booking.technician_id != technician_id:
            raise NotFound(f"booking {booking_id}")
        return booking

    # -- operator -----------------------------------------------------------------------------

    @app.get("/tickets", tags=["operator"])
    def ticket_queue(who: Operator) -> list[Ticket]:
        """The open ticket queue: most pressing first, then oldest."""
        return rt.actions.open_tickets()

    @app.get("/tickets/{ticket_id}", tags=["operator"])
    def ticket(ticket_id: Id, who: Operator) -> Ticket:
        """One ticket with its full context."""
        return rt.actions.ticket(ticket_id)

    @app.post("/tickets/{ticket_id}/resolve", tags=["operator"])
    def resolve(ticket_id: Id, body: Resolution, who: Operator) -> Ticket:
        """Resolve a ticket: what was done, what happens next (notify / book / dismiss), the label."""
        return rt.actions.resolve_ticket(ticket_id, body.resolution, action=body.action, outcome=body.outcome,
                                         message=body.message, actor=who.user_id)

    @app.post("/bookings/{booking_id}/reschedule", tags=["operator"])
    def reschedule(booking_id: Id, body: Reschedule, who: Operator) -> Booking:
        """Move a visit to ``start``, or to the next earliest slot that fits (409 when taken or none)."""
        return rt.actions.reschedule_booking(booking_id, start=body.start)

    @app.post("/bookings/{booking_id}/cancel", tags=["operator"])
    def cancel(booking_id: Id, body: Cancellation, who: Operator) -> Booking:
        """Cancel a visit, saying why."""
        return rt.actions.cancel_booking(booking_id, reason=body.reason, by="operator", actor=who.user_id)

    mount_web(app, rt=rt, gate=gate, visible_device=visible_device, owned_booking=owned_booking,
              owned_visit=owned_visit, open_person_ticket=open_person_ticket,
              household_tickets=household_ticket_list,
              save_preferences=save_preferences)
    return app
