"""``COPY ... TO STDOUT`` read straight off libpq, in batches of rows.

libpq hands over one row per ``PQgetCopyData``. Read through psycopg's ``Copy`` object, each row runs
its wait generator, about 0.8 us of this process's CPU per row, on two cores CPU that the servers'
COPY needs. Here rows libpq has already received are taken without a wait (``get_copy_data`` in
non-blocking mode, about 0.3 us per row) and gathered into batches; the process waits on the socket
only when nothing is buffered. Only psycopg's public low-level interface is used (``PGconn``, result
status, :func:`psycopg.errors.error_from_result`), and errors are psycopg's own, with their SQLSTATE,
so the connector classifies them as it does any other.
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from typing import Any

WAIT_SECONDS = 1.0  # a wait on the socket wakes up this often (signals are handled between waits)


class CopyOut:
    """One ``COPY (query) TO STDOUT`` on ``connection`` (a psycopg connection, idle or in a transaction).

    Iterate :meth:`batches` for (bytes, rows) of about ``batch_bytes``; :attr:`rows` is the server's
    own count once the COPY has ended. Leaving early (an error downstream) cancels the COPY and
    drains it, so the connection is usable, and closable, afterwards.
    """

    def __init__(self, connection: Any, query: str, batch_bytes: int) -> None:
        self._connection = connection
        self._pgconn = connection.pgconn
        self._encoding = connection.info.encoding
        self._query = query.encode(self._encoding)
        self._batch_bytes = batch_bytes
        self.rows: int | None = None
        self._open = False

    def batches(self) -> Iterator[tuple[bytearray, int]]:
        from psycopg import pq

        pgconn = self._pgconn
        pgconn.send_query(self._query)
        self._open = True
        try:
            self._start(pq.ExecStatus.COPY_OUT)
            get = pgconn.get_copy_data
            limit = self._batch_bytes
            buffer = bytearray()
            rows = 0
            while True:
                nbytes, data = get(1)  # raises psycopg.OperationalError on a broken COPY
                if nbytes > 0:
                    buffer += data
                    rows += 1
                    if len(buffer) >= limit:
                        yield buffer, rows
                        buffer, rows = bytearray(), 0
                elif nbytes == 0:
                    self._wait()
                    pgconn.consume_input()
                else:
                    break
            self._finish(pq.ExecStatus.COMMAND_OK)
            if rows:
                yield buffer, rows
        finally:
            if self._open:
                self._abandon()

    def _start(self, expected: Any) -> None:
        """The first result of the COPY: COPY_OUT, else psycopg's error for it (the query failed)."""
        result = self._result()
        if result is None or result.status != expected:
            self._drain_results()
            self._open = False
            raise self._error(result)

    def _finish(self, expected: Any) -> None:
        result = self._result()
        last = result
        while last is not None:  # the results after the COPY's own (there are none for one statement)
            last = self._result()
        self._open = False
        if result is None or result.status != expected:
            raise self._error(result)
        tuples = result.command_tuples
        self.rows = int(tuples) if tuples is not None else None

    def _result(self) -> Any:
        pgconn = self._pgconn
        while pgconn.is_busy():
            self._wait()
            pgconn.consume_input()
        return pgconn.get_result()

    def _drain_results(self) -> None:
        while self._result() is not None:
            pass

    def _wait(self) -> None:
        fd = self._pgconn.socket
        while not select.select([fd], [], [], WAIT_SECONDS)[0]:
            pass

    def _error(self, result: Any) -> Exception:
        from psycopg import errors

        if result is None:
            return errors.OperationalError("COPY TO STDOUT ended without a result")
        return errors.error_from_result(result, encoding=self._encoding)

    def _abandon(self) -> None:
        """Stop a COPY still running (the consumer failed): cancel it and read what is left, so the
        connection is idle again. Errors here (the cancel itself, a dead connection) are not raised:
        the consumer's error is the one that counts."""
        self._open = False
        try:
            self._connection.cancel_safe(timeout=5.0)
            pgconn = self._pgconn
            while True:
                nbytes, _ = pgconn.get_copy_data(1)
                if nbytes == 0:
                    self._wait()
                    pgconn.consume_input()
                elif nbytes < 0:
                    break
            self._drain_results()
        except Exception:  # noqa: BLE001 - best effort; the connection is closed by its owner next
            pass
