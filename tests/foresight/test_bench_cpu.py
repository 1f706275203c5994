"""The ingest benchmark's CPU accounting: per process from ``/proc``, per message, PostgreSQL's own."""

from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import create_engine, text

from foresight.ingest_bench import _per_msg
from foresight.procstat import cpu_s
from tests.services import Postgres

_BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\ninput()"


def test_a_process_cpu_seconds_grow_as_it_works_and_a_gone_one_reads_zero() -> None:
    proc = subprocess.Popen([sys.executable, "-c", _BURN], stdin=subprocess.PIPE)
    try:
        used = 0.0
        for _ in range(500):  # until it has burnt its 0.3 s and waits on stdin
            used = cpu_s(proc.pid)
            if used >= 0.3:
                break
            time.sleep(0.02)
        assert 0.3 <= used < 5.0
    finally:
        proc.communicate(b"\n", timeout=10)
    assert cpu_s(proc.pid) == 0.0
    assert cpu_s() > 0.0  # this process


def test_per_message_figures_name_each_process_that_is_one_and_add_up() -> None:
    seconds = {"consumer": 0.4, "writer": 0.7, "broker": 0.1, "postgres": None}
    assert _per_msg(seconds, 10_000, writer="process") == {"consumer": 40.0, "writer": 70.0, "broker": 10.0,
                                                           "total": 120.0}
    # The writer thread's CPU is the consumer process's already; a PostgreSQL server is counted apart.
    assert _per_msg(seconds | {"postgres": 0.5}, 10_000, writer="thread") == {
        "consumer": 40.0, "broker": 10.0, "postgres": 50.0, "total": 100.0}
    assert _per_msg(seconds, 0, writer="process") is None


def test_a_cluster_counts_its_own_server_processes_cpu(postgres: Postgres) -> None:
    ticks = postgres.cpu_ticks()
    assert postgres.postmaster_pid() in ticks and len(ticks) >= 3  # the postmaster and its background processes
    engine = create_engine(postgres.url())
    try:
        with engine.connect() as conn:
            before = postgres.cpu_ticks()
            conn.execute(text("SELECT count(*) FROM generate_series(1, 3000000)")).scalar_one()
            busy = postgres.cpu_s_since(before)  # while its backend is still there to be counted
    finally:
        engine.dispose()
    assert 0.05 <= busy < 30  # seconds, not clock ticks
