"""Ingesters over both writers: the writer thread (a store in this process) and the writer process
(a child building its own store from a ``StoreSpec``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from ingest.clock import Clock
from ingest.store import IngestStore
from ingest.subscriber import Ingester
from ingest.writer_process import StoreSpec

#: Parameters of a test that runs over each writer.
WRITERS = ["thread", "process"]


def database_url(engine: Engine) -> str:
    """The engine's URL with its password (``str(engine.url)`` masks it)."""
    return engine.url.render_as_string(hide_password=False)


def make_ingester(writer: str, *, engine: Engine, clock: Clock, host: str, port: int, **options: Any) -> Ingester:
    """An ``Ingester`` storing into ``engine``'s database through the ``writer`` named."""
    if writer == "process":
        return Ingester(writer="process", store_spec=StoreSpec(database_url=database_url(engine)), clock=clock,
                        host=host, port=port, **options)
    return Ingester(writer="thread", store=IngestStore(engine, clock=clock), clock=clock, host=host, port=port,
                    **options)


def refuse_reading(engine: Engine, *, device_id: str, seq: int) -> None:
    """Make the database itself refuse one reading (a trigger that raises), as a constraint would.

    The message is "reading refused by the database"; ``device_id`` and ``seq`` are test values.
    """
    if engine.dialect.name == "sqlite":
        statements = [f"CREATE TRIGGER refuse_reading BEFORE INSERT ON readings "
                      f"WHEN NEW.device_id = '{device_id}' AND NEW.seq = {seq:d} "
                      "BEGIN SELECT RAISE(ABORT, 'reading refused by the database'); END"]
    else:
        statements = ["CREATE FUNCTION refuse_reading() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                      f"IF NEW.device_id = '{device_id}' AND NEW.seq = {seq:d} THEN "
                      "RAISE EXCEPTION 'reading refused by the database'; END IF; RETURN NEW; END $$",
                      "CREATE TRIGGER refuse_reading BEFORE INSERT ON readings FOR EACH ROW "
                      "EXECUTE FUNCTION refuse_reading()"]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
