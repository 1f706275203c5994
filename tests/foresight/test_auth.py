"""Sign-in, tokens, limits and production settings, over the real app on SQLite."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foresight.api import create_app
from foresight.auth import AuthStore, Role, TokenRow, UserRow, hash_password, verify_password
from foresight.runtime import Runtime
from foresight.security import RateLimited, RateLimiter
from foresight.settings import Settings
from ingest.clock import ManualClock
from tests.conftest import START
from tests.foresight.people import USERS, api_runtime


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = api_runtime(tmp_path, login_attempts_per_minute=5, rate_limit_per_minute=30, max_body_bytes=4096)
    yield rt
    rt.engine.dispose()


def _login(client: TestClient, user_id: str, password: str | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    r = client.post("/auth/login", json={"user_id": user_id, "password": password or USERS[user_id][2]})
    return r.status_code, r.json()


def test_passwords_are_salted_scrypt_and_never_stored_plain(runtime: Runtime) -> None:
    a, b = hash_password("correct horse"), hash_password("correct horse")
    assert a != b and a.startswith("scrypt$") and verify_password("correct horse", a)
    assert not verify_password("Correct horse", a) and not verify_password("x", "garbage")
    with Session(runtime.engine) as s:
        stored = s.scalars(select(UserRow.password_hash)).all()
    assert stored and not any(pw in h for h in stored for _, _, pw in USERS.values())


def test_login_issues_a_token_stored_only_as_its_hash_and_logout_revokes_it(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    status, body = _login(client, "home1")
    assert status == 200 and body["user"] == {"user_id": "home1", "role": "homeowner", "display_name": "Home1",
                                              "household_id": "hh-1", "technician_id": None}
    token = body["token"]
    with Session(runtime.engine) as s:
        hashes = s.scalars(select(TokenRow.token_hash)).all()
    assert token not in hashes and len(hashes) == 1
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/auth/me", headers=auth).json()["household_id"] == "hh-1"
    assert client.post("/auth/logout", headers=auth).status_code == 204
    assert client.get("/auth/me", headers=auth).status_code == 401
    assert client.get("/auth/me", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    r = client.get("/auth/me")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_wrong_password_and_unknown_user_look_the_same(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    wrong = _login(client, "home1", "nope")
    unknown = _login(client, "nobody", "nope")
    assert wrong == unknown == (401, {"detail": "unknown user or wrong password"})


def test_tokens_expire(runtime: Runtime) -> None:
    clock = ManualClock(START)
    client = TestClient(create_app(runtime, auth_clock=clock))
    _, body = _login(client, "op")
    auth = {"Authorization": f"Bearer {body['token']}"}
    clock.advance(timedelta(hours=runtime.settings.token_ttl_h) - timedelta(seconds=1))
    assert client.get("/tickets", headers=auth).status_code == 200
    clock.advance(timedelta(seconds=1))
    assert client.get("/tickets", headers=auth).status_code == 401
    _login(client, "op")  # a new login clears the user's expired tokens
    with Session(runtime.engine) as s:
        assert s.scalar(select(func.count()).select_from(TokenRow).where(TokenRow.user_id == "op")) == 1


def test_password_guessing_is_rate_limited_per_account(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    statuses = [_login(client, "op", f"guess-{i}")[0] for i in range(5)]
    assert statuses == [401] * 5
    r = client.post("/auth/login", json={"user_id": "op", "password": USERS["op"][2]})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # even the right password waits


def test_requests_are_rate_limited_per_user(runtime: Runtime) -> None:
    # Two a minute, so the bucket cannot refill during the test however slow the machine is.
    strict = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update={"rate_limit_per_minute": 2}))
    client = TestClient(create_app(strict))
    _, body = _login(client, "home1")
    auth = {"Authorization": f"Bearer {body['token']}"}
    statuses = [client.get("/households/hh-1/notifications", headers=auth).status_code for _ in range(3)]
    assert statuses[:2] == [200, 200] and statuses[2] == 429
    refused = client.get("/auth/me", headers=auth)
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 30
    _, other = _login(client, "home2")  # another user has their own budget
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {other['token']}"}).status_code == 200


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, now=lambda: now[0])
    limiter.charge("k")
    limiter.charge("k")
    with pytest.raises(RateLimited) as refused:
        limiter.charge("k")
    assert refused.value.retry_after_s == 30
    now[0] = 30.0
    limiter.charge("k")
    limiter.charge("other")


def test_oversized_bodies_get_413_declared_or_streamed(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    _, body = _login(client, "home1")
    auth = {"Authorization": f"Bearer {body['token']}", "content-type": "application/json"}
    big = b'{"message": "' + b"x" * 5000 + b'"}'
    assert client.post("/households/hh-1/talk-to-person", content=big, headers=auth).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield big[:3000]
        yield big[3000:]

    r = client.post("/households/hh-1/talk-to-person", content=chunks(), headers=auth)
    assert r.status_code == 413 and "4096" in r.json()["detail"]
    assert runtime.actions.open_tickets() == []  # nothing was done with it


def test_production_refuses_placeholder_secrets() -> None:
    with pytest.raises(ValidationError, match="FORESIGHT_SECRET_KEY"):
        Settings(env="production")
    with pytest.raises(ValidationError, match="FORESIGHT_SECRET_KEY"):
        Settings(env="production", secret_key="changeme")
    with pytest.raises(ValidationError, match="placeholder password"):
        Settings(env="production", secret_key="k" * 40, mqtt_url="mqtt://backend:changeme@broker")
    ok = Settings(env="production", secret_key="k" * 40)
    assert ok.cookie_secure  # production cookies travel over HTTPS only
    assert not Settings().cookie_secure  # development keeps working on http://127.0.0.1


def test_users_belong_to_what_their_role_needs(runtime: Runtime) -> None:
    store = AuthStore(runtime.engine, clock=runtime.clock)
    with pytest.raises(ValueError, match="household"):
        store.add_user(user_id="h", role=Role.HOMEOWNER, password="pw", display_name="H")
    with pytest.raises(ValueError, match="technician"):
        store.add_user(user_id="t", role=Role.TECHNICIAN, password="pw", display_name="T")


def test_users_are_added_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from foresight.cli import app

    monkeypatch.setenv("FORESIGHT_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    short = runner.invoke(app, ["users", "add", "ann", "--role", "homeowner", "--household", "hh-9"],
                          input="short\nshort\n")
    assert short.exit_code != 0 and "at least 12" in short.output
    ok = runner.invoke(app, ["users", "add", "ann", "--role", "homeowner", "--household", "hh-9"],
                       input="a-long-password\na-long-password\n")
    assert ok.exit_code == 0, ok.output
    listed = runner.invoke(app, ["users", "list"])
    assert "ann\thomeowner\thh-9" in listed.output


def test_a_new_password_ends_the_sessions_of_the_old_one(runtime: Runtime) -> None:
    client = TestClient(create_app(runtime))
    _, body = _login(client, "home1")
    auth = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/auth/me", headers=auth).status_code == 200
    from ingest.clock import SystemClock

    AuthStore(runtime.engine, clock=SystemClock()).add_user(
        user_id="home1", role=Role.HOMEOWNER, password="a-brand-new-password", display_name="Home1",
        household_id="hh-1")
    assert client.get("/auth/me", headers=auth).status_code == 401  # the leaked token is dead
    status, _ = _login(client, "home1", "a-brand-new-password")
    assert status == 200
