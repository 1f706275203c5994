"""Signed-in test clients: one user per role (and a second homeowner and technician to be wrong)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from foresight.auth import AuthStore, Role
from foresight.runtime import Runtime
from ingest.clock import SystemClock

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


def clients(app: FastAPI) -> dict[str, TestClient]:
    """A signed-in client per test user, plus ``anon`` with no credentials."""
    return {"anon": TestClient(app), **{u: signed_in(app, u) for u in USERS}}
