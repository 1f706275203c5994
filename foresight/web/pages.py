"""The web app's pages: sign-in, the homeowner's home, the technician's day, the operator console.

Server-rendered Jinja2; forms post ``application/x-www-form-urlencoded`` with a CSRF token tied to
the session, and work without JavaScript. The one script (``static/app.js``) adds the homeowner's
live notification stream. Anonymous visitors are sent to ``/login``; a wrong role gets 403, someone
else's object 404 — the same rules as the API, through the same checks.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from actions import InvalidState, NotFound

from ..auth import InvalidCredentials, Principal, Role
from ..runtime import Runtime
from ..security import SESSION_COOKIE, Gate, RateLimited, csrf_token, own_technician, require_role
from ..views import device_health, fleet_overview
from .charts import bar_chart, line_chart

__all__ = ["mount_web"]

_HERE = Path(__file__).parent
_HEALTH_WORDS = {"ok": "Working well", "watch": "Keep an eye on it", "at_risk": "Needs care soon",
                 "needs_attention": "We are checking its data", "unknown": "Not enough data yet"}
_HOME = {Role.HOMEOWNER: "/home", Role.TECHNICIAN: "/tech", Role.OPERATOR: "/ops"}
_ACTIONS = {"acknowledged": "Got it", "done": "Done — I cleaned it", "dismissed": "This is wrong"}
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
}


class _SignIn(Exception):
    """The page needs a signed-in user: redirect to /login."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


@dataclass(frozen=True, slots=True)
class _Session:
    principal: Principal
    token: str
    csrf: str


def _human(value: Any) -> str:
    return str(value).replace("_", " ").capitalize() if value is not None else ""


def _when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return f"{value:%a %d %b, %H:%M} UTC"


