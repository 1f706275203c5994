"""The web pages over the real app (no browser): sign-in, forms, CSRF, escaping, what each role sees."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from foresight.api import create_app
from foresight.runtime import Runtime
from foresight.security import LOGIN_COOKIE, SESSION_COOKIE
from tests.foresight.people import USERS, api_runtime, login_form_token, page_signed_in


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = api_runtime(tmp_path)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def app(runtime: Runtime):  # type: ignore[no-untyped-def]
    return create_app(runtime)


def _browser(app, user_id: str) -> TestClient:  # type: ignore[no-untyped-def]
    return page_signed_in(app, user_id)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "page has no form token"
    return found.group(1)


def test_anonymous_visitors_are_sent_to_sign_in_and_back(app) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(app, follow_redirects=False)
    r = client.get("/ops/tickets/1")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/ops/tickets/1"
    assert client.get("/").headers["location"] == "/login"
    token = login_form_token(client, "/ops/tickets/1")
    r = client.post("/login", data={"user_id": "op", "password": "wrong", "next": "/ops", "csrf": token})
    assert r.status_code == 401 and "do not match" in r.text
    r = client.post("/login", data={"user_id": "op", "password": USERS["op"][2], "next": "/ops/fleet",
                                    "csrf": _csrf(r.text)})  # the re-shown form carries a token too
    assert r.status_code == 303 and r.headers["location"] == "/ops/fleet"
    session = next(c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE))
    assert "httponly" in session.lower() and "samesite=lax" in session.lower()
    # A login link cannot send anyone to another site.
    other = TestClient(app, follow_redirects=False)
    r = other.post("/login", data={"user_id": "op", "password": USERS["op"][2], "next": "//evil.example/",
                                   "csrf": login_form_token(other)})
    assert r.headers["location"] == "/ops"


def test_a_cross_site_sign_in_post_is_refused(app) -> None:  # type: ignore[no-untyped-def]
    """Login CSRF: another site's form cannot sign the visitor in to an account of its choosing."""
    good = {"user_id": "home1", "password": USERS["home1"][2]}
    # A cross-site form post: no sign-in cookie (SameSite=Strict) and no token, or the attacker's own.
    attacker = TestClient(app, follow_redirects=False)
    attackers_token = login_form_token(attacker)  # a real token, bound to the attacker's own cookie
    for data in (good, {**good, "csrf": ""}, {**good, "csrf": attackers_token}):
        victim = TestClient(app, follow_redirects=False)
        r = victim.post("/login", data=data, headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and "expired" in r.text, data
        assert SESSION_COOKIE not in victim.cookies  # not signed in
    # The victim has a sign-in cookie of their own, but the post carries no token: refused too.
    victim = TestClient(app, follow_redirects=False)
    login_form_token(victim)
    assert victim.post("/login", data=good).status_code == 403 and SESSION_COOKIE not in victim.cookies
    # The refusal offers a fresh form that works.
    r = victim.post("/login", data={**good, "csrf": "0" * 40})
    assert r.status_code == 403
    r = victim.post("/login", data={**good, "csrf": _csrf(r.text)})
    assert r.status_code == 303 and SESSION_COOKIE in victim.cookies
    # The sign-in cookie is strict, HttpOnly, and only for /login.
    cookie = next(c for c in TestClient(app).get("/login").headers.get_list("set-cookie")
                  if c.startswith(LOGIN_COOKIE)).lower()
    assert "samesite=strict" in cookie and "httponly" in cookie and "path=/login" in cookie


def test_forms_need_the_session_token_and_the_cookie_cannot_write_the_api(app) -> None:  # type: ignore[no-untyped-def]
    home = _browser(app, "home1")
    page = home.get("/home")
    assert page.status_code == 200 and page.headers["content-security-policy"].startswith("default-src 'self'")
    nid = re.search(r'data-notification="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    r = home.post(f"/home/notifications/{nid}", data={"action": "acknowledge", "csrf": "0" * 40})
    assert r.status_code == 403 and "expired" in r.text
    # The API's writes need a bearer token; the browser's cookie is not enough (no cross-site writes).
    assert home.post("/households/hh-1/talk-to-person", json={"message": "x"}).status_code == 401
    r = home.post(f"/home/notifications/{nid}", data={"action": "acknowledge", "csrf": _csrf(page.text)})
    assert r.status_code == 303 and "noted" in home.get(r.headers["location"]).text


def test_homeowner_talks_to_a_person_and_the_operator_sees_the_context(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    home = _browser(app, "home1")
    page = home.get("/home")
    assert "Rice cooker" in page.text and "Needs care soon" in page.text and "descale" in page.text.lower()
    assert "ac-1" not in page.text  # the other household's appliance
    nid = re.search(r'data-notification="(\d+)"', page.text).group(1)  # type: ignore[union-attr]
    r = home.post(f"/home/notifications/{nid}", data={"action": "talk_to_person", "csrf": _csrf(page.text)})
    flash = home.get(r.headers["location"]).text
    assert "A person will get back to you soon" in flash
    assert "Your requests to a person" in flash and "A person is on it" in flash  # the note says so too
    ticket = runtime.actions.open_tickets()[0]
    assert ticket.device_id == "rc-1" and ticket.household_id == "hh-1"
    # Free text is shown as text, never as markup.
    page = home.get("/home")
    home.post("/home/talk", data={"message": "<script>alert(1)</script>", "device_id": "", "csrf": _csrf(page.text)})

    op = _browser(app, "op")
    queue = op.get("/ops").text
    assert f"#{ticket.ticket_id}" in queue and "Customer request" in queue
    found = op.get("/ops", params={"q": "HH-1"}).text
    assert f'data-ticket="{ticket.ticket_id}"' in found and "matching" in found
    assert 'data-ticket=' not in op.get("/ops", params={"q": "hh-nobody"}).text
    detail = op.get(f"/ops/tickets/{ticket.ticket_id}").text
    assert "<svg" in detail and "time to boil s" in detail.lower() and "hh-1" in detail  # trend + household
    assert "Similar resolved cases" in detail and "Messages sent to the household" in detail
    other = runtime.actions.open_tickets()[-1]
    assert "<script>alert(1)</script>" not in op.get(f"/ops/tickets/{other.ticket_id}").text
    r = op.post(f"/ops/tickets/{ticket.ticket_id}/resolve", data={"resolution": "", "csrf": _csrf(detail)})
    assert r.status_code == 422
    r = op.post(f"/ops/tickets/{ticket.ticket_id}/resolve", data={"resolution": "Called, descaled together",
                                                                  "csrf": _csrf(detail)})
    assert r.status_code == 303 and runtime.actions.ticket(ticket.ticket_id).status == "resolved"
    assert runtime.actions.ticket(ticket.ticket_id).resolved_by == "op"
    assert 'by <strong class="resolved-by">op</strong>' in op.get(f"/ops/tickets/{ticket.ticket_id}").text
    assert op.get(f"/ops/tickets/{10**6}").status_code == 404
    fleet = op.get("/ops/fleet").text
    assert "Health by kind" in fleet and "Air conditioner" in fleet and "<svg" in fleet


def test_technician_sees_the_diagnosis_and_completes_the_job(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    tech = _browser(app, "tech1")
    page = tech.get("/tech")
    assert "ac-1" in page.text and "Filter clogging" in page.text and "75 %" in page.text
    booking = runtime.actions.bookings_for_technician("tech-1")[0]
    r = tech.post(f"/tech/jobs/{booking.booking_id}/complete",
                  data={"notes": "Filter replaced", "outcome": "part_replaced", "parts": "F-2500", "csrf": _csrf(page.text)})
    assert r.status_code == 303
    done = runtime.actions.booking(booking.booking_id)
    assert done.status == "completed" and done.outcome == "part_replaced" and done.parts == ("F-2500",)
    assert "Filter replaced" in tech.get("/tech").text
    # Signing out ends the session at once.
    r = tech.post("/logout", data={"csrf": _csrf(page.text)})
    assert r.status_code == 303 and tech.get("/tech").status_code == 303


def test_homeowner_sets_quiet_hours_and_language(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    home = _browser(app, "home1")
    page = home.get("/home/settings")
    assert page.status_code == 200 and "Quiet hours" in page.text
    r = home.post("/home/settings", data={"csrf": _csrf(page.text), "language": "zh", "timezone": "Asia/Shanghai",
                                          "quiet": "on", "quiet_start": "22:00", "quiet_end": "07:00"})
    assert r.status_code == 303 and "已保存" in home.get(r.headers["location"]).text  # said in the new language
    prefs = runtime.actions.household("hh-1")
    assert (prefs.language, prefs.timezone, prefs.quiet_start, prefs.quiet_end) == ("zh", "Asia/Shanghai",
                                                                                    "22:00", "07:00")
    shown_zh = home.get("/home").text
    assert "Tue 03 Mar, 08:00 (Asia/Shanghai)" in shown_zh  # times in the household's zone
    assert '<html lang="zh">' in shown_zh and "您的电器" in shown_zh and "联系人工客服" in shown_zh  # its language
    r = home.post("/home/settings", data={"csrf": _csrf(page.text), "language": "en", "timezone": "Mars/Olympus"})
    shown = home.get(r.headers["location"])
    assert shown.status_code == 422 and 'role="alert"' in shown.text
    assert runtime.actions.household("hh-1").language == "zh"  # nothing half-saved
    r = home.post("/home/settings", data={"csrf": _csrf(page.text), "webhook": "on", "webhook_url": "https://x.example/h"})
    assert "needs a webhook_secret" in home.get(r.headers["location"]).text  # a webhook must be signed


def test_homeowner_finds_another_time_for_a_visit(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    home = _browser(app, "home2")
    page = home.get("/home")
    assert "Technician visits" in page.text and "Find another time" in page.text
    booking = runtime.actions.bookings_for_technician("tech-1")[0]
    r = home.post(f"/home/visits/{booking.booking_id}", data={"change": "reschedule", "csrf": _csrf(page.text)})
    assert "Your visit is moved to" in home.get(r.headers["location"]).text
    assert runtime.actions.booking(booking.booking_id).start > booking.start
    r = home.post(f"/home/visits/{booking.booking_id}", data={"change": "cancel", "reason": "The problem is fixed",
                                                             "csrf": _csrf(page.text)})
    assert "Your visit is cancelled" in home.get(r.headers["location"]).text
    assert runtime.actions.booking(booking.booking_id).status == "cancelled"
