"""An ingest worker in its own process, for fault tests that SIGKILL it: ``python -m tests.ingest.ingest_worker
DATABASE_URL HOST PORT CLIENT_ID [WRITER]``. Prints ``ready`` and its writer process's id (or ``-``), then
runs until killed."""

from __future__ import annotations

import sys
import time

from ingest.clock import SystemClock
from ingest.db import create_schema, make_engine
from tests.ingest.writers import make_ingester


def main(database_url: str, host: str, port: str, client_id: str, writer: str = "thread") -> None:
    engine = make_engine(database_url)
    create_schema(engine)
    worker = make_ingester(writer, engine=engine, clock=SystemClock(), host=host, port=int(port),
                           client_id=client_id, batch_size=50, batch_wait_s=0.02)
    worker.start()
    print("ready", worker.writer_pid or "-", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(*sys.argv[1:6])
