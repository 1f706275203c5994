"""An ingest worker in its own process, for fault tests that SIGKILL it: ``python -m tests.ingest.ingest_worker
DATABASE_URL HOST PORT CLIENT_ID``. Runs until killed."""

from __future__ import annotations

import sys
import time

from ingest.clock import SystemClock
from ingest.db import create_schema, make_engine
from ingest.store import IngestStore
from ingest.subscriber import Ingester


def main(database_url: str, host: str, port: str, client_id: str) -> None:
    engine = make_engine(database_url)
    create_schema(engine)
    clock = SystemClock()
    worker = Ingester(store=IngestStore(engine, clock=clock), clock=clock, host=host, port=int(port),
                      client_id=client_id, batch_size=50, batch_wait_s=0.02)
    worker.start()
    print("ready", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