def mount_web(app: FastAPI, *, rt: Runtime, gate: Gate, visible_device: Callable[..., Any],
              owned_notification: Callable[..., Any], owned_booking: Callable[..., Any],
              open_person_ticket: Callable[..., Any]) -> None:
    """Add the pages, their static files and their error handling to ``app``."""
    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters.update(human=_human, when=_when, pct=lambda p: "" if p is None else f"{p * 100:.0f} %",
                       health_words=lambda h: _HEALTH_WORDS.get(h, _human(h)))
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    settings = rt.settings

    def render(request: Request, template: str, *, session: _Session | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(request=request, me=session.principal if session else None,
                                                 csrf=session.csrf if session else "", now=rt.clock.now(),
                                                 **context)
        return HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)

    def page_session(request: Request, *roles: Role) -> _Session:
        found = gate.caller(request, cookie=True)
        if found is None or found.via != "session":
            raise _SignIn(request.url.path)
        require_role(found.principal, roles)
        return _Session(found.principal, found.token, csrf_token(gate.secret_key, found.token))

    async def form(request: Request) -> dict[str, str]:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
        raw = (await request.body()).decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True, max_num_fields=20).items()}

    def checked(session: _Session, data: dict[str, str]) -> None:
        if not hmac.compare_digest(data.get("csrf", ""), session.csrf):
            raise HTTPException(403, "this form has expired; reload the page and try again")

    def text_field(data: dict[str, str], name: str, *, max_len: int) -> str:
        value = data.get(name, "").strip()
        if not value:
            raise HTTPException(422, f"please fill in {name.replace('_', ' ')}")
        if len(value) > max_len or any(ord(c) < 32 and c not in "\n\r\t" for c in value):
            raise HTTPException(422, f"{name.replace('_', ' ')} must be plain text of at most {max_len} characters")
        return value

    @app.exception_handler(_SignIn)
    def _to_login(request: Request, exc: _SignIn) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.next_path)}", status_code=303)

    # -- sign-in ------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> Response:
        found = gate.caller(request, cookie=True)
        return RedirectResponse(_HOME[found.principal.role] if found else "/login", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "") -> HTMLResponse:
        return render(request, "login.html", session=None, next=_safe_next(next), error=None)

    @app.post("/login", include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        data = await form(request)
        user_id, password = data.get("user_id", "").strip()[:64], data.get("password", "")[:256]
        next_path = _safe_next(data.get("next", ""))
        try:
            gate.check_login_rate(request, user_id)
            token, expires, principal = await _in_thread(gate.auth.login, user_id, password, kind="session")
        except InvalidCredentials:
            return render(request, "login.html", session=None, status=401, next=next_path,
                          error="That user name and password do not match.")
        except RateLimited as exc:
            return render(request, "login.html", session=None, status=429, next=next_path,
                          error=f"Too many attempts. Please wait {exc.retry_after_s:.0f} seconds.")
        response = RedirectResponse(next_path or _HOME[principal.role], status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(settings.token_ttl_h * 3600), httponly=True,
                            samesite="lax", secure=settings.cookie_secure, path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        data = await form(request)
        session = page_session(request)
        checked(session, data)
        gate.auth.revoke(session.token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- homeowner ----------------------------------------------------------------------------

    @app.get("/home", include_in_schema=False)
    def home(request: Request, flash: str = "") -> HTMLResponse:
        session = page_session(request, Role.HOMEOWNER)
        hid = session.principal.household_id or ""
        devices = device_health(rt, rt.store.devices(household_id=hid, now=rt.clock.now()))
        notes = rt.actions.notifications_for_household(hid)
        return render(request, "home.html", session=session, devices=devices, notifications=notes,
                      actions=_ACTIONS, flash=flash[:200], household_id=hid,
                      after=max((n.notification_id for n in notes), default=0))

    @app.post("/home/notifications/{notification_id}", include_in_schema=False)
    async def notification_action(request: Request, notification_id: int) -> Response:
        data = await form(request)
        session = page_session(request, Role.HOMEOWNER)
        checked(session, data)
        hid = session.principal.household_id or ""
        note = await _in_thread(owned_notification, hid, notification_id)
        action = data.get("action", "")
        if action == "talk":
            message = data.get("message", "").strip() or f"I would like to talk to a person about: {note.title}"
            ticket = await _in_thread(open_person_ticket, hid, message=message[:2000], device_id=note.device_id)
            flash = f"A person will get back to you soon (request #{ticket.ticket_id})."
        elif action in _ACTIONS:
            await _in_thread(rt.actions.set_notification_status, notification_id, action)
            flash = f"Thanks — noted: {_ACTIONS[action]}."
        else:
            raise HTTPException(422, "unknown action")
        return RedirectResponse(f"/home?flash={quote(flash)}", status_code=303)

    @app.post("/home/talk", include_in_schema=False)
    async def talk(request: Request) -> Response:
        data = await form(request)
        session = page_session(request, Role.HOMEOWNER)
        checked(session, data)
        hid = session.principal.household_id or ""
        message = text_field(data, "message", max_len=2000)
        device_id = data.get("device_id") or None
        ticket = await _in_thread(open_person_ticket, hid, message=message, device_id=device_id)
        flash = f"A person will get back to you soon (request #{ticket.ticket_id})."
        return RedirectResponse(f"/home?flash={quote(flash)}", status_code=303)

    # -- technician ---------------------------------------------------------------------------

    @app.get("/tech", include_in_schema=False)
    def tech(request: Request, flash: str = "") -> HTMLResponse:
        session = page_session(request, Role.TECHNICIAN)
        tid = session.principal.technician_id or ""
        own_technician(session.principal, tid)
        jobs = rt.actions.bookings_for_technician(tid)
        today = rt.clock.now().date()
        active = [b for b in jobs if b.status in ("scheduled", "due")]
        todays = [b for b in active if b.start.date() <= today]
        later = [b for b in active if b.start.date() > today]
        done = [b for b in jobs if b.status == "completed"][-5:]
        context = {b.booking_id: _job_context(rt, b) for b in todays + later}
        return render(request, "tech.html", session=session, todays=todays, later=later, done=done,
                      context=context, flash=flash[:200], today=today)

    @app.post("/tech/jobs/{booking_id}/complete", include_in_schema=False)
    async def tech_complete(request: Request, booking_id: int) -> Response:
        data = await form(request)
        session = page_session(request, Role.TECHNICIAN)
        checked(session, data)
        await _in_thread(owned_booking, session.principal.technician_id or "", booking_id)
        outcome = text_field(data, "outcome", max_len=4000)
        await _in_thread(rt.actions.complete_booking, booking_id, outcome)
        return RedirectResponse(f"/tech?flash={quote(f'Job #{booking_id} completed. Thank you.')}", status_code=303)

    # -- operator -----------------------------------------------------------------------------

    @app.get("/ops", include_in_schema=False)
    def ops(request: Request, flash: str = "") -> HTMLResponse:
        session = page_session(request, Role.OPERATOR)
        return render(request, "ops_queue.html", session=session, tickets=rt.actions.open_tickets(),
                      flash=flash[:200])

    @app.get("/ops/tickets/{ticket_id}", include_in_schema=False)
    def ops_ticket(request: Request, ticket_id: int) -> HTMLResponse:
        session = page_session(request, Role.OPERATOR)
        ticket = rt.actions.ticket(ticket_id)
        device_ids = [ticket.device_id] if ticket.device_id else [
            d.get("device_id") for d in ticket.context.get("devices", []) if d.get("device_id")]
        charts = [chart for did in device_ids[:3] for chart in _trend_charts(rt, did)]
        household = ticket.household_id
        notes = rt.actions.notifications_for_household(household)[:5] if household else []
        return render(request, "ops_ticket.html", session=session, ticket=ticket, ctx=ticket.context,
                      charts=charts, notifications=notes)

    @app.post("/ops/tickets/{ticket_id}/resolve", include_in_schema=False)
    async def ops_resolve(request: Request, ticket_id: int) -> Response:
        data = await form(request)
        session = page_session(request, Role.OPERATOR)
        checked(session, data)
        resolution = text_field(data, "resolution", max_len=4000)
        await _in_thread(rt.actions.resolve_ticket, ticket_id, resolution)
        return RedirectResponse(f"/ops?flash={quote(f'Ticket #{ticket_id} resolved.')}", status_code=303)

    @app.get("/ops/fleet", include_in_schema=False)
    def ops_fleet(request: Request) -> HTMLResponse:
        session = page_session(request, Role.OPERATOR)
        overview = fleet_overview(rt, days=14)
        series = ("notifications", "bookings", "tickets")
        alerts = bar_chart([(r["day"][5:], [r[s] for s in series]) for r in overview.alerts_by_day],
                           series=series, label="Notifications, bookings and tickets per day, last 14 days")
        return render(request, "ops_fleet.html", session=session, overview=overview, alerts_chart=alerts,
                      labels=list(_HEALTH_WORDS))

    @app.get("/ops/devices/{device_id}", include_in_schema=False)
    def ops_device(request: Request, device_id: str) -> HTMLResponse:
        session = page_session(request, Role.OPERATOR)
        device = visible_device(session.principal, device_id)
        health = device_health(rt, [device])[0]
        return render(request, "ops_device.html", session=session, device=device, health=health,
                      charts=_trend_charts(rt, device_id), cases=rt.actions.device_cases(device_id),
                      predictions=rt.predictions.latest([device_id]))

    # Pages answer errors with a page; the API keeps its JSON. One handler for both.
    default_http = app.exception_handlers.get(StarletteHTTPException)

    async def http_error(request: Request, exc: Exception) -> Response:
        if _is_page(request) and isinstance(exc, StarletteHTTPException) and exc.status_code != 401:
            return render(request, "error.html", session=None, status=exc.status_code, detail=exc.detail)
        assert default_http is not None
        return await default_http(request, exc)  # type: ignore[misc]

    app.add_exception_handler(StarletteHTTPException, http_error)
    for error, status in ((NotFound, 404), (InvalidState, 409)):
        api_handler = app.exception_handlers[error]

        def domain_error(request: Request, exc: Exception, _api=api_handler, _status=status) -> Response:
            if _is_page(request):
                return render(request, "error.html", session=None, status=_status,
                              detail=f"{exc} not found" if _status == 404 else str(exc))
            return _api(request, exc)

        app.add_exception_handler(error, domain_error)


def _is_page(request: Request) -> bool:
    path = request.url.path
    return path in ("/", "/login", "/logout") or path.split("/")[1] in ("home", "tech", "ops")


def _safe_next(path: str) -> str:
    """Only a local path: never redirect a login to another site."""
    return path if path.startswith("/") and not path.startswith("//") and "\\" not in path else ""


async def _in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


def _job_context(rt: Runtime, booking: Any) -> dict[str, Any]:
    """What the technician should know before the visit: the device, the prediction, why."""
    device = rt.store.device(booking.device_id)
    preds = [p for p in rt.predictions.latest([booking.device_id]) if p.mode == booking.mode]
    case = next((c for c in rt.actions.device_cases(booking.device_id) if c.case_id == booking.case_id), None)
    return {"device": device, "prediction": preds[0] if preds else None, "case": case}


def _trend_charts(rt: Runtime, device_id: str, *, limit: int = 48) -> list[Any]:
    readings = rt.store.recent_readings(device_id, limit=limit)
    readings = sorted(readings, key=lambda r: r.ts)
    names = sorted({m for r in readings for m in r.metrics})
    return [line_chart([(r.ts, float(r.metrics[m])) for r in readings if m in r.metrics],
                       label=f"{device_id} · {_human(m)}") for m in names[:4]]
