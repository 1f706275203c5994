"""Authorization matrix: every route that names an object, called by every principal.

The routes are enumerated from ``app.routes``, so a new route with an id in its path fails this test
until it is added to ``MATRIX`` with the principals allowed to use it. Everyone else must get 403
(wrong role) or 404 (someone else's object); nobody signed in gets 401 (API) or is sent to the
sign-in page (web pages). A second test holds every other route to the same rule for anonymous callers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from foresight.api import create_app
from foresight.runtime import Runtime
from foresight.security import SESSION_COOKIE, csrf_token
from tests.foresight.people import api_runtime, page_signed_in, signed_in

PRINCIPALS = ("home1", "home2", "tech1", "tech2", "op")
#: Routes anyone may call (sign-in, readiness, the API's own documentation, static files).
PUBLIC = {("GET", "/healthz"), ("POST", "/auth/login"), ("GET", "/login"), ("POST", "/login"), ("GET", "/"),
          ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"), ("GET", "/redoc")}


@dataclass(frozen=True)
class World:
    """The objects the matrix aims at: all belong to hh-1 / home1, tech-1 / tech1, or the operator."""

    notification_id: int
    booking_id: int
    ticket_id: int
    #: signed-in clients by user: bearer-token API clients, and page clients with their CSRF token
    api: dict[str, TestClient]
    pages: dict[str, tuple[TestClient, str]]


@dataclass(frozen=True)
class Case:
    params: Callable[[World], dict[str, Any]]
    allowed: frozenset[str]
    body: dict[str, Any] | None = None
    page: bool = False  # a web page: session cookie + CSRF form instead of bearer + JSON
    call_allowed: bool = True  # False for endpoints whose allowed answer is an endless stream


def _case(params: Callable[[World], dict[str, Any]], allowed: set[str], **kw: Any) -> Case:
    return Case(params=params, allowed=frozenset(allowed), **kw)


HH = {"household_id": "hh-1"}
MATRIX: dict[tuple[str, str], Case] = {
    ("GET", "/devices/{device_id}"): _case(lambda w: {"device_id": "rc-1"}, {"home1", "op"}),
    ("GET", "/households/{household_id}/notifications"): _case(lambda w: HH, {"home1", "op"}),
    ("GET", "/households/{household_id}/notifications/stream"): _case(lambda w: HH, {"home1", "op"},
                                                                      call_allowed=False),
    ("POST", "/households/{household_id}/notifications/{notification_id}/status"): _case(
        lambda w: {**HH, "notification_id": w.notification_id}, {"home1"}, body={"status": "acknowledged"}),
    ("POST", "/households/{household_id}/talk-to-person"): _case(lambda w: HH, {"home1"}, body={"message": "hello"}),
    ("POST", "/households/{household_id}/notifications/{notification_id}/actions"): _case(
        lambda w: {**HH, "notification_id": w.notification_id}, {"home1"}, body={"action": "acknowledge"}),
    ("GET", "/households/{household_id}/tickets"): _case(lambda w: HH, {"home1", "op"}),
    ("GET", "/households/{household_id}/visits"): _case(lambda w: {"household_id": "hh-2"}, {"home2", "op"}),
    ("POST", "/households/{household_id}/visits/{booking_id}/reschedule"): _case(
        lambda w: {"household_id": "hh-2", "booking_id": w.booking_id}, {"home2"}, body={}),
    ("POST", "/households/{household_id}/visits/{booking_id}/cancel"): _case(
        lambda w: {"household_id": "hh-2", "booking_id": w.booking_id}, {"home2"}, body={"reason": "away"}),
    ("GET", "/households/{household_id}/preferences"): _case(lambda w: HH, {"home1", "op"}),
    ("PUT", "/households/{household_id}/preferences"): _case(lambda w: HH, {"home1"},
                                                             body={"language": "zh", "timezone": "Asia/Shanghai"}),
    ("GET", "/technicians/{technician_id}/jobs"): _case(lambda w: {"technician_id": "tech-1"}, {"tech1", "op"}),
    ("GET", "/technicians/{technician_id}/schedule"): _case(lambda w: {"technician_id": "tech-1"}, {"tech1", "op"}),
    ("POST", "/technicians/{technician_id}/jobs/{booking_id}/complete"): _case(
        lambda w: {"technician_id": "tech-1", "booking_id": w.booking_id}, {"tech1"}, body={"diagnosis": "ok"}),
    ("GET", "/tickets/{ticket_id}"): _case(lambda w: {"ticket_id": w.ticket_id}, {"op"}),
    ("POST", "/tickets/{ticket_id}/resolve"): _case(lambda w: {"ticket_id": w.ticket_id}, {"op"},
                                                    body={"resolution": "called back"}),
    ("POST", "/bookings/{booking_id}/reschedule"): _case(lambda w: {"booking_id": w.booking_id}, {"op"}, body={}),
    ("POST", "/bookings/{booking_id}/cancel"): _case(lambda w: {"booking_id": w.booking_id}, {"op"},
                                                     body={"reason": "the homeowner is away"}),
    # Web pages
    ("POST", "/home/notifications/{notification_id}"): _case(
        lambda w: {"notification_id": w.notification_id}, {"home1"}, body={"action": "acknowledge"}, page=True),
    ("POST", "/tech/jobs/{booking_id}/complete"): _case(lambda w: {"booking_id": w.booking_id}, {"tech1"},
                                                        body={"notes": "filter replaced", "outcome": "part_replaced"}, page=True),
    ("POST", "/home/visits/{booking_id}"): _case(lambda w: {"booking_id": w.booking_id}, {"home2"},
                                                 body={"change": "reschedule"}, page=True),
    ("GET", "/ops/tickets/{ticket_id}"): _case(lambda w: {"ticket_id": w.ticket_id}, {"op"}, page=True),
    ("POST", "/ops/tickets/{ticket_id}/resolve"): _case(lambda w: {"ticket_id": w.ticket_id}, {"op"},
                                                        body={"resolution": "done"}, page=True),
    ("GET", "/ops/devices/{device_id}"): _case(lambda w: {"device_id": "rc-1"}, {"op"}, page=True),
}


def _routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    for route in app.routes:
        if isinstance(route, Mount):
            assert route.path == "/static", f"unexpected mount {route.path}: add it to the matrix"
            continue
        assert isinstance(route, APIRoute | Route)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                yield method, route.path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, FastAPI, World]]:
    rt = api_runtime(Path(tmp_path_factory.mktemp("matrix")), login_attempts_per_minute=1000)
    app = create_app(rt)
    world = World(notification_id=rt.actions.notifications_for_household("hh-1")[0].notification_id,
                  booking_id=rt.actions.bookings_for_technician("tech-1")[0].booking_id,
                  ticket_id=rt.actions.open_ticket_on_request(message="help", household_id="hh-1").ticket_id,
                  api={u: signed_in(app, u) for u in PRINCIPALS},
                  pages={u: _page_client(app, u) for u in PRINCIPALS})
    yield rt, app, world
    rt.engine.dispose()


def _page_client(app: FastAPI, user_id: str) -> tuple[TestClient, str]:
    client = page_signed_in(app, user_id)
    return client, csrf_token(app.state.gate.secret_key, client.cookies[SESSION_COOKIE])


def _call(app: FastAPI, world: World, who: str | None, method: str, path: str, case: Case) -> int:
    if case.page:
        client, csrf = (TestClient(app, follow_redirects=False), "") if who is None else world.pages[who]
        data = {**(case.body or {}), "csrf": csrf} if method == "POST" else None
        response = client.request(method, path, data=data)
        if who is None:
            assert response.status_code == 303 and response.headers["location"].startswith("/login"), path
            return 401
        return response.status_code
    client = TestClient(app) if who is None else world.api[who]
    return client.request(method, path, json=case.body).status_code


def test_every_route_with_an_object_id_is_in_the_matrix(setup: tuple[Runtime, FastAPI, World]) -> None:
    _, app, _ = setup
    with_ids = {r for r in _routes(app) if "{" in r[1]}
    assert with_ids == set(MATRIX), "routes with ids and the matrix differ: " + repr(with_ids ^ set(MATRIX))


@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_wrong_principals_are_refused_and_the_right_one_is_served(
        setup: tuple[Runtime, FastAPI, World], route: tuple[str, str]) -> None:
    _, app, world = setup
    method, template = route
    case = MATRIX[route]
    path = template.format(**case.params(world))
    assert _call(app, world, None, method, path, case) == 401
    for who in PRINCIPALS:
        if who in case.allowed:
            continue
        status = _call(app, world, who, method, path, case)
        assert status in (403, 404), f"{who} got {status} on {method} {path}"
    for who in sorted(case.allowed) if case.call_allowed else ():
        status = _call(app, world, who, method, path, case)
        assert status not in (401, 403, 404, 422), f"{who} was refused ({status}) on {method} {path}"


def test_every_other_route_needs_a_signed_in_caller(setup: tuple[Runtime, FastAPI, World]) -> None:
    _, app, _ = setup
    anon = TestClient(app, follow_redirects=False)
    for method, path in _routes(app):
        if (method, path) in PUBLIC or (method, path) in MATRIX:
            continue
        response = anon.request(method, path, json={} if method == "POST" else None,
                                headers={"content-type": "application/x-www-form-urlencoded"}
                                if path.startswith(("/home", "/tech", "/ops", "/logout")) else None)
        page = response.status_code == 303 and response.headers["location"].startswith("/login")
        assert response.status_code == 401 or page, f"anonymous {method} {path} got {response.status_code}"


def test_operators_only_routes_refuse_other_roles(setup: tuple[Runtime, FastAPI, World]) -> None:
    _, app, world = setup
    for who in ("home1", "tech1"):
        client = world.api[who]
        for path in ("/tickets", "/fleet", "/models", "/dead-letters", "/metrics"):
            assert client.get(path).status_code == 403, (who, path)
    page, _ = world.pages["home1"]
    assert page.get("/ops").status_code == 403 and page.get("/tech").status_code == 403
    assert world.api["op"].get("/fleet").json()["devices"] == 2


def test_a_technician_reads_a_device_only_while_a_visit_there_is_open(tmp_path: Path) -> None:
    """Coming up, under way or overdue: yes. Completed or cancelled: the access ends with the visit."""
    from datetime import timedelta

    rt = api_runtime(tmp_path)
    try:
        app = create_app(rt)
        tech1, tech2 = signed_in(app, "tech1"), signed_in(app, "tech2")

        def sees() -> tuple[int, list[str]]:
            return (tech1.get("/devices/ac-1").status_code,
                    [d["device_id"] for d in tech1.get("/devices").json()])

        [visit] = rt.actions.bookings_for_technician("tech-1")
        assert visit.status == "scheduled" and sees() == (200, ["ac-1"])  # an upcoming visit
        assert tech2.get("/devices/ac-1").status_code == 404  # never another technician's
        rt.actions.complete_booking(visit.booking_id, "filter cleaned", actor="tech1")
        assert sees() == (404, [])  # completed: no lasting access

        again = rt.actions.book_technician(device_id="ac-1")
        assert sees() == (200, ["ac-1"])
        rt.actions.cancel_booking(again.booking_id, reason="homeowner away", by="operator", actor="op")
        assert sees() == (404, [])  # cancelled

        late = rt.actions.book_technician(device_id="ac-1")
        rt.clock.advance(late.end - rt.clock.now() + timedelta(hours=3))  # type: ignore[attr-defined]
        rt.actions.mark_due_bookings()
        assert rt.actions.mark_overdue_bookings() == 1
        assert rt.actions.booking(late.booking_id).status == "overdue"
        assert sees() == (200, ["ac-1"])  # the outcome is still to be written
        rt.actions.complete_booking(late.booking_id, "done late", outcome="no_fault_found", actor="tech1")
        assert sees() == (404, [])
    finally:
        rt.engine.dispose()
