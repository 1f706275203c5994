"""Signed-in test clients: one user per role (and a second homeowner and technician to be wrong)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from actions.booking import Technician
from foresight.auth import AuthStore, Role
from foresight.runtime import Runtime, build_runtime
from foresight.settings import Settings
from ingest.clock import ManualClock, SystemClock
from ingest.contract import Telemetry, encode_telemetry, telemetry_topic
from ingest.store import DeviceInfo, Inbound
from predictors.types import FeatureContribution, Prediction
from tests.conftest import START

#: user id → (role, household or technician id, password)
USERS: dict[str, tuple[Role, str | None, str]] = {
    "home1": (Role.HOMEOWNER, "hh-1", "pw-home1-long-enough"),
    "home2": (Role.HOMEOWNER, "hh-2", "pw-home2-long-enough"),
    "tech1": (Role.TECHNICIAN, "tech-1", "pw-tech1-long-enough"),
    "tech2": (Role.TECHNICIAN, "tech-2", "pw-tech2-long-enough"),
    "op": (Role.OPERATOR, None, "pw-operator-long-enough"),
}


def seed_users(rt: Runtime) -> None:
    """Create the test users in the runtime's database."""
    store = AuthStore(rt.engine, clock=SystemClock())
    for user_id, (role, link, password) in USERS.items():
        store.add_user(user_id=user_id, role=role, password=password, display_name=user_id.title(),
                       household_id=link if role is Role.HOMEOWNER else None,
                       technician_id=link if role is Role.TECHNICIAN else None)


def signed_in(app: FastAPI, user_id: str) -> TestClient:
    """A client carrying a bearer token of ``user_id`` (from a real POST /auth/login)."""
    response = TestClient(app).post("/auth/login", json={"user_id": user_id, "password": USERS[user_id][2]})
    assert response.status_code == 200, response.text
    return TestClient(app, headers={"Authorization": f"Bearer {response.json()['token']}"})


def login_form_token(client: TestClient, next_path: str = "") -> str:
    """Open the sign-in page as a browser would: its form token (the page also sets the sign-in cookie)."""
    page = client.get("/login", params={"next": next_path} if next_path else None)
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert page.status_code == 200 and found, "the sign-in page has no form token"
    return found.group(1)


def page_signed_in(app: FastAPI, user_id: str) -> TestClient:
    """A browser-like client signed in through the sign-in form (session cookie, no redirects followed)."""
    client = TestClient(app, follow_redirects=False)
    response = client.post("/login", data={"user_id": user_id, "password": USERS[user_id][2],
                                           "csrf": login_form_token(client)})
    assert response.status_code == 303, response.text
    return client


def clients(app: FastAPI) -> dict[str, TestClient]:
    """A signed-in client per test user, plus ``anon`` with no credentials."""
    return {"anon": TestClient(app), **{u: signed_in(app, u) for u in USERS}}


def _prediction(clock: ManualClock, device_id: str, kind: str, mode: str, *, p: float, ttf: float,
                faults: tuple[str, ...] = ()) -> Prediction:
    return Prediction(device_id=device_id, kind=kind, mode=mode, ts=clock.now(), p_fail=p, horizon_h=48,
                      ttf_h=ttf, ttf_low_h=ttf * 0.7, ttf_high_h=ttf * 1.3, model_version=f"{kind}.{mode}.v1",
                      top_features=(FeatureContribution("time_to_boil_s__delta", 310.0, 0.4),),
                      sensor_faults=faults)


def api_runtime(tmp_path: Path, **settings: object) -> Runtime:
    """A runtime on SQLite with two households, two technicians, a tip, a booking and the test users."""
    clock = ManualClock(START)
    rt = build_runtime(Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", model_dir=tmp_path / "models",
                                **settings),  # type: ignore[arg-type]
                       clock=clock)
    rt.store.register_devices([
        DeviceInfo(device_id="rc-1", kind="rice_cooker", model="RC-100", household_id="hh-1", service_area="SE1"),
        DeviceInfo(device_id="ac-1", kind="air_conditioner", model="AC-2500", household_id="hh-2", service_area="N7"),
    ])
    rt.seed_technicians([Technician(technician_id="tech-1", name="Ana", skills=frozenset({"hvac"}),
                                    service_areas=frozenset({"N7"}), working_hours=(8, 18),
                                    working_days=frozenset(range(7))),
                        Technician(technician_id="tech-2", name="Ben", skills=frozenset({"hvac"}),
                                   service_areas=frozenset({"W9"}), working_hours=(8, 18),
                                   working_days=frozenset(range(7)))])
    clock.advance(timedelta(days=1))
    batch = [Inbound(telemetry_topic("rc-1"), encode_telemetry(Telemetry(
        device_id="rc-1", kind="rice_cooker", model="RC-100", firmware="1.0", seq=i,
        ts=clock.now() - timedelta(hours=8 * (10 - i)), metrics={"time_to_boil_s": 700.0 + 30 * i})), clock.now())
        for i in range(10)]
    rt.store.write_batch(batch)
    preds = [_prediction(clock, "rc-1", "rice_cooker", "scale_buildup", p=0.8, ttf=60),
             _prediction(clock, "ac-1", "air_conditioner", "filter_clogging", p=0.75, ttf=90)]
    rt.predictions.save(preds)
    rt.actions.handle(preds)
    seed_users(rt)
    return rt
