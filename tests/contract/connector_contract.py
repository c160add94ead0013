"""The contract every connector passes. A connector's test module subclasses ``ConnectorContract``
and overrides the ``contract`` fixture to return a ``ContractSource`` holding the standard rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.base import Capabilities, Connector, ReadRequest
from utilities.errors import FatalError

COLUMNS = ["id", "name", "amount", "updated_at"]
ROWS = [
    (1, "alpha", Decimal("10.50"), datetime(2024, 1, 1, 10, 0, 0)),
    (2, "beta", Decimal("20.00"), datetime(2024, 1, 2, 10, 0, 0)),
    (3, None, Decimal("0.00"), datetime(2024, 1, 3, 10, 0, 0)),
    (4, "delta", Decimal("-5.25"), datetime(2024, 1, 4, 10, 0, 0)),
    (5, "épsilon ✓", Decimal("99999.99"), datetime(2024, 1, 5, 10, 0, 0)),
]
WINDOW = (datetime(2024, 1, 2, 10, 0, 0), datetime(2024, 1, 4, 10, 0, 0))  # start exclusive, end inclusive


def standard(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """Driver values -> the types of ROWS (ints, str, Decimal with 2 places, naive datetime)."""
    ident, name, amount, updated = row
    if isinstance(updated, str):
        updated = datetime.fromisoformat(updated)
    if isinstance(updated, datetime) and updated.tzinfo is not None:
        updated = updated.replace(tzinfo=None)
    return int(ident), name, Decimal(str(amount)).quantize(Decimal("0.01")), updated


@dataclass
class ContractSource:
    """What a connector's test provides to the contract.

    ``request(window, chunk_size)`` builds the ReadRequest for the standard dataset (``window`` is
    None or a (start, end) pair on ``updated_at``); ``missing`` reads a source that does not exist.
    """

    connector: Connector
    request: Callable[[tuple[datetime, datetime] | None, int], ReadRequest]
    missing: ReadRequest
    normalize: Callable[[tuple[Any, ...]], tuple[Any, ...]] = standard


class ConnectorContract:
    """Subclass, and override ``contract`` as a fixture returning a ContractSource."""

    @pytest.fixture
    def contract(self) -> ContractSource:
        raise NotImplementedError("override the contract fixture")

    def _read(self, contract: ContractSource, window: Any = None, chunk_size: int = 1000) -> tuple[list[str], list]:
        with contract.connector.read(contract.request(window, chunk_size)) as stream:
            columns = [c.lower() for c in stream.columns]
            chunks = list(stream)
        return columns, chunks

    def test_capabilities_are_declared_as_data(self, contract: ContractSource) -> None:
        assert isinstance(type(contract.connector).capabilities, Capabilities)
        assert contract.connector.capabilities.read
        assert contract.connector.kind != "connector"

    def test_reads_every_row_with_its_values(self, contract: ContractSource) -> None:
        columns, chunks = self._read(contract)
        assert columns[: len(COLUMNS)] == COLUMNS
        rows = sorted(contract.normalize(tuple(row[: len(COLUMNS)])) for chunk in chunks for row in chunk)
        assert rows == ROWS

    def test_reads_in_bounded_chunks(self, contract: ContractSource) -> None:
        _, chunks = self._read(contract, chunk_size=2)
        assert [len(c) for c in chunks if c] == [2, 2, 1]

    def test_window_excludes_start_and_includes_end(self, contract: ContractSource) -> None:
        _, chunks = self._read(contract, window=WINDOW)
        ids = sorted(contract.normalize(tuple(row[: len(COLUMNS)]))[0] for chunk in chunks for row in chunk)
        assert ids == [3, 4]

    def test_check_reports_a_version(self, contract: ContractSource) -> None:
        version = contract.connector.check()
        assert isinstance(version, str) and any(ch.isdigit() for ch in version)

    def test_describe_read_says_what_it_would_run(self, contract: ContractSource) -> None:
        text = contract.connector.describe_read(contract.request(WINDOW, 10))
        assert isinstance(text, str) and text.strip()

    def test_a_missing_source_is_a_fatal_error(self, contract: ContractSource) -> None:
        with pytest.raises(FatalError) as caught:
            with contract.connector.read(contract.missing) as stream:
                list(stream)
        assert contract.connector.name in str(caught.value)

    def test_close_can_be_called_twice(self, contract: ContractSource) -> None:
        contract.connector.check()
        contract.connector.close()
        contract.connector.close()
