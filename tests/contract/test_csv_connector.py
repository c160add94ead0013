"""The CSV folder connector passes the connector contract and keeps NULL apart from ''."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from connectors import open_connector
from connectors.base import ReadRequest
from tests.contract.connector_contract import COLUMNS, ROWS, ConnectorContract, ContractSource
from utilities.secrets import Secret


def _write(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "items_1.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for ident, name, amount, updated in ROWS[:3]:
            writer.writerow([ident, name, amount, updated.isoformat(" ")])
    with open(folder / "items_2.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for ident, name, amount, updated in ROWS[3:]:
            writer.writerow([ident, name, amount, updated.isoformat(" ")])


class TestCsvContract(ConnectorContract):
    @pytest.fixture
    def contract(self, tmp_path: Path) -> ContractSource:
        _write(tmp_path / "incoming")
        connector = open_connector("files", Secret("csv:///incoming"), tmp_path)

        def request(window, chunk_size):
            return ReadRequest(
                cursor="updated_at",
                filtered=window is not None,
                window_start=window[0] if window else None,
                window_end=window[1] if window else None,
                chunk_size=chunk_size,
                options={"file": "items_*.csv"},
            )

        return ContractSource(connector, request, missing=ReadRequest(options={"file": "nothing_*.csv"}))


def test_unquoted_empty_is_null_and_quoted_empty_is_empty_string(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text('id,note\n1,\n2,""\n3,"a,""b""\nc"\n', encoding="utf-8")
    connector = open_connector("files", Secret(f"csv:///{tmp_path}"), tmp_path)
    with connector.read(ReadRequest(options={"file": "t.csv"})) as stream:
        rows = [row for chunk in stream for row in chunk]
    assert rows == [("1", None), ("2", ""), ("3", 'a,"b"\nc')]
