"""The `foresight devices` commands: per-device MQTT credentials for the broker and the factory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from devices_sim import read_manifest_csv

from .provision import ProvisionError, provision

__all__ = ["devices_app"]

devices_app = typer.Typer(help="Device credentials and broker access control.", no_args_is_help=True)
console = Console()


@devices_app.command("provision")
def provision_command(
    manifest: Annotated[Path, typer.Option(exists=True, dir_okay=False, readable=True,
                                           help="Fleet manifest CSV (device_id,kind,model,...).")],
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for passwd, acl, credentials.csv, "
                                                           "backend-credentials.csv.")],
    backend_user: Annotated[str, typer.Option(help="The backend's MQTT username.")] = "foresight",
    rotate: Annotated[list[str] | None, typer.Option(help="Issue a new password to this device (repeatable; "
                                                          "the backend user too).")] = None,
    python_hash: Annotated[bool, typer.Option("--python-hash", help="Hash in Python instead of calling "
                                                                  "mosquitto_passwd.")] = False,
) -> None:
    """Issue per-device passwords and write Mosquitto's password_file and acl_file.

    Re-running keeps every existing password and adds the manifest's new devices.
    """
    rows = read_manifest_csv(manifest)
    if rows and "device_id" not in rows[0]:
        raise typer.BadParameter("the manifest has no device_id column", param_hint="--manifest")
    try:
        result = provision((r["device_id"] for r in rows), out=out, backend_user=backend_user,
                           rotate=rotate or (), use_binary=not python_hash)
    except ProvisionError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"{result.devices} devices ({len(result.added)} new, {len(result.rotated)} rotated); "
                  f"hashed with {result.hashed_with}; files in {result.out}")
    console.print("broker: password_file passwd, acl_file acl, allow_anonymous false; "
                  "factory: credentials.csv; backend: backend-credentials.csv -> FORESIGHT_MQTT_URL")
