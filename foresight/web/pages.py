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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from actions import BOOKING_OUTCOMES, RESOLUTION_ACTIONS, TICKET_OUTCOMES, InvalidState, NoSlot, NotFound

from ..auth import InvalidCredentials, Principal, Role
from ..runtime import Runtime
from ..schemas import PreferencesIn, Window
from ..security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Gate,
    RateLimited,
    csrf_token,
    login_csrf_token,
    login_nonce,
    own_technician,
    require_role,
)
from ..views import device_health, feed_cursor, fleet_overview, household_visits
from .charts import bar_chart, line_chart
from .i18n import translator

__all__ = ["mount_web"]

_HERE = Path(__file__).parent
_HEALTH_WORDS = {"ok": "Working well", "watch": "Keep an eye on it", "at_risk": "Needs care soon",
                 "needs_attention": "We are checking its data", "unknown": "Not enough data yet"}
_HOME = {Role.HOMEOWNER: "/home", Role.TECHNICIAN: "/tech", Role.OPERATOR: "/ops"}
#: Button words for the homeowner's actions on a notification, in the order shown.
_ACTIONS = {"acknowledge": "Got it", "snooze": "Remind me tomorrow", "done": "Done — I cleaned it",
            "book": "Book a technician", "wrong": "This is wrong", "talk_to_person": "Talk to a person"}
#: What a notification's status means, said to the homeowner.
_STATUS_WORDS = {"acknowledged": "You said: got it", "snoozed": "We will remind you", "done": "You fixed it — thank you",
                 "wrong": "You told us this is wrong — thank you", "booked": "A technician visit is booked",
                 "talked": "A person is on it", "dismissed": "Dismissed"}
_BOOKING_OUTCOME_WORDS = {"confirmed_fault": "Fault confirmed and fixed", "part_replaced": "Part replaced",
                          "no_fault_found": "No fault found"}
_TICKET_OUTCOME_WORDS = {"confirmed_fault": "Fault confirmed", "no_fault_found": "No fault found",
                         "part_replaced": "Part replaced", "fixed_by_homeowner": "Fixed by the homeowner",
                         "false_alarm": "False alarm"}
_CANCEL_REASONS = ("The time does not suit me", "The problem is fixed", "I do not want a visit")
_RESOLUTION_WORDS = {"dismiss": "Close — nothing more to do", "notify": "Send the household a message",
                     "book": "Book a technician visit"}
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


