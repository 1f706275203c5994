"""A device's recent readings as columns, and the online row's packed state.

The online row keeps a device's latest ``window`` readings and its baseline, so an in-order reading
refreshes its features without reading history back. Kept as JSON, that state was the write path's
largest cost (every batch parsed and re-serialised each touched device's window); as columns it is
numpy arrays packed into one ``bytes``: event times (integer microseconds since the epoch),
sequence numbers, a ``(n, m)`` float matrix of the profile's metrics (NaN where a reading lacks
one), and the per-metric baseline (NaN: none yet) with its "complete" flag.

The packed form names its metrics, so a profile that gains, drops or reorders metrics still reads
an older state correctly (an unknown metric is dropped, a new one is missing).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from ingest.contract import Telemetry
from ingest.features import Reading

__all__ = ["OnlineState", "Window", "from_us", "pack_many", "state_header", "to_us", "unpack_many"]

_MAGIC = b"FS1"
_HEADER = struct.Struct("<HIB")  # length of the metric names, number of readings, baseline complete
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(ts: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime."""
    return (ts - _EPOCH) // _US


def from_us(us: int) -> datetime:
    """The aware UTC datetime of ``to_us``'s integer."""
    return _EPOCH + timedelta(microseconds=int(us))


@dataclass(frozen=True, slots=True)
class Window:
    """Readings of one device in (ts, seq) order, as columns."""

    ts_us: np.ndarray   # (n,) int64
    seq: np.ndarray     # (n,) int64
    values: np.ndarray  # (n, m) float64, columns in ``metrics`` order

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    @staticmethod
    def empty(m: int) -> Window:
        return Window(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, m)))

    @staticmethod
    def of(readings: Sequence[Reading | Telemetry], metrics: Sequence[str]) -> Window:
        """Columns of ``readings`` (already in (ts, seq) order)."""
        n = len(readings)
        return Window(np.fromiter((to_us(r.ts) for r in readings), np.int64, n),
                      np.fromiter((r.seq for r in readings), np.int64, n),
                      np.array([[r.metrics.get(k, np.nan) for k in metrics] for r in readings],
                               float).reshape(n, len(metrics)))

    def key(self, i: int) -> tuple[int, int]:
        """The (ts, seq) order key of reading ``i`` (negative indexes count from the end)."""
        return int(self.ts_us[i]), int(self.seq[i])

    def tail(self, n: int) -> Window:
        """The last ``n`` readings (none when ``n`` <= 0)."""
        start = max(len(self) - n, 0) if n > 0 else len(self)
        return Window(self.ts_us[start:], self.seq[start:], self.values[start:])

    def rows(self, start: int, stop: int) -> Window:
        """Readings ``start:stop`` (views, not copies)."""
        return Window(self.ts_us[start:stop], self.seq[start:stop], self.values[start:stop])

    def head(self, n: int) -> Window:
        return Window(self.ts_us[:n], self.seq[:n], self.values[:n])

    def then(self, other: Window) -> Window:
        """This window followed by ``other``."""
        return Window(np.concatenate([self.ts_us, other.ts_us]), np.concatenate([self.seq, other.seq]),
                      np.concatenate([self.values, other.values]))



def _layout(n_names: int, n: int, m: int) -> np.dtype:
    """The packed state as one numpy record: header, metric names, baseline, then the window's
    event times, sequence numbers and ``(n, m)`` values (little-endian, no padding)."""
    return np.dtype([("magic", "S3"), ("n_names", "<u2"), ("n", "<u4"), ("complete", "u1"),
                     ("names", f"S{n_names}"), ("baseline", "<f8", (m,)), ("ts", "<i8", (n,)),
                     ("seq", "<i8", (n,)), ("values", "<f8", (n * m,))])


def pack_many(ts_us: np.ndarray, seq: np.ndarray, values: np.ndarray, baseline: np.ndarray,
              complete: np.ndarray, metrics: Sequence[str]) -> list[bytes]:
    """``OnlineState.pack`` of ``G`` states whose windows have the same length, at once: ``ts_us``
    and ``seq`` ``(G, n)``, ``values`` ``(G, n, m)``, ``baseline`` ``(G, m)``, ``complete`` ``(G,)``."""
    names = "\x1f".join(metrics).encode()
    g, n, m = values.shape
    layout = _layout(len(names), n, m)
    records = np.empty(g, layout)
    records["magic"], records["n_names"], records["n"], records["names"] = _MAGIC, len(names), n, names
    records["complete"] = complete
    records["baseline"], records["ts"], records["seq"] = baseline, ts_us, seq
    records["values"] = values.reshape(g, n * m)
    data, size = records.tobytes(), layout.itemsize
    return [data[at:at + size] for at in range(0, g * size, size)]


def unpack_many(states: Sequence[bytes], n_names: int, n: int, m: int) -> np.ndarray:
    """States packed with the same metric names (``n_names`` bytes of them, ``m`` metrics) and
    window length ``n``, as one record array (fields as in ``_layout``; ``values`` flat ``(n * m,)``)."""
    return np.frombuffer(b"".join(states), _layout(n_names, n, m), len(states))


def state_header(data: bytes) -> tuple[bytes, int, bool]:
    """A packed state's metric names (as stored), window length and baseline-complete flag."""
    if data[:3] != _MAGIC:
        raise ValueError("not a packed online feature state")
    n_names, n, complete = _HEADER.unpack_from(data, 3)
    at = 3 + _HEADER.size
    return data[at:at + n_names], n, bool(complete)


@dataclass(frozen=True, slots=True)
class OnlineState:
    """What the online row keeps between batches: the latest window and the baseline."""

    window: Window
    #: Per metric (``metrics`` order): the mean of the device's first readings; NaN: none yet.
    baseline: np.ndarray
    #: The baseline is made of the full ``baseline_readings`` first readings: fixed from now on.
    complete: bool

    def pack(self, metrics: Sequence[str]) -> bytes:
        """The bytes the online row stores."""
        w = self.window
        return pack_many(w.ts_us[None], w.seq[None], w.values[None], self.baseline[None],
                         np.array([self.complete]), metrics)[0]

    @staticmethod
    def unpack(data: bytes | None, metrics: Sequence[str]) -> OnlineState:
        """A packed state, its columns mapped onto ``metrics``; empty for None or an empty value."""
        m = len(metrics)
        if not data:
            return OnlineState(Window.empty(m), np.full(m, np.nan), False)
        names, n, complete = state_header(data)
        stored = names.decode().split("\x1f")
        k = len(stored)
        record = unpack_many([data], len(names), n, k)[0]
        # Read-only views of ``data`` (no copies; nothing writes into a window in place).
        baseline = record["baseline"].astype(float, copy=False)
        ts_us = record["ts"].astype(np.int64, copy=False)
        seq = record["seq"].astype(np.int64, copy=False)
        raw = record["values"].reshape(n, k).astype(float, copy=False)
        if stored != list(metrics):
            picks = [stored.index(name) if name in stored else None for name in metrics]
            baseline = np.array([baseline[j] if j is not None else np.nan for j in picks])
            raw = np.column_stack([raw[:, j] if j is not None else np.full(n, np.nan) for j in picks]) \
                if m else np.empty((n, 0))
            complete = complete and None not in picks
        return OnlineState(Window(ts_us, seq, raw), baseline, bool(complete))
