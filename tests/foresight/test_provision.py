"""`foresight devices provision`: passwords issued once, kept on re-runs, files private, ids checked."""

from __future__ import annotations

import base64
import csv
import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foresight.cli import app
from foresight.provision import (
    BACKEND_CREDENTIALS_FILE,
    CREDENTIALS_FILE,
    REVOKED_FILE,
    ProvisionError,
    hash_password,
    provision,
    read_credentials,
    read_revoked,
    revoke,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _manifest(path: Path, ids: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["device_id", "kind", "model", "firmware", "household_id", "service_area"])
        out.writerows([d, "rice_cooker", "RC-100", "1.0", "hh-1", "SE1"] for d in ids)
    return path


@pytest.mark.parametrize("use_binary", [True, False], ids=["mosquitto_passwd", "python"])
def test_rerun_keeps_passwords_adds_new_devices_and_rotates_one(tmp_path: Path, use_binary: bool) -> None:
    first = provision(["rc-1", "rc-2"], out=tmp_path, use_binary=use_binary)
    assert first.added == ("rc-1", "rc-2")
    before = read_credentials(tmp_path / CREDENTIALS_FILE)
    backend = read_credentials(tmp_path / BACKEND_CREDENTIALS_FILE)
    assert set(before) == {"rc-1", "rc-2"} and set(backend) == {"foresight"}
    assert len(set(before.values()) | set(backend.values())) == 3 and all(len(p) >= 32 for p in before.values())

    again = provision(["rc-1", "rc-2", "rc-3"], out=tmp_path, rotate=["rc-2"], use_binary=use_binary)
    after = read_credentials(tmp_path / CREDENTIALS_FILE)
    assert again.added == ("rc-3",) and again.rotated == ("rc-2",)
    assert after["rc-1"] == before["rc-1"] and after["rc-2"] != before["rc-2"]
    assert read_credentials(tmp_path / BACKEND_CREDENTIALS_FILE) == backend
    users = [line.split(":", 1)[0] for line in (tmp_path / "passwd").read_text().splitlines()]
    assert sorted(users) == ["foresight", "rc-1", "rc-2", "rc-3"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in (tmp_path / "passwd").read_text().splitlines())
    assert before["rc-1"] not in (tmp_path / "passwd").read_text()
    assert _mode(tmp_path / CREDENTIALS_FILE) == 0o600 and _mode(tmp_path / BACKEND_CREDENTIALS_FILE) == 0o600
    assert not _mode(tmp_path / "passwd") & 0o007 and not _mode(tmp_path / "acl") & 0o007
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acl", BACKEND_CREDENTIALS_FILE, CREDENTIALS_FILE, "passwd"]


def test_revoke_removes_only_that_login_and_is_safe_to_repeat(tmp_path: Path) -> None:
    provision(["rc-1", "rc-2"], out=tmp_path, use_binary=False)
    hashes = dict(line.split(":", 1) for line in (tmp_path / "passwd").read_text().splitlines())
    first = revoke(["rc-1"], out=tmp_path, now=datetime(2026, 12, 2, 9, 30, tzinfo=UTC))
    assert first.revoked == ("rc-1",) and first.already == ()
    left = dict(line.split(":", 1) for line in (tmp_path / "passwd").read_text().splitlines())
    assert left == {u: h for u, h in hashes.items() if u != "rc-1"}  # nothing re-hashed
    assert set(read_credentials(tmp_path / CREDENTIALS_FILE)) == {"rc-2"}
    assert read_revoked(tmp_path / REVOKED_FILE) == {"rc-1": "2026-12-02T09:30:00+00:00"}
    again = revoke(["rc-1"], out=tmp_path)
    assert again.revoked == () and again.already == ("rc-1",)
    assert read_revoked(tmp_path / REVOKED_FILE) == {"rc-1": "2026-12-02T09:30:00+00:00"}
    with pytest.raises(ProvisionError, match="not provisioned"):
        revoke(["rc-9"], out=tmp_path)
    with pytest.raises(ProvisionError, match="backend login"):
        revoke(["foresight"], out=tmp_path)


def test_a_revoked_device_stays_revoked_until_reinstated_with_a_new_password(tmp_path: Path) -> None:
    provision(["rc-1", "rc-2"], out=tmp_path, use_binary=False)
    old = read_credentials(tmp_path / CREDENTIALS_FILE)["rc-1"]
    revoke(["rc-1"], out=tmp_path)
    rerun = provision(["rc-1", "rc-2", "rc-3"], out=tmp_path, use_binary=False)
    assert rerun.added == ("rc-3",) and rerun.skipped_revoked == ("rc-1",)
    assert "rc-1" not in read_credentials(tmp_path / CREDENTIALS_FILE)
    with pytest.raises(ProvisionError, match="reinstate them instead"):
        provision([], out=tmp_path, rotate=["rc-1"], use_binary=False)
    with pytest.raises(ProvisionError, match="not revoked"):
        provision([], out=tmp_path, reinstate=["rc-2"], use_binary=False)
    back = provision([], out=tmp_path, reinstate=["rc-1"], use_binary=False)
    assert back.reinstated == ("rc-1",) and back.added == ("rc-1",)
    assert read_credentials(tmp_path / CREDENTIALS_FILE)["rc-1"] != old
    assert read_revoked(tmp_path / REVOKED_FILE) == {}


def test_one_backend_login_per_ingest_worker(tmp_path: Path) -> None:
    provision(["rc-1"], out=tmp_path, backend_users=["ingest-1", "ingest-2"], use_binary=False)
    first = read_credentials(tmp_path / BACKEND_CREDENTIALS_FILE)
    assert set(first) == {"ingest-1", "ingest-2"} and len(set(first.values())) == 2
    rules = [line for line in (tmp_path / "acl").read_text().splitlines() if line and not line.startswith("#")]
    assert rules[:4] == ["user ingest-1", "topic read appliances/#", "user ingest-2", "topic read appliances/#"]
    provision(["rc-1"], out=tmp_path, backend_users=["ingest-2"], use_binary=False)  # a worker retired
    assert read_credentials(tmp_path / BACKEND_CREDENTIALS_FILE) == {"ingest-2": first["ingest-2"]}
    assert "ingest-1" not in (tmp_path / "passwd").read_text()


def test_acl_lets_devices_write_only_their_own_topics(tmp_path: Path) -> None:
    provision(["rc-1"], out=tmp_path, backend_users=["svc"], use_binary=False)
    rules = [line for line in (tmp_path / "acl").read_text().splitlines() if line and not line.startswith("#")]
    assert rules == ["user svc", "topic read appliances/#",
                     "pattern write appliances/%u/telemetry", "pattern write appliances/%u/events",
                     "pattern write appliances/%u/status"]


def test_python_hash_is_mosquittos_pbkdf2_format() -> None:
    salt = bytes(range(12))
    _, alg, iterations, b64salt, b64digest = hash_password("s3cret", salt=salt).split("$")
    assert (alg, iterations, base64.b64decode(b64salt)) == ("7", "101", salt)
    assert base64.b64decode(b64digest) == hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 101)


