"""The write path's hot statements at the driver level: plain tuples, values encoded once.

Through SQLAlchemy Core every bound value of an executemany passes its type's bind processor
(``JSON`` runs ``json.dumps``, SQLite's ``DATETIME`` formats the text, ``UTCDateTime`` converts the
zone), and building those parameter dicts and processing them was the largest single cost of a
batch. Here the statements are fixed SQL text run with ``exec_driver_sql`` inside the caller's
transaction; JSON is encoded by orjson and SQLite timestamps are formatted by ``isoformat``, to the
very format SQLAlchemy stores (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), so readers, retention and the
migrations see the same rows as before. PostgreSQL gets aware datetimes (``timestamptz``) and JSON
text cast to ``json``, as SQLAlchemy sent them, a batch's rows as one array per column
(``_unnest``): one statement per batch, not a protocol round and an executor start per row.

The statements are the ones ``ingest.store`` and ``ingest.online`` used to build with Core; their
semantics (conflict targets, which columns a late reading may move) are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection

from ingest.window import from_us

__all__ = ["Codec", "codec_for", "insert_new_readings", "insert_online", "select_in", "update_online",
           "upsert_devices", "upsert_history"]

#: Rows per multi-row INSERT ... RETURNING (SQLite) and ids per IN list. Every distinct SQL text is
#: a statement the driver prepares and keeps (Python's sqlite3 caches 128 per connection, about
#: 0.5 kB per row of a multi-row VALUES), so the text must not follow the batch size: statements
#: take ``_CHUNK`` rows, the last one padded to a power of two (``_chunks``), which gives eight
#: texts per statement however the batches vary.
_CHUNK = 128


class Codec:
    """How one dialect takes timestamps and JSON, and its placeholder."""

    __slots__ = ("json_param", "placeholder", "postgres")

    def __init__(self, *, postgres: bool) -> None:
        self.postgres = postgres
        self.placeholder = "%s" if postgres else "?"
        self.json_param = "CAST(%s AS JSON)" if postgres else "?"

    def ts(self, value: datetime) -> Any:
        """A timezone-aware datetime as the database column takes it."""
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the database; use timezone-aware UTC")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value if self.postgres else value.isoformat(" ", "microseconds")[:26]

    def ts_of_us(self, us: np.ndarray) -> list[Any]:
        """``ts`` of many instants given as integer microseconds since the epoch (UTC), at once."""
        if self.postgres:
            return [from_us(x) for x in us.tolist()]
        # numpy formats ISO 8601 with a "T"; the stored format has a space there.
        return [text.replace("T", " ") for text in np.datetime_as_string(us.astype("datetime64[us]")).tolist()]

    @staticmethod
    def json(value: Any) -> str:
        """JSON text (compact; the readers parse it, so the spacing json.dumps used does not matter)."""
        return orjson.dumps(value).decode()


_CODECS = {False: Codec(postgres=False), True: Codec(postgres=True)}


def codec_for(conn: Connection) -> Codec:
    return _CODECS[conn.dialect.name == "postgresql"]


def _sql(codec: Codec, text: str) -> str:
    """``text`` with ``?`` placeholders and ``?j`` for JSON ones, in the dialect's style."""
    return text.replace("?j", codec.json_param).replace("?", codec.placeholder)


def _chunks(rows: Sequence[Any]) -> list[list[Any]]:
    """``rows`` in chunks of ``_CHUNK``, the last one padded to a power of two with copies of its
    last row (a statement's text then depends on the chunk's padded length only)."""
    out = []
    for at in range(0, len(rows), _CHUNK):
        chunk = list(rows[at:at + _CHUNK])
        chunk += [chunk[-1]] * ((1 << (len(chunk) - 1).bit_length()) - len(chunk))
        out.append(chunk)
    return out


def select_in(conn: Connection, sql: str, ids: Sequence[str]) -> list[Any]:
    """The rows of ``sql``, each ``IN ?*`` in it standing for the list ``ids`` (distinct; one
    placeholder each, no expanding-IN compilation per batch). Run a chunk of ids at a time
    (``_chunks``: a repeated id in an IN list matches nothing twice).

    On PostgreSQL never as a prepared statement: psycopg prepares a text run five times, and the
    server may then keep a generic plan, made while the table was small, that scans it comparing
    each row with every parameter (with the values in the plan, ``IN`` is a hash lookup or an
    index scan). A batch on a 10,000-device table spent 60 ms in this query instead of 3.
    """
    codec = codec_for(conn)
    found: list[Any] = []
    for chunk in _chunks(ids):
        text = sql.replace("IN ?*", "IN (" + ",".join([codec.placeholder] * len(chunk)) + ")")
        params = tuple(chunk) * sql.count("IN ?*")
        if codec.postgres:
            # The DBAPI connection's own cursor, in its transaction (locks included). Past
            # SQLAlchemy: no events, and a failure is psycopg's error (the writer retries any).
            with conn.connection.driver_connection.cursor() as cursor:
                cursor.execute(text, params, prepare=False)
                found += cursor.fetchall()
        else:
            found += conn.exec_driver_sql(text, params).all()
    return found


def _unnest(types: Sequence[str]) -> str:
    """PostgreSQL's row source for a whole batch: ``unnest`` of one array parameter per column
    (``types``: the columns' types, ``json`` sent as text and cast), columns named ``c0``, ``c1``..."""
    names = [f"c{i}" for i in range(len(types))]
    columns = ", ".join(f"CAST({n} AS JSON)" if t == "json" else n for n, t in zip(names, types, strict=True))
    # Binary (%b): the text format would quote and escape every element, JSON's quotes included.
    arrays = ", ".join(f"%b::{'text' if t == 'json' else t}[]" for t in types)
    return f"SELECT {columns} FROM unnest({arrays}) AS u({', '.join(names)})"


