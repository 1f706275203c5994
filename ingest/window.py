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

__all__ = ["OnlineState", "Window", "from_us", "to_us"]

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
        names = "\x1f".join(metrics).encode()
        w = self.window
        return b"".join((_MAGIC, _HEADER.pack(len(names), len(w), self.complete), names,
                         self.baseline.astype("<f8").tobytes(), w.ts_us.astype("<i8").tobytes(),
                         w.seq.astype("<i8").tobytes(), w.values.astype("<f8").tobytes()))

    @staticmethod
    def unpack(data: bytes | None, metrics: Sequence[str]) -> OnlineState:
        """A packed state, its columns mapped onto ``metrics``; empty for None or an empty value."""
        m = len(metrics)
        if not data:
            return OnlineState(Window.empty(m), np.full(m, np.nan), False)
        if data[:3] != _MAGIC:
            raise ValueError("not a packed online feature state")
        n_names, n, complete = _HEADER.unpack_from(data, 3)
        at = 3 + _HEADER.size
        stored = data[at:at + n_names].decode().split("\x1f")
        at += n_names
        k = len(stored)
        # Read-only views of ``data`` (no copies; nothing writes into a window in place).
        baseline = np.frombuffer(data, "<f8", k, at).astype(float, copy=False)
        at += 8 * k
        ts_us = np.frombuffer(data, "<i8", n, at).astype(np.int64, copy=False)
        seq = np.frombuffer(data, "<i8", n, at + 8 * n).astype(np.int64, copy=False)
        raw = np.frombuffer(data, "<f8", n * k, at + 16 * n).reshape(n, k).astype(float, copy=False)
        if stored != list(metrics):
            picks = [stored.index(name) if name in stored else None for name in metrics]
            baseline = np.array([baseline[j] if j is not None else np.nan for j in picks])
            raw = np.column_stack([raw[:, j] if j is not None else np.full(n, np.nan) for j in picks]) \
                if m else np.empty((n, 0))
            complete = complete and None not in picks
        return OnlineState(Window(ts_us, seq, raw), baseline, bool(complete))
