"""The `foresight users` commands: who may sign in to the web app and the API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ingest.clock import SystemClock
from ingest.db import make_engine

from .auth import AuthStore, Role
from .migrate import upgrade
from .settings import Settings

__all__ = ["users_app"]

users_app = typer.Typer(help="Users of the web app and API: homeowners, technicians, operators.",
                        no_args_is_help=True)
console = Console()


def _store() -> AuthStore:
    engine = make_engine(Settings().database_url)
    upgrade(engine)
    return AuthStore(engine, clock=SystemClock())


@users_app.command("add")
def add_command(
    user_id: Annotated[str, typer.Argument(help="The sign-in name.")],
    role: Annotated[Role, typer.Option(help="homeowner, technician or operator.")],
    name: Annotated[str, typer.Option(help="Shown on the pages.")] = "",
    household: Annotated[str | None, typer.Option(help="A homeowner's household id.")] = None,
    technician: Annotated[str | None, typer.Option(help="A technician user's technician id.")] = None,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True,
                                          envvar="FORESIGHT_NEW_USER_PASSWORD",
                                          help="Asked for when not given (or from FORESIGHT_NEW_USER_PASSWORD).")] = "",
) -> None:
    """Create a user, or set a new password (and links) for an existing one."""
    if len(password) < 12:
        raise typer.BadParameter("use a password of at least 12 characters", param_hint="--password")
    try:
        _store().add_user(user_id=user_id, role=role, password=password, display_name=name or user_id,
                          household_id=household, technician_id=technician)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"user {user_id} ({role.value}) saved")


@users_app.command("list")
def list_command() -> None:
    """Every user with their role and household or technician (tab-separated)."""
    for p in _store().users():
        typer.echo(f"{p.user_id}\t{p.role.value}\t{p.household_id or p.technician_id or ''}\t{p.display_name}")
