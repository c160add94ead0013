"""CSV files in a folder, read as a source with pyarrow's streaming CSV reader.

``csv:///data/incoming`` (relative to the ETL home) or ``csv:////abs/folder``. A table's source
names the files with ``file: orders_*.csv`` (a glob inside the folder). Every value is read as
text, exactly as written, and the target's types parse it; an unquoted empty field is NULL and a
quoted empty field ("") is the empty string, as in PostgreSQL's CSV format.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from connectors.base import Capabilities, Chunk, Connector, ReadRequest, RowStream
from utilities.dates import as_datetime
from utilities.errors import ConfigError, FatalError

if TYPE_CHECKING:
    from connectors.columns import SourceColumn

SOURCE_KEYS = {"file", "delimiter", "encoding"}
BLOCK_BYTES = 4 << 20


class CsvConnector(Connector):
    """A folder of CSV files (header line first, UTF-8 unless ``encoding`` says otherwise)."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=False, sql=False)
    kind: ClassVar[str] = "CSV folder"

    @property
    def folder(self) -> Path:
        raw = self.url.reveal().partition("://")[2]
        if raw.startswith("/") and not raw.startswith("//"):
            raw = raw[1:]  # csv:///relative -> relative to the home, like sqlite:///
        elif raw.startswith("//"):
            raw = raw[1:]  # csv:////abs -> /abs
        path = Path(raw)
        return path if path.is_absolute() else self.home / path

    @classmethod
    def validate_source(cls, options: Mapping[str, Any], where: str) -> None:
        unknown = set(options) - SOURCE_KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(sorted(unknown))} (a CSV source takes: file, delimiter, encoding)"
            )
        if not isinstance(options.get("file"), str) or not options["file"].strip():
            raise ConfigError(f"{where}.file: expected a file name or glob such as orders_*.csv")
        delimiter = options.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise ConfigError(f"{where}.delimiter: expected one character, got {delimiter!r}")

    def files(self, pattern: str) -> list[Path]:
        if not self.folder.is_dir():
            raise FatalError(f"CSV connection {self.name!r}: folder {self.folder} does not exist")
        return sorted(p for p in self.folder.glob(pattern) if p.is_file())

    def describe_read(self, request: ReadRequest) -> str:
        pattern = request.options.get("file", "*.csv")
        where = f" where {request.window_start} < {request.cursor} <= {request.window_end}" if request.filtered else ""
        return f"read {self.folder / pattern} as text{where}"

    def describe_columns(self, request: ReadRequest) -> tuple[SourceColumn, ...]:
        """The first file's header, every column as text (a CSV has no types: cast them in the table's
        ``columns:`` to create typed columns)."""
        import sqlalchemy.types as sat

        from connectors.columns import SourceColumn

        files, delimiter, encoding = self._matching(request)
        return tuple(SourceColumn(name, sat.Text()) for name in _header(files[0], delimiter, encoding))

    def _matching(self, request: ReadRequest) -> tuple[list[Path], str, str]:
        """The files the table's ``file:`` names (at least one), its delimiter and its encoding."""
        pattern = str(request.options.get("file", ""))
        files = self.files(pattern)
        if not files:
            raise FatalError(f"CSV connection {self.name!r}: no file matches {pattern!r} in {self.folder}")
        return files, str(request.options.get("delimiter", ",")), str(request.options.get("encoding", "utf-8"))

    def read(self, request: ReadRequest) -> RowStream:
        files, delimiter, encoding = self._matching(request)
        columns = _header(files[0], delimiter, encoding)
        for other in files[1:]:
            if _header(other, delimiter, encoding) != columns:
                raise FatalError(f"CSV connection {self.name!r}: {other.name} has other columns than {files[0].name}")
        keep = _window_filter(columns, request)
        return RowStream(columns, _chunks(files, columns, delimiter, encoding, request.chunk_size, keep))

    def check(self) -> str:
        import pyarrow

        if not self.folder.is_dir():
            raise FatalError(f"CSV connection {self.name!r}: folder {self.folder} does not exist")
        count = sum(1 for p in self.folder.iterdir() if p.suffix.lower() == ".csv")
        return f"CSV folder with {count} .csv file(s) (pyarrow {pyarrow.__version__})"


def _header(path: Path, delimiter: str, encoding: str) -> list[str]:
    with open(path, newline="", encoding=encoding) as handle:
        header = next(csv.reader(handle, delimiter=delimiter), None)
    if not header:
        raise FatalError(f"CSV file {path} is empty (a header line is required)")
    header[0] = header[0].removeprefix("\ufeff")  # a UTF-8 byte order mark, as pyarrow drops it
    return header


def _window_filter(columns: list[str], request: ReadRequest) -> Any:
    if not (request.filtered and request.cursor):
        return None
    lowered = [c.lower() for c in columns]
    if request.cursor.lower() not in lowered:
        raise FatalError(f"CSV source: cursor column {request.cursor!r} is not in the header {columns}")
    index = lowered.index(request.cursor.lower())
    start, end = request.window_start, request.window_end

    def keep(row: tuple[Any, ...]) -> bool:
        value = row[index]
        if value is None:
            return False
        value = as_datetime(value)
        return value > start and (end is None or value <= end)

    return keep


def _chunks(
    files: list[Path], columns: list[str], delimiter: str, encoding: str, size: int, keep: Any
) -> Iterator[Chunk]:
    import pyarrow as pa

    pending: Chunk = []
    for path in files:
        try:
            for rows in csv_rows(path, columns, delimiter, encoding):
                if keep is not None:
                    rows = [row for row in rows if keep(row)]
                pending.extend(rows)
                while len(pending) >= size:
                    yield pending[:size]
                    pending = pending[size:]
        except (pa.ArrowInvalid, OSError) as exc:
            raise FatalError(f"CSV file {path}: {exc}") from exc
    if pending:
        yield pending


def csv_rows(source: Any, columns: list[str], delimiter: str, encoding: str) -> Iterator[Chunk]:
    """The rows of one CSV file or binary stream (header line first), one list per pyarrow block.

    Shared by every connector that reads CSV (folders, S3), so they read it the same way: every
    value as text, exactly as written; an unquoted empty field is NULL, a quoted "" the empty string.
    ``columns`` is the header; pyarrow.ArrowInvalid or OSError tell a malformed file.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in columns},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        null_values=[""],
    )
    read = pacsv.ReadOptions(block_size=BLOCK_BYTES, encoding=encoding)
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    reader = pacsv.open_csv(source, read_options=read, parse_options=parse, convert_options=convert)
    for batch in reader:
        yield list(zip(*(column.to_pylist() for column in batch.columns), strict=True))