def _columns(rows: Sequence[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    """``rows`` transposed, a list per column: the array parameters of ``_unnest``."""
    return tuple(list(column) for column in zip(*rows, strict=True))


def _write_rows(conn: Connection, template: str, types: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Run ``template`` with ``{rows}`` standing for the rows: on SQLite ``VALUES (?, ...)`` once
    per row (an executemany), on PostgreSQL one statement over ``_unnest`` (one message for the
    batch instead of one protocol round and one executor start per row, and a fixed text)."""
    codec = codec_for(conn)
    if codec.postgres:
        conn.exec_driver_sql(template.replace("{rows}", _unnest(types)), _columns(rows))
    else:
        values = "VALUES (" + ",".join("?j" if t == "json" else "?" for t in types) + ")"
        conn.exec_driver_sql(_sql(codec, template.replace("{rows}", values)), list(rows))


_READING_TYPES = ("text", "bigint", "timestamptz", "text", "json", "timestamptz")
_READINGS = ("INSERT INTO readings (device_id, seq, ts, kind, metrics, received_at) {rows} "
             "ON CONFLICT (device_id, seq) DO NOTHING RETURNING device_id, seq")


def insert_new_readings(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> set[tuple[str, int]]:
    """Insert ``(device_id, seq, ts, kind, metrics_json, received_at)`` rows (encoded with
    ``codec_for``; ``(device_id, seq)`` distinct); returns the keys really inserted (a
    ``(device_id, seq)`` already stored is left). SQLite has no arrays and its executemany returns
    no rows: multi-row ``VALUES`` in ``_chunks`` there."""
    if not rows:
        return set()
    codec = codec_for(conn)
    if codec.postgres:
        found = conn.exec_driver_sql(_READINGS.replace("{rows}", _unnest(_READING_TYPES)), _columns(rows)).all()
        return {(d, s) for d, s in found}
    stored: set[tuple[str, int]] = set()
    # A padding copy of a row conflicts with the row itself: it inserts and returns nothing.
    for chunk in _chunks(rows):
        values = "VALUES " + ",".join([_sql(codec, "(?,?,?,?,?j,?)")] * len(chunk))
        flat = tuple(v for row in chunk for v in row)
        stored.update((d, s) for d, s in conn.exec_driver_sql(_READINGS.replace("{rows}", values), flat).all())
    return stored


# A late reading must not roll a device back: only a reading at least as new as the stored
# ``last_seen`` moves it (SET expressions see the row as it was before this statement).
_NEWER = "(devices.last_seen IS NULL OR excluded.last_seen >= devices.last_seen)"
_DEVICES = (
    "INSERT INTO devices (device_id, kind, model, firmware, status, first_seen, last_seen, last_seq) "
    "{rows} ON CONFLICT (device_id) DO UPDATE SET "
    "first_seen = CASE WHEN devices.first_seen IS NULL OR excluded.first_seen < devices.first_seen "
    "THEN excluded.first_seen ELSE devices.first_seen END, "
    + ", ".join(f"{c} = CASE WHEN {_NEWER} THEN excluded.{c} ELSE devices.{c} END"
                for c in ("last_seen", "last_seq", "model", "firmware")))


def upsert_devices(conn: Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Create or move ``(device_id, kind, model, firmware, status, first_seen, last_seen, last_seq)``
    (a device once: a PostgreSQL upsert cannot touch a row twice in one statement)."""
    rows = list(rows)
    if rows:
        _write_rows(conn, _DEVICES, ("text", "text", "text", "text", "text", "timestamptz", "timestamptz", "bigint"),
                    rows)


_HISTORY = ('INSERT INTO features_history (device_id, seq, ts, n_readings, "values") {rows} '
            'ON CONFLICT (device_id, seq) DO UPDATE SET "values" = excluded."values", '
            "n_readings = excluded.n_readings")


def upsert_history(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Write ``(device_id, seq, ts, n_readings, values_json)`` history rows (``(device_id, seq)``
    distinct); a recomputed one replaces."""
    if rows:
        _write_rows(conn, _HISTORY, ("text", "bigint", "timestamptz", "integer", "json"), rows)


def insert_online(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert ``(device_id, kind, ts, n_readings, values_json, updated_at, state)`` online rows.

    A plain insert: a second worker racing for a brand-new device fails its batch and retries it,
    by then seeing (and locking) this row instead of overwriting it.
    """
    if rows:
        _write_rows(conn, 'INSERT INTO features_online (device_id, kind, ts, n_readings, "values", updated_at, state) '
                          "{rows}", ("text", "text", "timestamptz", "integer", "json", "timestamptz", "bytea"), rows)


_ONLINE_TYPES = ("timestamptz", "integer", "json", "timestamptz", "bytea", "text")


def update_online(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Update ``(ts, n_readings, values_json, updated_at, state, device_id)`` of known devices
    (each once)."""
    if not rows:
        return
    codec = codec_for(conn)
    if codec.postgres:
        conn.exec_driver_sql('UPDATE features_online SET ts = u.c0, n_readings = u.c1, "values" = u.c2, '
                             "updated_at = u.c3, state = u.c4 FROM (" + _unnest(_ONLINE_TYPES) + ") AS u "
                             "WHERE features_online.device_id = u.c5", _columns(rows))
    else:
        conn.exec_driver_sql(_sql(codec, 'UPDATE features_online SET ts = ?, n_readings = ?, "values" = ?j, '
                                         "updated_at = ?, state = ? WHERE device_id = ?"), list(rows))
