"""Ingest benchmark (not a test): raw paho vs naive ORM vs Foresight's ingest path on SQLite.

The implementation lives in ``foresight/ingest_bench.py`` so the installed ``foresight`` command can
run it; this script is the same command for a checkout:

    .venv/bin/python benchmarks/ingest_throughput.py --json var/bench-ingest.json [--devices 10000 --messages N --seconds S]
    .venv/bin/foresight bench ingest --json var/bench-ingest.json
"""

from __future__ import annotations

from foresight.bench_cli import bench_app

if __name__ == "__main__":  # the guard matters: the benchmark spawns processes that re-import this file
    bench_app(["ingest", *__import__("sys").argv[1:]])
