"""Ingest benchmark (not a test): raw paho vs naive ORM vs Foresight's ingest path on SQLite.

The implementation lives in ``foresight/ingest_bench.py`` so the installed ``foresight`` command can
run it; this script is the same command for a checkout:

    .venv/bin/python benchmarks/ingest_throughput.py --json var/bench-ingest.json [--devices 10000 --messages N --seconds S]
    .venv/bin/foresight bench ingest --json var/bench-ingest.json
"""

from __future__ import annotations

import sys

from foresight.cli import app

if __name__ == "__main__":  # the guard matters: the benchmark spawns processes that re-import this file
    # Through the main app: ``bench_app`` alone has one command, so typer would take "ingest" as an argument.
    app(["bench", "ingest", *sys.argv[1:]])
