"""Getting a batch stored whatever the database does: retry, isolate, dead-letter.

The one policy for a failing write, shared by the writer thread (``ingest.subscriber``) and the
writer process (``ingest.writer_process``): while the database fails, the same batch is retried with
backoff and nothing is acknowledged, so the broker keeps the messages (backpressure, no loss). After
a few failures, if the database answers a ping, one message may be the cause (a value the database
refuses on its own): the batch is then written one message at a time and a message that still fails
is stored in ``dead_letters`` as ``store_error``, so it cannot block the fleet.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from ingest.contract import Reason
from ingest.store import BatchResult, Inbound

__all__ = ["BatchStore", "ISOLATE_AFTER", "merge_results", "write_with_retry"]

log = logging.getLogger(__name__)

#: Failed attempts at a whole batch before, if the database answers, its messages are tried one by one.
ISOLATE_AFTER = 3
#: Longest wait between two attempts while the database is down.
MAX_DELAY_S = 5.0


class BatchStore(Protocol):
    """What the writers need of ``ingest.store.IngestStore``."""

    def write_batch(self, batch: Sequence[Inbound], *, now: datetime) -> BatchResult: ...

    def ping(self) -> None: ...

    def dead_letter(self, msg: Inbound, *, reason: Reason, detail: str) -> None: ...


def write_with_retry(store: BatchStore, batch: Sequence[Inbound], *, now: datetime, stop: threading.Event,
                     on_error: Callable[[], None] | None = None) -> BatchResult | None:
    """Store ``batch`` (event time ``now``), retrying until it is stored; None once ``stop`` is set.

    ``on_error`` is called after every failed attempt (the ingester counts them as write errors).
    """
    delay = 0.1
    failures = 0
    while True:
        try:
            return store.write_batch(batch, now=now)
        except Exception:
            failures += 1
            if on_error is not None:
                on_error()
            log.exception("writing a batch of %d failed; retrying in %.1fs (nothing acked)", len(batch), delay)
        if failures >= ISOLATE_AFTER and _database_answers(store):
            try:
                return _write_one_by_one(store, batch, now=now)
            except Exception:
                # The database went away again. Written one by one, the messages already stored are
                # deduplicated on (device_id, seq) when the whole batch comes round again (a payload
                # refused at decoding may then be dead-lettered twice).
                log.exception("writing a batch of %d one message at a time failed; retrying it whole", len(batch))
        if stop.wait(delay):
            return None
        delay = min(delay * 2, MAX_DELAY_S)


def merge_results(results: Sequence[BatchResult]) -> BatchResult:
    """One ``BatchResult`` for what several writes did together."""
    reasons: dict[str, int] = {}
    for r in results:
        for reason, n in r.rejected_by_reason:
            reasons[reason] = reasons.get(reason, 0) + n
    return BatchResult(
        accepted=sum(r.accepted for r in results), duplicates=sum(r.duplicates for r in results),
        rejected=sum(r.rejected for r in results), events=sum(r.events for r in results),
        status_updates=sum(r.status_updates for r in results),
        touched_devices=tuple(sorted({d for r in results for d in r.touched_devices})),
        rejected_by_reason=tuple(sorted(reasons.items())), commit_s=sum(r.commit_s for r in results),
        lags_s=tuple(lag for r in results for lag in r.lags_s))


def _database_answers(store: BatchStore) -> bool:
    try:
        store.ping()
    except Exception:
        return False
    return True


_REFUSED = BatchResult(accepted=0, duplicates=0, rejected=1, events=0, status_updates=0, touched_devices=(),
                       rejected_by_reason=((str(Reason.STORE_ERROR), 1),))


def _write_one_by_one(store: BatchStore, batch: Sequence[Inbound], *, now: datetime) -> BatchResult:
    """Each message in its own transaction; one that fails on its own is dead-lettered.

    Raises if even the dead letter cannot be stored (the database went away again): the caller
    then retries the whole batch.
    """
    results = []
    for msg in batch:
        try:
            results.append(store.write_batch([msg], now=now))
        except Exception as exc:
            log.exception("message on %s cannot be stored; dead-lettering it", msg.topic)
            store.dead_letter(msg, reason=Reason.STORE_ERROR, detail=f"{type(exc).__name__}: {exc}")
            results.append(_REFUSED)
    return merge_results(results)
