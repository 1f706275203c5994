"""Per-device MQTT credentials and the Mosquitto files that enforce them.

``provision`` turns a fleet manifest into files in one folder:

- ``passwd``: Mosquitto's ``password_file`` (PBKDF2-SHA512 ``$7$`` hashes, never plain text);
- ``acl``: Mosquitto's ``acl_file``: the backend users read ``appliances/#``; every other user
  may only *write* its own ``appliances/<username>/{telemetry,events,status}``;
- ``credentials.csv`` (``device_id,username,password``, mode 0600): for the factory, which flashes
  each appliance with its own login;
- ``backend-credentials.csv`` (``username,password``, mode 0600): the backend's logins (one per
  ingest worker), kept apart so the factory never holds them;
- ``revoked.csv`` (``device_id,revoked_at``), once ``revoke`` has withdrawn a device's login.

``credentials.csv``, ``backend-credentials.csv`` and ``revoked.csv`` are the source of truth: a
re-run keeps every password in them, adds the manifest's new devices and rewrites ``passwd`` and
``acl`` from them. A revoked device stays revoked when the manifest still lists it; only an explicit
``reinstate`` gives it a login again (a new password: the withdrawn one never works again).
The username of a device is its device id, which the ACL's ``%u`` patterns rely on.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest.contract import DecodeError, parse_topic, telemetry_topic

__all__ = [
    "BACKEND_CREDENTIALS_FILE",
    "CREDENTIALS_FILE",
    "REVOKED_FILE",
    "ProvisionError",
    "ProvisionResult",
    "RevokeResult",
    "acl_text",
    "hash_password",
    "provision",
    "read_credentials",
    "read_revoked",
    "revoke",
]

CREDENTIALS_FILE = "credentials.csv"
BACKEND_CREDENTIALS_FILE = "backend-credentials.csv"
REVOKED_FILE = "revoked.csv"
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"

#: Mosquitto 2.0's defaults for ``$7$`` (sha512-pbkdf2): 12-byte salt, 101 iterations, 64-byte digest.
_SALT_BYTES = 12
_ITERATIONS = 101
#: ``secrets.token_urlsafe(24)`` gives 32 characters of ``A-Z a-z 0-9 - _``: 192 bits, and no
#: character that needs percent-encoding in ``FORESIGHT_MQTT_URL``.
_TOKEN_BYTES = 24


class ProvisionError(Exception):
    """The manifest or the existing credentials cannot be provisioned as asked."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionResult:
    """What one ``provision`` run did."""

    out: Path
    added: tuple[str, ...]
    rotated: tuple[str, ...]
    devices: int
    backend_users: tuple[str, ...]
    hashed_with: str  # "mosquitto_passwd" or "python"
    #: Given a login again (with a new password).
    reinstated: tuple[str, ...] = ()
    #: In the manifest but revoked, so left without a login.
    skipped_revoked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeResult:
    """What one ``revoke`` run did."""

    out: Path
    revoked: tuple[str, ...]
    #: Already revoked by an earlier run (nothing left to remove).
    already: tuple[str, ...]


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """A Mosquitto ``$7$`` password hash (PBKDF2-HMAC-SHA512), as ``mosquitto_passwd`` writes it."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(*, backend_users: Sequence[str]) -> str:
    """The ``acl_file``: the backend reads every appliance topic, a device writes only its own."""
    return "\n".join([
        "# Written by `foresight devices provision`; edits are lost on the next run.",
        "# The backend (one login per ingest worker) reads every appliance topic and publishes nothing.",
        *(line for user in backend_users for line in (f"user {user}", "topic read appliances/#")),
        "",
        "# Every device (username = device id = MQTT client id) writes its own topics and reads",
        "# nothing: no other device's topics, no wildcard. The status topic carries its last will.",
        "pattern write appliances/%u/telemetry",
        "pattern write appliances/%u/events",
        "pattern write appliances/%u/status",
        "",
    ])


def read_credentials(path: Path) -> dict[str, str]:
    """``username -> password`` from a ``credentials.csv`` or ``backend-credentials.csv`` (empty if absent)."""
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["username"]: row["password"] for row in csv.DictReader(fh)}


def read_revoked(path: Path) -> dict[str, str]:
    """``device_id -> revoked_at`` (ISO 8601) from a ``revoked.csv`` (empty if absent)."""
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {row["device_id"]: row["revoked_at"] for row in csv.DictReader(fh)}


def provision(device_ids: Iterable[str], *, out: Path, backend_users: Sequence[str] = ("foresight",),
              rotate: Iterable[str] = (), reinstate: Iterable[str] = (), mosquitto_passwd: str | None = None,
              use_binary: bool = True) -> ProvisionResult:
    """Issue a password to every new device, rotate those named, and (re)write the files.

    ``backend_users``: the backend's logins, one per ingest worker when the broker keys sessions on
    the username (``use_username_as_clientid``). Revoked devices get no login, unless named in
    ``reinstate`` (which lifts the revocation and issues a new password). ``mosquitto_passwd``:
    path of the binary (found on PATH when None); ``use_binary=False`` hashes in Python instead
    (the same ``$7$`` format Mosquitto 2.0 reads).
    """
    backend_users = list(dict.fromkeys(backend_users))
    if not backend_users:
        raise ProvisionError("at least one backend user is needed")
    out.mkdir(parents=True, exist_ok=True)
    revoked = read_revoked(out / REVOKED_FILE)
    reinstate = list(dict.fromkeys(reinstate))
    not_revoked = [d for d in reinstate if d not in revoked]
    if not_revoked:
        raise ProvisionError(f"cannot reinstate device(s) that are not revoked: {', '.join(not_revoked)}")
    for d in reinstate:
        del revoked[d]
    wanted = list(dict.fromkeys([*device_ids, *reinstate]))
    skipped = tuple(d for d in wanted if d in revoked)
    ids = [d for d in wanted if d not in revoked]
    for name in [*ids, *backend_users]:
        _check_username(name)
    clash = [u for u in backend_users if u in ids or u in revoked]
    if clash:
        raise ProvisionError(f"backend user(s) {', '.join(map(repr, clash))} also a device id")
    devices = read_credentials(out / CREDENTIALS_FILE)
    backend = read_credentials(out / BACKEND_CREDENTIALS_FILE)
    clash = [u for u in backend_users if u in devices]
    if clash:
        raise ProvisionError(f"backend user(s) {', '.join(map(repr, clash))} a provisioned device")
    rotate = list(dict.fromkeys(rotate))
    withdrawn = [r for r in rotate if r in revoked]
    if withdrawn:
        raise ProvisionError(f"cannot rotate revoked device(s) {', '.join(withdrawn)}: reinstate them instead")
    unknown = [r for r in rotate if r not in devices and r not in ids and r not in backend_users]
    if unknown:
        raise ProvisionError(f"cannot rotate unknown device(s): {', '.join(unknown)}")

    added = tuple(d for d in ids if d not in devices)
    for device_id in [*added, *(r for r in rotate if r not in backend_users)]:
        devices[device_id] = secrets.token_urlsafe(_TOKEN_BYTES)
    # Only the users named now keep a login: a renamed or retired backend user leaves none behind.
    backend = {u: backend[u] if u in backend and u not in rotate else secrets.token_urlsafe(_TOKEN_BYTES)
               for u in backend_users}

    _write_private(out / CREDENTIALS_FILE, _csv(["device_id", "username", "password"],
                                                ([d, d, pw] for d, pw in sorted(devices.items()))))
    _write_private(out / BACKEND_CREDENTIALS_FILE, _csv(["username", "password"], backend.items()))
    if reinstate or (out / REVOKED_FILE).exists():
        _write_revoked(out / REVOKED_FILE, revoked)
    logins = {**backend, **devices}
    exe = (mosquitto_passwd or _find_mosquitto_passwd()) if use_binary else None
    if exe is not None:
        _write_password_file_with_binary(out / PASSWORD_FILE, logins, exe)
    else:
        _write_private(out / PASSWORD_FILE, "".join(f"{u}:{hash_password(pw)}\n" for u, pw in logins.items()),
                       mode=0o640)
    _write_private(out / ACL_FILE, acl_text(backend_users=backend_users), mode=0o640)
    return ProvisionResult(out=out, added=added, rotated=tuple(rotate), devices=len(devices),
                           backend_users=tuple(backend_users), hashed_with="mosquitto_passwd" if exe else "python",
                           reinstated=tuple(reinstate), skipped_revoked=skipped)


def revoke(device_ids: Iterable[str], *, out: Path, now: datetime | None = None) -> RevokeResult:
    """Withdraw devices' logins: out of ``passwd`` and ``credentials.csv``, into ``revoked.csv``.

    The other logins' hashes in ``passwd`` are kept as they are (no password is re-hashed). The
    broker applies it when it rereads its files (SIGHUP). Refuses a backend user and an id that was
    never provisioned in ``out`` (a typo must not look like a revocation); a repeat is a no-op.
    """
    ids = list(dict.fromkeys(device_ids))
    devices = read_credentials(out / CREDENTIALS_FILE)
    backend = read_credentials(out / BACKEND_CREDENTIALS_FILE)
    revoked = read_revoked(out / REVOKED_FILE)
    if not ids:
        raise ProvisionError("name at least one device to revoke")
    backend_named = [d for d in ids if d in backend]
    if backend_named:
        raise ProvisionError(f"{', '.join(backend_named)} is a backend login; rotate its password instead")
    unknown = [d for d in ids if d not in devices and d not in revoked]
    if unknown:
        raise ProvisionError(f"not provisioned in {out}: {', '.join(unknown)}")
    at = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
    fresh = tuple(d for d in ids if d not in revoked)
    for d in fresh:
        revoked[d] = at
        devices.pop(d, None)
    # Order matters for a crash part-way: the login leaves ``passwd`` before the records say so.
    passwd = out / PASSWORD_FILE
    if passwd.exists():
        gone = set(ids)
        kept = [line for line in passwd.read_text(encoding="utf-8").splitlines(keepends=True)
                if line.split(":", 1)[0] not in gone]
        _write_private(passwd, "".join(kept), mode=0o640)
    _write_private(out / CREDENTIALS_FILE, _csv(["device_id", "username", "password"],
                                                ([d, d, pw] for d, pw in sorted(devices.items()))))
    _write_revoked(out / REVOKED_FILE, revoked)
    return RevokeResult(out=out, revoked=fresh, already=tuple(d for d in ids if d not in fresh))


def _write_revoked(path: Path, revoked: Mapping[str, str]) -> None:
    _write_private(path, _csv(["device_id", "revoked_at"], sorted(revoked.items())), mode=0o640)


def _check_username(name: str) -> None:
    # A username is substituted for %u in ACL patterns: '+', '#', '/' or ':' would widen them or
    # break the password file, so only the wire contract's device-id characters are allowed.
    try:
        parse_topic(telemetry_topic(name))
    except DecodeError:
        raise ProvisionError(f"{name!r} is not a valid device id / username (1-64 of A-Z a-z 0-9 - _ .)") from None


def _find_mosquitto_passwd() -> str | None:
    return shutil.which("mosquitto_passwd") or next(
        (p for p in ("/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd") if Path(p).exists()), None)


def _write_password_file_with_binary(path: Path, logins: Mapping[str, str], exe: str) -> None:
    # ``mosquitto_passwd -U`` hashes a plain-text file in place: one call for the whole fleet, and
    # no password on a command line (``-b`` per entry would show each one in ``ps``).
    fd, tmp = tempfile.mkstemp(prefix=".passwd-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.writelines(f"{u}:{pw}\n" for u, pw in logins.items())
        done = subprocess.run([exe, "-U", tmp], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise ProvisionError(f"mosquitto_passwd -U failed ({done.returncode}): {done.stderr.strip()}")
        os.chmod(tmp, 0o640)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_private(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write atomically, the file never readable by others, not even for a moment."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _csv(header: list[str], rows: Iterable[Iterable[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
