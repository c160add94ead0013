"""COPY writes from a second thread, so the next buffer is read and formatted while PostgreSQL takes
the previous one (the raw ``psql | psql`` pipe gets the same overlap from its two processes).

At most ``depth`` buffers wait in the queue, so memory stays bounded by the buffer size. The writer
thread spends its time inside libpq and psycopg's wait loop, which release the GIL; the reading
thread spends it in pyarrow or in the source's libpq, which release it too.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_DONE = None


class _Writer:
    def __init__(self, write: Callable[[Any], Any], depth: int) -> None:
        self._write = write
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="copy-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (buffer := self._queue.get()) is not _DONE:
                self._write(buffer)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
            self._error = exc
            while self._queue.get() is not _DONE:  # keep taking, so put() never blocks for ever
                pass

    def put(self, buffer: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(buffer)

    def join(self) -> BaseException | None:
        """Let the queued buffers be written, stop the thread; the writer's error, if any."""
        self._queue.put(_DONE)
        self._thread.join()
        return self._error


@contextmanager
def queued_writes(write: Callable[[Any], Any], depth: int = 2) -> Iterator[Callable[[Any], None]]:
    """A function that queues a buffer for ``write`` (e.g. ``copy.write``) in a second thread.

    On leaving the block every queued buffer has been written, or the writer's error is raised; an
    error in the block itself stops the writer first and then propagates (the COPY is abandoned).
    """
    writer = _Writer(write, depth)
    try:
        yield writer.put
    except BaseException:
        writer.join()
        raise
    error = writer.join()
    if error is not None:
        raise error


_END = object()


def read_ahead(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """``items``, produced by a second thread up to ``depth`` items ahead of the consumer.

    For a source that releases the GIL while it fetches (connectorx reading MySQL, in Rust): the next
    batches are read while this thread encodes and writes the previous ones, so the source's server
    and the target's work at the same time. An error of the producer is raised here, at the item where
    it happened; when the consumer stops early (an error downstream, an interrupt), the producer stops
    after the item it is fetching, and ``items`` is closed in the producer's thread.
    """
    waiting: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        waiting.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            outcome: Any = _END
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            outcome = exc
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        while not stop.is_set():
            try:
                waiting.put(outcome, timeout=0.1)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = waiting.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