def _when(value: datetime | str | None, tz: str | None = None) -> str:
    """A time for people: ``Tue 03 Mar, 08:00`` in ``tz`` (a household's zone), else UTC."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if tz and tz != "UTC":
        try:
            return f"{value.astimezone(ZoneInfo(tz)):%a %d %b, %H:%M} ({tz})"
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return f"{value:%a %d %b, %H:%M} UTC"


def mount_web(app: FastAPI, *, rt: Runtime, gate: Gate, visible_device: Callable[..., Any],
              owned_booking: Callable[..., Any], owned_visit: Callable[..., Any],
              open_person_ticket: Callable[..., Any],
              household_tickets: Callable[..., Any], save_preferences: Callable[..., Any]) -> None:
    """Add the pages, their static files and their error handling to ``app``."""
    env = Environment(loader=FileSystemLoader(_HERE / "templates"), autoescape=select_autoescape(["html"]))
    env.filters.update(human=_human, when=_when, pct=lambda p: "" if p is None else f"{p * 100:.0f} %",
                       health_words=lambda h: _HEALTH_WORDS.get(h, _human(h)))
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    settings = rt.settings

    def render(request: Request, template: str, *, session: _Session | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        context.setdefault("lang", "en")
        context.setdefault("t", translator(context["lang"]))
        csrf = context.pop("csrf", session.csrf if session else "")
        html = env.get_template(template).render(request=request, me=session.principal if session else None,
                                                 csrf=csrf, now=rt.clock.now(), **context)
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

    def login_form(request: Request, *, next_path: str, error: str | None = None, status: int = 200,
                   fresh: bool = False) -> HTMLResponse:
        # The form's token is bound to a nonce in the browser's own sign-in cookie (login CSRF).
        nonce = login_nonce(None if fresh else request.cookies.get(LOGIN_COOKIE))
        response = render(request, "login.html", session=None, status=status, next=next_path, error=error,
                          csrf=login_csrf_token(gate.secret_key, nonce))
        response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict",
                            secure=settings.cookie_secure, path="/login")
        return response

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "") -> HTMLResponse:
        return login_form(request, next_path=_safe_next(next))

    @app.post("/login", include_in_schema=False)
    async def login_submit(request: Request) -> Response:
        data = await form(request)
        user_id, password = data.get("user_id", "").strip()[:64], data.get("password", "")[:256]
        next_path = _safe_next(data.get("next", ""))
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not hmac.compare_digest(data.get("csrf", ""), login_csrf_token(gate.secret_key, nonce)):
            # Another site's form, or a page older than its cookie: no password is checked.
            return login_form(request, next_path=next_path, status=403, fresh=True,
                              error="This sign-in form has expired. Please sign in again.")
        try:
            gate.check_login_rate(request, user_id)
            token, expires, principal = await _in_thread(gate.auth.login, user_id, password, kind="session")
        except InvalidCredentials:
            return login_form(request, next_path=next_path, status=401,
                              error="That user name and password do not match.")
        except RateLimited as exc:
            return login_form(request, next_path=next_path, status=429,
                              error=f"Too many attempts. Please wait {exc.retry_after_s:.0f} seconds.")
        response = RedirectResponse(next_path or _HOME[principal.role], status_code=303)
        response.delete_cookie(LOGIN_COOKIE, path="/login")
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
        prefs = rt.actions.household(hid)
        tz = prefs.timezone
        return render(request, "home.html", session=session, devices=devices, notifications=notes, tz=tz,
                      lang=prefs.language,
                      actions=_ACTIONS, status_words=_STATUS_WORDS, flash=flash[:200], household_id=hid,
                      after=feed_cursor(rt, hid), tickets=household_tickets(hid),
                      buttons=_buttons, order=list(_ACTIONS), settled=sorted(_SETTLED),
                      script_words=_script_words(translator(prefs.language)),
                      visits=household_visits(rt, hid), cancel_reasons=_CANCEL_REASONS)

    @app.post("/home/notifications/{notification_id}", include_in_schema=False)
    async def notification_action(request: Request, notification_id: int) -> Response:
        data = await form(request)
        session = page_session(request, Role.HOMEOWNER)
        checked(session, data)
        hid = session.principal.household_id or ""
        prefs = await _in_thread(rt.actions.household, hid)
        t = translator(prefs.language)
        action = data.get("action", "")
        if action not in _ACTIONS:
            raise HTTPException(422, "unknown action")
        until = rt.clock.now() + timedelta(days=1) if action == "snooze" else None
        try:
            result = await _in_thread(rt.actions.notification_action, notification_id, action, household_id=hid,
                                      snooze_until=until, message=data.get("message", "").strip()[:2000])
        except NoSlot as exc:
            flash = t("No technician is free in time; a person will arrange it") + (
                f" ({t('request')} #{exc.ticket_id})." if exc.ticket_id else ".")
            return RedirectResponse(f"/home?flash={quote(flash)}", status_code=303)
        if result.ticket is not None and action == "talk_to_person":
            flash = f"{t('A person will get back to you soon')} ({t('request')} #{result.ticket.ticket_id})."
        elif result.booking is not None:
            flash = f"{t('A technician visit is booked for')} {_when(result.booking.start, prefs.timezone)}."
        elif result.ticket is not None:
            flash = (f"{t('No technician is free in time; a person will arrange it')} "
                     f"({t('request')} #{result.ticket.ticket_id}).")
        else:
            flash = f"{t('Thanks — noted')}: {t(_ACTIONS[action])}."
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
        t = translator((await _in_thread(rt.actions.household, hid)).language)
        flash = f"{t('A person will get back to you soon')} ({t('request')} #{ticket.ticket_id})."
        return RedirectResponse(f"/home?flash={quote(flash)}", status_code=303)

    @app.post("/home/visits/{booking_id}", include_in_schema=False)
    async def visit_change(request: Request, booking_id: int) -> Response:
        data = await form(request)
        session = page_session(request, Role.HOMEOWNER)
        checked(session, data)
        hid = session.principal.household_id or ""
        await _in_thread(owned_visit, hid, booking_id)
        prefs = await _in_thread(rt.actions.household, hid)
        t = translator(prefs.language)
        change = data.get("change", "")
        try:
            if change == "reschedule":
                moved = await _in_thread(rt.actions.reschedule_booking, booking_id)
                flash = f"{t('Your visit is moved to')} {_when(moved.start, prefs.timezone)}."
            elif change == "cancel" and data.get("reason") in _CANCEL_REASONS:
                await _in_thread(rt.actions.cancel_booking, booking_id, reason=data["reason"], by="homeowner",
                                 actor=session.principal.user_id)
                flash = t("Your visit is cancelled. If the problem is still there, a person will contact you.")
            else:
                raise HTTPException(422, "please choose what to change")
        except NoSlot:
            flash = t("There is no later time free yet; your visit stays as it is. Talk to a person for help.")
        return RedirectResponse(f"/home?flash={quote(flash)}", status_code=303)

    @app.get("/home/settings", include_in_schema=False)
    def home_settings(request: Request, flash: str = "", error: str = "") -> HTMLResponse:
        session = page_session(request, Role.HOMEOWNER)
        prefs = rt.actions.household(session.principal.household_id or "")
        return render(request, "settings.html", session=session, prefs=prefs, flash=flash[:200], lang=prefs.language,
                      error=error[:300], status=422 if error else 200)

    @app.post("/home/settings", include_in_schema=False)
    async def home_settings_save(request: Request) -> Response:
        data = await form(request)
        session = page_session(request, Role.HOMEOWNER)
        checked(session, data)
        hid = session.principal.household_id or ""
        channels = ["in_app"] + (["webhook"] if data.get("webhook") == "on" else [])
        quiet = data.get("quiet") == "on"
        current = await _in_thread(rt.actions.household, hid)
        try:
            body = PreferencesIn(name=data.get("name", "").strip(), language=data.get("language", "en"),
                                 timezone=data.get("timezone", "UTC").strip() or "UTC",
                                 quiet_start=data.get("quiet_start") if quiet else None,
                                 quiet_end=data.get("quiet_end") if quiet else None, channels=channels,
                                 webhook_url=data.get("webhook_url", "").strip() or None,
                                 webhook_secret=data.get("webhook_secret", "").strip() or None,
                                 availability=[Window(weekdays=sorted(w.weekdays), start=w.start, end=w.end)
                                               for w in current.availability])
            await _in_thread(save_preferences, hid, body)
        except (ValidationError, ValueError) as exc:
            words = "; ".join(e["msg"] for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
            return RedirectResponse(f"/home/settings?error={quote(words[:300])}", status_code=303)
        saved = translator(body.language)("Saved.")
        return RedirectResponse(f"/home/settings?flash={quote(saved)}", status_code=303)

    # -- technician ---------------------------------------------------------------------------

    @app.get("/tech", include_in_schema=False)
    def tech(request: Request, flash: str = "") -> HTMLResponse:
        session = page_session(request, Role.TECHNICIAN)
        tid = session.principal.technician_id or ""
        own_technician(session.principal, tid)
        today = rt.clock.now().date()
        jobs = rt.actions.technician_jobs(tid)
        todays = [j for j in jobs if j.booking.start.date() <= today or j.booking.status == "overdue"]
        later = [j for j in jobs if j not in todays]
        done = [b for b in rt.actions.bookings_for_technician(tid) if b.status == "completed"][-5:]
        return render(request, "tech.html", session=session, todays=todays, later=later, done=done,
                      flash=flash[:200], today=today, outcomes=_BOOKING_OUTCOME_WORDS)

    @app.post("/tech/jobs/{booking_id}/complete", include_in_schema=False)
    async def tech_complete(request: Request, booking_id: int) -> Response:
        data = await form(request)
        session = page_session(request, Role.TECHNICIAN)
        checked(session, data)
        await _in_thread(owned_booking, session.principal.technician_id or "", booking_id)
        notes = text_field(data, "notes", max_len=4000)
        outcome = data.get("outcome", "")
        if outcome not in BOOKING_OUTCOMES:
            raise HTTPException(422, "please choose what you found")
        parts = [p.strip()[:64] for p in data.get("parts", "").split(",") if p.strip()][:20]
        await _in_thread(rt.actions.complete_booking, booking_id, notes, outcome=outcome, parts=parts,
                         actor=session.principal.user_id)
        return RedirectResponse(f"/tech?flash={quote(f'Job #{booking_id} completed. Thank you.')}", status_code=303)

    # -- operator -----------------------------------------------------------------------------

    @app.get("/ops", include_in_schema=False)
    def ops(request: Request, flash: str = "", q: str = "") -> HTMLResponse:
        session = page_session(request, Role.OPERATOR)
        tickets = rt.actions.open_tickets()
        query = q.strip().lower()[:64]
        if query:  # a household, device, category or words of the subject
            tickets = [t for t in tickets if query in " ".join(
                str(v) for v in (t.ticket_id, t.household_id, t.device_id, t.category, t.subject)).lower()]
        return render(request, "ops_queue.html", session=session, tickets=tickets, q=query,
                      flash=flash[:200], hours_left=lambda t: (t - rt.clock.now()).total_seconds() / 3600)

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
                      charts=charts, notifications=notes, next_words=_RESOLUTION_WORDS,
                      outcomes=_TICKET_OUTCOME_WORDS)

    @app.post("/ops/tickets/{ticket_id}/resolve", include_in_schema=False)
    async def ops_resolve(request: Request, ticket_id: int) -> Response:
        data = await form(request)
        session = page_session(request, Role.OPERATOR)
        checked(session, data)
        resolution = text_field(data, "resolution", max_len=4000)
        action = data.get("next", "dismiss")
        outcome = data.get("outcome") or None
        if action not in RESOLUTION_ACTIONS or (outcome is not None and outcome not in TICKET_OUTCOMES):
            raise HTTPException(422, "please choose what happens next and what was found")
        message = data.get("message", "").strip()[:2000] or None
        try:
            await _in_thread(rt.actions.resolve_ticket, ticket_id, resolution, action=action, outcome=outcome,
                             message=message, actor=session.principal.user_id)
        except NoSlot as exc:
            raise HTTPException(409, f"no technician can come in time ({exc}); the ticket stays open") from None
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


def _script_words(t: Callable[[str], str]) -> dict[str, Any]:
    """What the live-stream script shows, in the household's language."""
    return {"labels": {k: t(v) for k, v in _ACTIONS.items()}, "states": {k: t(v) for k, v in _STATUS_WORDS.items()},
            "live": t("Live: new messages appear here."), "reconnecting": t("Reconnecting…"),
            "new": t("New message")}


#: Once settled, a notification offers only a person (the homeowner may still want to talk).
_SETTLED = frozenset({"done", "wrong", "dismissed", "talked", "booked"})


def _buttons(note: Any) -> list[str]:
    """The actions to offer on a notification: what the service allows, and always a person."""
    if note.status in _SETTLED:
        return ["talk_to_person"]
    offered = [a for a in _ACTIONS if a in note.actions and not (a == "acknowledge" and note.status == "acknowledged")]
    return offered if "talk_to_person" in offered else [*offered, "talk_to_person"]


def _trend_charts(rt: Runtime, device_id: str, *, limit: int = 48) -> list[Any]:
    readings = rt.store.recent_readings(device_id, limit=limit)
    readings = sorted(readings, key=lambda r: r.ts)
    names = sorted({m for r in readings for m in r.metrics})
    return [line_chart([(r.ts, float(r.metrics[m])) for r in readings if m in r.metrics],
                       label=f"{device_id} · {_human(m)}") for m in names[:4]]
