"""Revoked devices: the database's record of credentials withdrawn by ``foresight devices revoke``.

The broker stops a revoked device from connecting once it reloads its password file, but what the
device published before that may still sit in the ingester's persistent session. ``IngestStore``
checks every batch against this table and dead-letters such messages as ``revoked_device``, so a
reading from a withdrawn (possibly stolen) login can never reach the features, scores or actions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, select

from ingest.db import DeviceRevocationRow
from ingest.online import upsert

__all__ = ["reinstate", "revoke", "revoked", "revoked_among"]


def revoke(engine: Engine, device_ids: Iterable[str], *, at: datetime) -> list[str]:
    """Record ``device_ids`` as revoked at ``at``; returns those not revoked before (a repeat keeps the first time)."""
    ids = list(dict.fromkeys(device_ids))
    if not ids:
        return []
    with engine.begin() as conn:
        before = revoked_among(conn, ids)
        conn.execute(upsert(conn, DeviceRevocationRow).on_conflict_do_nothing(index_elements=["device_id"]),
                     [{"device_id": d, "revoked_at": at} for d in ids])
    return [d for d in ids if d not in before]


def reinstate(engine: Engine, device_ids: Iterable[str]) -> list[str]:
    """Lift the revocation of ``device_ids``; returns those that were revoked."""
    ids = list(dict.fromkeys(device_ids))
    if not ids:
        return []
    with engine.begin() as conn:
        was = revoked_among(conn, ids)
        conn.execute(delete(DeviceRevocationRow).where(DeviceRevocationRow.device_id.in_(ids)))
    return [d for d in ids if d in was]


def revoked(engine: Engine) -> dict[str, datetime]:
    """Every revoked device id and when it was revoked."""
    with engine.connect() as conn:
        return {d: at for d, at in conn.execute(select(DeviceRevocationRow.device_id, DeviceRevocationRow.revoked_at)
                                                .order_by(DeviceRevocationRow.device_id))}


def revoked_among(conn: Connection, device_ids: Collection[str]) -> set[str]:
    """The revoked ones among ``device_ids``, inside the caller's transaction."""
    if not device_ids:
        return set()
    return set(conn.scalars(select(DeviceRevocationRow.device_id)
                            .where(DeviceRevocationRow.device_id.in_(list(device_ids)))))
