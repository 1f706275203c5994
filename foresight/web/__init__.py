"""The web app served by the API process: server-rendered pages for homeowners, technicians, operators."""

from .pages import mount_web

__all__ = ["mount_web"]