@pytest.mark.parametrize("bad", ["a/b", "rc+1", "#", "", "x" * 65, "rc 1", "a:b", "%u"])
def test_ids_that_would_widen_an_acl_pattern_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ProvisionError):
        provision([bad], out=tmp_path, use_binary=False)


def test_backend_user_cannot_be_a_device_and_unknown_rotation_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProvisionError, match="backend user"):
        provision(["foresight"], out=tmp_path, use_binary=False)
    with pytest.raises(ProvisionError, match="rotate unknown"):
        provision(["rc-1"], out=tmp_path, rotate=["rc-9"], use_binary=False)


def test_cli_provisions_from_a_manifest(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path / "manifest.csv", ["rc-1", "ac-2"])
    out = tmp_path / "broker"
    result = CliRunner().invoke(app, ["devices", "provision", "--manifest", str(manifest), "--out", str(out),
                                      "--backend-user", "backend"])
    assert result.exit_code == 0, result.output
    assert set(read_credentials(out / CREDENTIALS_FILE)) == {"rc-1", "ac-2"}
    assert set(read_credentials(out / BACKEND_CREDENTIALS_FILE)) == {"backend"}
    bad = CliRunner().invoke(app, ["devices", "provision", "--manifest", str(manifest), "--out", str(out),
                                   "--rotate", "nobody"])
    assert bad.exit_code != 0 and "nobody" in bad.output
