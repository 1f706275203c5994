"""The `foresight devices` commands: per-device MQTT credentials for the broker and the factory."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import Engine

from devices_sim import read_manifest_csv
from ingest import revocations
from ingest.db import make_engine

from .migrate import upgrade
from .provision import ProvisionError, provision, revoke
from .settings import Settings

__all__ = ["devices_app", "reload_broker"]

devices_app = typer.Typer(help="Device credentials and broker access control.", no_args_is_help=True)
console = Console()

_RELOAD_HINT = ("reload the broker so it rereads passwd: `systemctl reload mosquitto` or "
                "`kill -HUP $(cat /run/mosquitto/mosquitto.pid)` (or pass --pid-file)")


def _engine() -> Engine:
    engine = make_engine(Settings().database_url)
    upgrade(engine)
    return engine


@devices_app.command("provision")
def provision_command(
    manifest: Annotated[Path, typer.Option(exists=True, dir_okay=False, readable=True,
                                           help="Fleet manifest CSV (device_id,kind,model,...).")],
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for passwd, acl, credentials.csv, "
                                                           "backend-credentials.csv.")],
    backend_user: Annotated[list[str] | None, typer.Option(help="The backend's MQTT username (repeatable: one "
                                                                "login per ingest worker).")] = None,
    rotate: Annotated[list[str] | None, typer.Option(help="Issue a new password to this device (repeatable; "
                                                          "the backend user too).")] = None,
    reinstate: Annotated[list[str] | None, typer.Option(help="Give this revoked device a new login and lift its "
                                                             "revocation in FORESIGHT_DATABASE_URL (repeatable).")] = None,
    python_hash: Annotated[bool, typer.Option("--python-hash", help="Hash in Python instead of calling "
                                                                  "mosquitto_passwd.")] = False,
    pid_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                  help="Mosquitto's pid_file: send it SIGHUP to reload now.")] = None,
) -> None:
    """Issue per-device passwords and write Mosquitto's password_file and acl_file.

    Re-running keeps every existing password and adds the manifest's new devices; revoked devices
    stay revoked unless named with --reinstate.
    """
    rows = read_manifest_csv(manifest)
    if rows and "device_id" not in rows[0]:
        raise typer.BadParameter("the manifest has no device_id column", param_hint="--manifest")
    try:
        result = provision((r["device_id"] for r in rows), out=out, backend_users=backend_user or ["foresight"],
                           rotate=rotate or (), reinstate=reinstate or (), use_binary=not python_hash)
    except ProvisionError as exc:
        raise typer.BadParameter(str(exc)) from None
    if result.reinstated:
        revocations.reinstate(_engine(), result.reinstated)
    console.print(f"{result.devices} devices ({len(result.added)} new, {len(result.rotated)} rotated, "
                  f"{len(result.reinstated)} reinstated); hashed with {result.hashed_with}; files in {result.out}")
    if result.skipped_revoked:
        console.print(f"revoked, left without a login (--reinstate to undo): {', '.join(result.skipped_revoked)}")
    console.print("broker: password_file passwd, acl_file acl, allow_anonymous false; "
                  "factory: credentials.csv; backend: backend-credentials.csv -> FORESIGHT_MQTT_URL")
    if pid_file is not None:
        _reload(pid_file)


def _reload(pid_file: Path) -> None:
    try:
        pid = reload_broker(pid_file)
    except (OSError, ValueError) as exc:
        console.print(f"[red]could not reload the broker: {exc}[/red]; {_RELOAD_HINT}")
        raise typer.Exit(1) from None
    console.print(f"sent SIGHUP to mosquitto (pid {pid}): it rereads passwd and acl, and drops withdrawn logins")


@devices_app.command("revoke")
def revoke_command(
    device_ids: Annotated[list[str], typer.Argument(help="Device ids whose logins to withdraw.")],
    out: Annotated[Path, typer.Option(exists=True, file_okay=False, help="The folder `devices provision` wrote.")],
    pid_file: Annotated[Path | None, typer.Option(exists=True, dir_okay=False,
                                                  help="Mosquitto's pid_file: send it SIGHUP to reload now.")] = None,
) -> None:
    """Withdraw devices' MQTT logins and have the ingester refuse whatever still arrives from them.

    Removes them from passwd and credentials.csv (recorded in revoked.csv), records the revocation
    in FORESIGHT_DATABASE_URL, then reloads Mosquitto when given its pid file. Safe to repeat.
    """
    now = datetime.now(UTC)
    try:
        result = revoke(device_ids, out=out, now=now)
    except ProvisionError as exc:
        raise typer.BadParameter(str(exc)) from None
    revocations.revoke(_engine(), device_ids, at=now)
    console.print(f"revoked {len(result.revoked)} device(s)"
                  + (f"; already revoked: {', '.join(result.already)}" if result.already else "")
                  + "; the ingester dead-letters whatever still arrives from them (revoked_device)")
    if pid_file is None:
        console.print(_RELOAD_HINT)
    else:
        _reload(pid_file)


def reload_broker(pid_file: Path) -> int:
    """SIGHUP the Mosquitto whose pid ``pid_file`` holds; refuses a pid that is not a mosquitto process."""
    text = pid_file.read_text(encoding="ascii").strip()
    if not text.isdigit():
        raise ValueError(f"{pid_file} does not hold a process id")
    pid = int(text)
    comm = Path(f"/proc/{pid}/comm")
    # A stale pid file may name an unrelated process, which SIGHUP would usually kill.
    if comm.parent.exists() and comm.read_text().strip() != "mosquitto":
        raise ValueError(f"process {pid} from {pid_file} is {comm.read_text().strip()!r}, not mosquitto")
    if not comm.parent.exists() and Path("/proc/self").exists():
        raise ValueError(f"no process {pid} (stale {pid_file}?)")
    os.kill(pid, signal.SIGHUP)
    return pid
