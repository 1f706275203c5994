"""The three people of the loop, in a real headless Chromium against the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from actions import HouseholdPrefs
from ingest.store import DeviceInfo
from tests.foresight.people import USERS, _prediction
from tests.web.conftest import LiveApp, screenshot


@pytest.fixture
def page(browser: Any, live_app: LiveApp) -> Iterator[Page]:
    context = browser.new_context(base_url=live_app.url, viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def _sign_in(page: Page, user_id: str) -> None:
    page.goto("/")
    page.get_by_label("User name").fill(user_id)
    page.get_by_label("Password").fill(USERS[user_id][2])
    page.get_by_role("button", name="Sign in").click()


def test_another_site_cannot_sign_the_browser_in(page: Page, live_app: LiveApp) -> None:
    """Login CSRF in a real browser: another site's auto-posted form with the attacker's password is refused."""
    page.goto("/login")  # the victim has seen the sign-in page: their browser holds its cookie
    attacker = "http://evil.example/"  # served by the browser's own route stub: no network

    def evil_page(route: Any) -> None:
        route.fulfill(content_type="text/html", body=(
            f'<form method="post" action="{live_app.url}/login">'
            f'<input name="user_id" value="home2"><input name="password" value="{USERS["home2"][2]}">'
            '<button>Win a prize</button></form>'))

    page.route(attacker, evil_page)
    page.goto(attacker)
    page.get_by_role("button", name="Win a prize").click()
    expect(page.get_by_role("alert")).to_contain_text("This sign-in form has expired")
    assert not [c for c in page.context.cookies() if c["name"] == "foresight_session"]
    # The page it lands on is a working sign-in form, and the victim's own sign-in goes through.
    page.get_by_label("User name").fill("home1")
    page.get_by_label("Password").fill(USERS["home1"][2])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your appliances")).to_be_visible()


def test_homeowner_asks_for_a_person_and_an_operator_resolves_it(page: Page, live_app: LiveApp) -> None:
    _sign_in(page, "home1")
    expect(page.get_by_role("heading", name="Your appliances")).to_be_visible()
    note = page.locator("li.note").filter(has_text="descale")
    expect(note).to_have_count(1)
    expect(page.locator("li.device").filter(has_text="Needs care soon")).to_be_visible()
    screenshot(page, "homeowner-home")
    note.get_by_role("button", name="Talk to a person").click()
    flash = page.get_by_role("status").filter(has_text="A person will get back to you soon")
    expect(flash).to_be_visible()
    screenshot(page, "homeowner-talked-to-a-person")
    expect(note.get_by_role("button")).to_have_text(["Talk to a person"])  # settled: a person stays one tap away
    ticket_id = int(flash.inner_text().split("#")[1].rstrip(").").strip())

    operator = page.context.browser.new_context(base_url=live_app.url, viewport={"width": 1280, "height": 1000})
    ops = operator.new_page()
    ops.set_default_timeout(10_000)
    _sign_in(ops, "op")
    row = ops.locator(f'tr[data-ticket="{ticket_id}"]')
    expect(row).to_contain_text("Customer request")
    row.get_by_role("link", name=f"#{ticket_id}").click()
    panel = ops.get_by_role("complementary", name="Context")
    expect(panel).to_contain_text("rc-1")
    expect(panel).to_contain_text("hh-1")
    expect(panel).to_contain_text("Time to boil s")
    expect(ops.locator("svg.chart")).to_have_count(1)
    screenshot(ops, "operator-ticket")
    ops.get_by_label("Send the household a message").check()
    ops.get_by_label("What was done").fill("Called the homeowner; descaled together over the phone.")
    ops.get_by_role("button", name="Resolve ticket").click()
    expect(ops.get_by_role("status")).to_contain_text(f"Ticket #{ticket_id} resolved")
    expect(ops.locator(f'tr[data-ticket="{ticket_id}"]')).to_have_count(0)
    resolved = live_app.runtime.actions.ticket(ticket_id)
    assert resolved.status == "resolved" and resolved.resolution_action == "notify"
    ops.get_by_role("link", name="Fleet").click()
    expect(ops.get_by_role("heading", name="Health by kind")).to_be_visible()
    screenshot(ops, "operator-fleet")
    operator.close()


def test_a_new_notification_arrives_live(page: Page, live_app: LiveApp) -> None:
    _sign_in(page, "home1")
    expect(page.locator("#live-status")).to_contain_text("Live")
    rt = live_app.runtime
    rt.store.register_devices([DeviceInfo(device_id="rc-2", kind="rice_cooker", model="RC-100",
                                          household_id="hh-1", service_area="SE1")])
    prediction = _prediction(rt.clock, "rc-2", "rice_cooker", "scale_buildup", p=0.85, ttf=50)  # type: ignore[arg-type]
    rt.predictions.save([prediction])
    outcome = rt.actions.handle([prediction])[0]
    assert outcome.notification_id is not None
    fresh = page.locator(f'li.note[data-notification="{outcome.notification_id}"]')
    expect(fresh).to_be_visible()  # pushed over SSE, no reload
    expect(page.locator("#live-status")).to_contain_text("New message")
    # Built by the script, it reads like the server's cards: same time words, same buttons in the same order.
    expect(fresh.locator(".state")).to_have_text("Tue 03 Mar, 00:00 UTC")
    expect(fresh.get_by_role("button")).to_have_text(["Got it", "Remind me tomorrow", "Done — I cleaned it",
                                                      "Book a technician", "This is wrong", "Talk to a person"])
    screenshot(page, "homeowner-live-notification")
    fresh.get_by_role("button", name="Got it").click()
    expect(page.get_by_role("status").filter(has_text="Thanks")).to_be_visible()


def test_technician_sees_the_job_with_its_diagnosis_and_completes_it(page: Page, live_app: LiveApp) -> None:
    _sign_in(page, "tech1")
    job = page.locator("li.job").filter(has_text="ac-1")
    expect(job).to_contain_text("Filter clogging")
    expect(job).to_contain_text("75 %")
    screenshot(page, "technician-jobs")
    job.get_by_label("What you found").select_option("part_replaced")
    job.get_by_label("Parts used").fill("F-2500")
    job.get_by_label("Notes").fill("Filter clogged with dust; replaced.")
    job.get_by_role("button", name="Complete job").click()
    expect(page.get_by_role("status")).to_contain_text("completed")
    booking = live_app.runtime.actions.bookings_for_technician("tech-1")[0]
    assert booking.status == "completed" and booking.parts == ("F-2500",) and booking.outcome == "part_replaced"
    expect(page.get_by_role("heading", name="Recently completed")).to_be_visible()
    screenshot(page, "technician-completed")


def test_a_chinese_speaking_homeowner_reads_the_page_and_the_message_in_chinese(page: Page,
                                                                              live_app: LiveApp) -> None:
    rt = live_app.runtime
    rt.actions.upsert_household(HouseholdPrefs(household_id="hh-2", language="zh", timezone="Asia/Shanghai"))
    prediction = _prediction(rt.clock, "ac-1", "air_conditioner", "refrigerant_leak", p=0.8, ttf=70)  # type: ignore[arg-type]
    rt.predictions.save([prediction])
    outcome = rt.actions.handle([prediction])[0]
    _sign_in(page, "home2")
    expect(page.get_by_role("heading", name="您的电器")).to_be_visible()
    assert outcome.notification_id is not None and outcome.booking_id is not None  # a visit, and a notice of it
    note = page.locator(f'li.note[data-notification="{outcome.notification_id}"]')
    expect(note).to_have_attribute("lang", "zh")
    expect(note).to_contain_text("已预约")
    expect(page.locator("li.device").filter(has_text="空调")).to_contain_text("制冷剂泄漏")  # the mode, in Chinese
    expect(page.locator("html")).to_have_attribute("lang", "zh")
    screenshot(page, "homeowner-home-zh")  # Chinese glyphs need fonts-noto-cjk (.ci/run installs it)
