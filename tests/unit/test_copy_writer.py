"""queued_writes: buffers reach the writer in order from a second thread, at most ``depth`` wait,
and an error on either side comes out in the caller's thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from connectors.copy_writer import queued_writes, read_ahead


def test_every_buffer_is_written_in_order_by_another_thread() -> None:
    written: list[bytes] = []
    threads: set[str] = set()

    def write(buffer: bytes) -> None:
        threads.add(threading.current_thread().name)
        written.append(bytes(buffer))

    with queued_writes(write) as put:
        for i in range(100):
            put(b"%d;" % i)

    assert written == [b"%d;" % i for i in range(100)]
    assert threads == {"copy-writer"}


def test_at_most_depth_buffers_wait_while_the_writer_is_busy() -> None:
    release = threading.Event()
    started = threading.Event()

    def slow_write(_buffer: bytes) -> None:
        started.set()
        release.wait(5)

    put_times: list[float] = []
    with queued_writes(slow_write, depth=2) as put:
        put(b"taken by the writer")
        started.wait(5)
        t0 = time.perf_counter()
        put(b"queued 1")
        put(b"queued 2")
        put_times.append(time.perf_counter() - t0)  # both fit in the queue: no wait
        threading.Timer(0.3, release.set).start()
        t1 = time.perf_counter()
        put(b"must wait for room")
        put_times.append(time.perf_counter() - t1)

    assert put_times[0] < 0.2
    assert put_times[1] >= 0.25


def test_a_writer_error_is_raised_in_the_callers_thread() -> None:
    def failing(buffer: bytes) -> None:
        if buffer == b"bad":
            raise OSError("server closed the connection")

    with pytest.raises(OSError, match="server closed"):
        with queued_writes(failing) as put:
            put(b"ok")
            put(b"bad")
            for _ in range(1000):  # later puts raise it, or leaving the block does
                put(b"more")


def test_an_error_in_the_block_stops_the_writer_and_propagates() -> None:
    written: list[bytes] = []
    with pytest.raises(RuntimeError, match="source failed"):
        with queued_writes(written.append) as put:
            put(b"first")
            raise RuntimeError("source failed")
    assert written == [b"first"]
    assert not [t for t in threading.enumerate() if t.name == "copy-writer"]


def test_read_ahead_yields_every_item_in_order() -> None:
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))


def test_read_ahead_raises_the_producers_error_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("source broke at item 3")

    got: list[int] = []
    with pytest.raises(ValueError, match="item 3"):
        for item in read_ahead(items(), depth=2):
            got.append(item)
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_and_closes_the_producer() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    reader = read_ahead(items(), depth=2)
    assert [next(reader) for _ in range(5)] == [0, 1, 2, 3, 4]
    reader.close()  # the consumer leaves (an error downstream)
    assert closed.wait(5), "the producer was not closed"
    assert len(produced) < 100  # it stopped a few items ahead, not at the end
