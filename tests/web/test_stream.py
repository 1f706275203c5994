"""The homeowner's live stream over real HTTP (uvicorn): events, resumption, and who may listen."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlparse

from fastapi.testclient import TestClient

from foresight.api import create_app
from ingest.store import DeviceInfo
from tests.foresight.people import USERS, _prediction
from tests.web.conftest import LiveApp


def _token(live: LiveApp, user_id: str) -> str:
    client = TestClient(create_app(live.runtime))
    return client.post("/auth/login", json={"user_id": user_id, "password": USERS[user_id][2]}).json()["token"]


def _open(live: LiveApp, token: str, *, last_event_id: int | None = None) -> http.client.HTTPResponse:
    url = urlparse(live.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    conn.request("GET", "/households/hh-1/notifications/stream", headers=headers)
    return conn.getresponse()


def _next_event(response: http.client.HTTPResponse) -> dict[str, str]:
    """Read one SSE event (blocks until the server sends it; the socket timeout bounds the wait)."""
    fields: dict[str, str] = {}
    while True:
        line = response.fp.readline().decode().rstrip("\n")
        if not line:
            if "data" in fields:
                return fields
            continue
        if line.startswith(":"):
            continue
        key, _, value = line.partition(": ")
        fields[key] = value


def test_the_stream_sends_new_notifications_and_resumes_after_the_last_event(live_app: LiveApp) -> None:
    token = _token(live_app, "home1")
    first = _open(live_app, token)
    assert first.status == 200 and first.getheader("content-type").startswith("text/event-stream")
    existing = json.loads(_next_event(first)["data"])  # no cursor: the household's feed from the start
    assert existing["household_id"] == "hh-1"
    rt = live_app.runtime
    rt.store.register_devices([DeviceInfo(device_id="rc-9", kind="rice_cooker", model="RC-100",
                                          household_id="hh-1", service_area="SE1")])
    prediction = _prediction(rt.clock, "rc-9", "rice_cooker", "scale_buildup", p=0.9, ttf=40)  # type: ignore[arg-type]
    nid = rt.actions.handle([prediction])[0].notification_id
    while True:
        event = _next_event(first)
        if json.loads(event["data"])["notification_id"] == nid:
            break
    assert event["event"] == "notification" and json.loads(event["data"])["event"] == "created"
    first.close()

    # A reconnecting browser sends Last-Event-ID and gets only what came after it.
    rt.actions.notification_action(nid, "acknowledge", household_id="hh-1")
    resumed = _open(live_app, token, last_event_id=int(event["id"]))
    update = json.loads(_next_event(resumed)["data"])
    assert (update["notification_id"], update["event"], update["status"]) == (nid, "updated", "acknowledged")
    resumed.close()


def test_only_the_household_and_operators_may_listen(live_app: LiveApp) -> None:
    assert _open(live_app, _token(live_app, "home2")).status == 404
    assert _open(live_app, _token(live_app, "tech1")).status == 403
    assert _open(live_app, "not-a-token").status == 401
    operator = _open(live_app, _token(live_app, "op"))
    assert operator.status == 200
    operator.close()
