"""The HTTP API over a real runtime on SQLite: what each kind of user sees and can do."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from foresight.api import create_app
from foresight.runtime import Runtime
from ingest.store import Inbound
from tests.foresight.people import api_runtime, clients


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = api_runtime(tmp_path)
    yield rt
    rt.engine.dispose()


@pytest.fixture
def as_(runtime: Runtime) -> dict[str, TestClient]:
    """Signed-in clients by user id (see tests/foresight/people.py) and ``anon``."""
    return clients(create_app(runtime))


@pytest.fixture
def client(as_: dict[str, TestClient]) -> TestClient:
    """The operator, who sees the whole fleet."""
    return as_["op"]


def test_health_says_what_is_missing_and_openapi_is_served(client: TestClient) -> None:
    response = client.get("/healthz")
    health = response.json()
    assert health["readings"] == 10 and health["devices"] == 2
    # No model trained in this runtime: not ready, and it says why.
    assert response.status_code == 503 and health["status"] == "degraded"
    assert "no live model for air_conditioner.filter_clogging" in health["problems"]
    spec = client.get("/openapi.json").json()
    assert "/households/{household_id}/talk-to-person" in spec["paths"]


def test_devices_show_health_and_detail(client: TestClient) -> None:
    devices = {d["device_id"]: d for d in client.get("/devices").json()}
    assert devices["rc-1"]["health"] == "at_risk" and devices["rc-1"]["open_cases"] == 1
    assert devices["rc-1"]["worst_mode"] == "scale_buildup"
    assert [d["device_id"] for d in client.get("/devices", params={"household_id": "hh-2"}).json()] == ["ac-1"]
    detail = client.get("/devices/rc-1").json()
    assert detail["features"]["time_to_boil_s__last"] == 970.0
    assert len(detail["recent_readings"]) == 10 and detail["predictions"][0]["p_fail"] == 0.8
    assert client.get("/devices/nope").status_code == 404
    assert client.get(f"/tickets/{10**20}").status_code == 422  # not a 500 from the driver


def test_homeowner_sees_the_tip_and_can_always_reach_a_person(as_: dict[str, TestClient]) -> None:
    home1, home2 = as_["home1"], as_["home2"]
    notes = home1.get("/households/hh-1/notifications").json()
    assert len(notes) == 1 and "descale" in notes[0]["body"].lower()
    nid = notes[0]["notification_id"]
    # Another household's homeowner can neither see nor change it.
    assert home2.get("/households/hh-1/notifications").status_code == 404
    assert home2.post(f"/households/hh-2/notifications/{nid}/status", json={"status": "done"}).status_code == 404
    done = home1.post(f"/households/hh-1/notifications/{nid}/status", json={"status": "done"})
    assert done.status_code == 200 and done.json()["status"] == "done"
    ticket = home1.post("/households/hh-1/talk-to-person", json={"message": "It smells burnt", "device_id": "rc-1"})
    assert ticket.status_code == 201
    body = ticket.json()
    assert body["category"] == "customer_request" and body["context"]["devices"][0]["device_id"] == "rc-1"
    assert home2.post("/households/hh-2/talk-to-person",
                      json={"message": "hi", "device_id": "rc-1"}).status_code == 404
    assert home1.post("/households/hh-1/talk-to-person", json={"message": ""}).status_code == 422
    assert home1.post("/households/hh-1/talk-to-person", json={"message": "hi\u0000"}).status_code == 422
    assert home1.post("/households/hh-1/talk-to-person", json={"message": "line one\nline two"}).status_code == 201
    # The homeowner sees their own appliances only.
    assert [d["device_id"] for d in home1.get("/devices").json()] == ["rc-1"]
    assert home1.get("/devices", params={"household_id": "hh-2"}).status_code == 404
    assert home1.get("/devices/ac-1").status_code == 404


def test_operator_works_the_queue_and_technician_the_jobs(as_: dict[str, TestClient]) -> None:
    op, tech1 = as_["op"], as_["tech1"]
    queue = op.get("/tickets").json()
    assert [t["category"] for t in queue] == []  # nothing ambiguous yet
    opened = as_["home2"].post("/households/hh-2/talk-to-person", json={"message": "AC is loud"}).json()
    queue = op.get("/tickets").json()
    assert [t["ticket_id"] for t in queue] == [opened["ticket_id"]]
    assert tech1.get("/tickets").status_code == 403 and as_["home2"].get("/tickets").status_code == 403
    resolved = op.post(f"/tickets/{opened['ticket_id']}/resolve", json={"resolution": "called back"})
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolved_by"] == "op"
    shown = op.get(f"/tickets/{opened['ticket_id']}").json()
    assert shown["resolved_by"] == "op" and shown["context"]["resolved"]["by"] == "op"  # who, in the API
    assert op.post(f"/tickets/{opened['ticket_id']}/resolve", json={"resolution": "again"}).status_code == 409
    jobs = tech1.get("/technicians/tech-1/jobs").json()
    assert len(jobs) == 1 and jobs[0]["device_id"] == "ac-1"
    # The technician sees the device of their job, and nothing else.
    assert [d["device_id"] for d in tech1.get("/devices").json()] == ["ac-1"]
    assert tech1.get("/devices/ac-1").status_code == 200 and tech1.get("/devices/rc-1").status_code == 404
    assert as_["tech2"].post(f"/technicians/tech-2/jobs/{jobs[0]['booking_id']}/complete",
                             json={"diagnosis": "x"}).status_code == 404
    done = tech1.post(f"/technicians/tech-1/jobs/{jobs[0]['booking_id']}/complete",
                      json={"diagnosis": "filter replaced"})
    assert done.status_code == 200 and done.json()["status"] == "completed"
    assert done.json()["completed_by"] == "tech1"
    assert op.get("/technicians/nobody/jobs").status_code == 404


def test_dead_letters_are_visible(client: TestClient, runtime: Runtime) -> None:
    runtime.store.write_batch([Inbound("appliances/rc-1/telemetry", b"{not json", runtime.clock.now())])
    letters = client.get("/dead-letters").json()
    assert letters[0]["reason"] == "bad_json" and letters[0]["payload"] == "{not json"


def test_devices_show_presence_and_filter_stale(client: TestClient, runtime: Runtime) -> None:
    devices = {d["device_id"]: d["presence"] for d in client.get("/devices").json()}
    assert devices == {"rc-1": "online", "ac-1": "unknown"}  # rc-1's last cycle was 8 h ago
    runtime.clock.advance(timedelta(hours=17))  # type: ignore[attr-defined]  # 25 h without a cycle
    assert [d["device_id"] for d in client.get("/devices", params={"presence": "stale"}).json()] == ["rc-1"]
    assert client.get("/devices/rc-1").json()["health"]["presence"] == "stale"
    assert client.get("/devices", params={"presence": "asleep"}).status_code == 422


def test_homeowner_actions_preferences_and_requests(as_: dict[str, TestClient], runtime: Runtime) -> None:
    home1 = as_["home1"]
    nid = home1.get("/households/hh-1/notifications").json()[0]["notification_id"]
    url = f"/households/hh-1/notifications/{nid}/actions"
    past = runtime.clock.now().isoformat()
    assert home1.post(url, json={"action": "snooze", "snooze_until": past}).status_code == 422
    assert home1.post(url, json={"action": "snooze", "snooze_until": "2026-03-03T12:00:00"}).status_code == 422
    later = (runtime.clock.now() + timedelta(hours=12)).isoformat()
    snoozed = home1.post(url, json={"action": "snooze", "snooze_until": later})
    assert snoozed.status_code == 200 and snoozed.json()["notification"]["status"] == "snoozed"
    talked = home1.post(url, json={"action": "talk_to_person", "message": "Is it safe to use?"}).json()
    assert talked["ticket"]["human_only"] and talked["notification"]["status"] == "talked"
    requests = home1.get("/households/hh-1/tickets").json()
    assert [t["ticket_id"] for t in requests] == [talked["ticket"]["ticket_id"]]
    assert as_["home2"].get("/households/hh-2/tickets").json() == []

    prefs = home1.put("/households/hh-1/preferences", json={"language": "zh", "quiet_start": "22:00",
                                                            "quiet_end": "07:00", "timezone": "Asia/Shanghai"})
    assert prefs.status_code == 200 and prefs.json()["language"] == "zh"
    hook = {"channels": ["in_app", "webhook"], "webhook_url": "https://hooks.example/fs",
            "webhook_secret": "s" * 20}
    shown = home1.put("/households/hh-1/preferences", json=hook).json()
    assert shown["webhook_secret_set"] and "webhook_secret" not in shown  # never handed back
    assert runtime.actions.household("hh-1").webhook_secret == "s" * 20
    kept = home1.put("/households/hh-1/preferences", json={**hook, "webhook_secret": None}).json()
    assert kept["webhook_secret_set"]  # omitted: the saved secret stays
    assert home1.put("/households/hh-1/preferences", json={"quiet_start": "22:00"}).status_code == 422
    assert home1.put("/households/hh-1/preferences", json={"timezone": "Mars/Olympus"}).status_code == 422
    assert as_["op"].get("/households/hh-1/preferences").json()["timezone"] == "UTC"  # the last good save


def test_schedule_outcomes_and_operator_booking_changes(as_: dict[str, TestClient]) -> None:
    tech1, op = as_["tech1"], as_["op"]
    schedule = tech1.get("/technicians/tech-1/schedule").json()
    assert len(schedule) == 1 and schedule[0]["device"]["household_id"] == "hh-2"
    assert "filter_clogging" in schedule[0]["diagnosis"] and schedule[0]["prediction"]["p_fail"] == 0.75
    bid = schedule[0]["booking"]["booking_id"]
    moved = op.post(f"/bookings/{bid}/reschedule", json={})
    assert moved.status_code == 200 and moved.json()["start"] > schedule[0]["booking"]["start"]
    done = tech1.post(f"/technicians/tech-1/jobs/{bid}/complete",
                      json={"diagnosis": "replaced", "outcome": "part_replaced", "parts": ["F-2500"]})
    assert done.status_code == 200 and done.json()["parts"] == ["F-2500"]
    assert tech1.post(f"/technicians/tech-1/jobs/{bid}/complete",
                      json={"diagnosis": "x", "outcome": "guess"}).status_code == 422
    assert op.post(f"/bookings/{bid}/cancel", json={"reason": "too late"}).status_code == 409  # completed


def test_homeowner_moves_and_cancels_a_visit(as_: dict[str, TestClient], runtime: Runtime) -> None:
    home2 = as_["home2"]
    visits = home2.get("/households/hh-2/visits").json()
    assert [v["device_id"] for v in visits] == ["ac-1"] and as_["home1"].get("/households/hh-1/visits").json() == []
    bid = visits[0]["booking_id"]
    assert as_["home1"].post(f"/households/hh-1/visits/{bid}/cancel", json={"reason": "x"}).status_code == 404
    moved = home2.post(f"/households/hh-2/visits/{bid}/reschedule", json={})
    assert moved.status_code == 200 and moved.json()["start"] > visits[0]["start"]
    cancelled = home2.post(f"/households/hh-2/visits/{bid}/cancel", json={"reason": "we are away"})
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_by"] == "home2"
    assert home2.get("/households/hh-2/visits").json() == []
    # The fault has not gone away: a person follows up.
    assert [t["category"] for t in as_["op"].get("/tickets").json()] == ["booking_cancelled"]
