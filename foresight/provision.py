"""Per-device MQTT credentials and the Mosquitto files that enforce them.

``provision`` turns a fleet manifest into four files in one folder:

- ``passwd``: Mosquitto's ``password_file`` (PBKDF2-SHA512 ``$7$`` hashes, never plain text);
- ``acl``: Mosquitto's ``acl_file``: the backend user reads ``appliances/#``; every other user
  may only *write* its own ``appliances/<username>/{telemetry,events,status}``;
- ``credentials.csv`` (``device_id,username,password``, mode 0600): for the factory, which flashes
  each appliance with its own login;
- ``backend-credentials.csv`` (``username,password``, mode 0600): the backend's own login, kept
  apart so the factory never holds it.

``credentials.csv`` and ``backend-credentials.csv`` are the source of truth: a re-run keeps every
password in them, adds the manifest's new devices and rewrites ``passwd`` and ``acl`` from them.
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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ingest.contract import DecodeError, parse_topic, telemetry_topic

__all__ = [
    "BACKEND_CREDENTIALS_FILE",
    "CREDENTIALS_FILE",
    "ProvisionError",
    "ProvisionResult",
    "acl_text",
    "hash_password",
    "provision",
    "read_credentials",
]

CREDENTIALS_FILE = "credentials.csv"
BACKEND_CREDENTIALS_FILE = "backend-credentials.csv"
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
    backend_user: str
    hashed_with: str  # "mosquitto_passwd" or "python"


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = _ITERATIONS) -> str:
    """A Mosquitto ``$7$`` password hash (PBKDF2-HMAC-SHA512), as ``mosquitto_passwd`` writes it."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(*, backend_user: str) -> str:
    """The ``acl_file``: the backend reads every appliance topic, a device writes only its own."""
    return "\n".join([
        "# Written by `foresight devices provision`; edits are lost on the next run.",
        "# The backend reads every appliance topic and publishes nothing.",
        f"user {backend_user}",
        "topic read appliances/#",
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


def provision(device_ids: Iterable[str], *, out: Path, backend_user: str = "foresight",
              rotate: Iterable[str] = (), mosquitto_passwd: str | None = None,
              use_binary: bool = True) -> ProvisionResult:
    """Issue a password to every new device, rotate those named, and (re)write the four files.

    ``mosquitto_passwd``: path of the binary (found on PATH when None); ``use_binary=False`` hashes
    in Python instead (the same ``$7$`` format Mosquitto 2.0 reads).
    """
    ids = list(dict.fromkeys(device_ids))
    for name in [*ids, backend_user]:
        _check_username(name)
    if backend_user in ids:
        raise ProvisionError(f"backend user {backend_user!r} is also a device id")
    out.mkdir(parents=True, exist_ok=True)
    devices = read_credentials(out / CREDENTIALS_FILE)
    backend = read_credentials(out / BACKEND_CREDENTIALS_FILE)
    if backend_user in devices:
        raise ProvisionError(f"backend user {backend_user!r} is a provisioned device")
    rotate = list(dict.fromkeys(rotate))
    unknown = [r for r in rotate if r not in devices and r not in ids and r != backend_user]
    if unknown:
        raise ProvisionError(f"cannot rotate unknown device(s): {', '.join(unknown)}")

    added = tuple(d for d in ids if d not in devices)
    for device_id in [*added, *(r for r in rotate if r != backend_user)]:
        devices[device_id] = secrets.token_urlsafe(_TOKEN_BYTES)
    if backend_user not in backend or backend_user in rotate:
        backend = {backend_user: secrets.token_urlsafe(_TOKEN_BYTES)}
    backend = {backend_user: backend[backend_user]}  # a renamed backend user leaves no stale login

    _write_private(out / CREDENTIALS_FILE, _csv(["device_id", "username", "password"],
                                                ([d, d, pw] for d, pw in sorted(devices.items()))))
    _write_private(out / BACKEND_CREDENTIALS_FILE, _csv(["username", "password"], backend.items()))
    logins = {**backend, **devices}
    exe = (mosquitto_passwd or _find_mosquitto_passwd()) if use_binary else None
    if exe is not None:
        _write_password_file_with_binary(out / PASSWORD_FILE, logins, exe)
    else:
        _write_private(out / PASSWORD_FILE, "".join(f"{u}:{hash_password(pw)}\n" for u, pw in logins.items()),
                       mode=0o640)
    _write_private(out / ACL_FILE, acl_text(backend_user=backend_user), mode=0o640)
    return ProvisionResult(out=out, added=added, rotated=tuple(rotate), devices=len(devices),
                           backend_user=backend_user, hashed_with="mosquitto_passwd" if exe else "python")


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
