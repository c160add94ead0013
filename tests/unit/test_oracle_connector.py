"""The Oracle connector without a server: the SQL it compiles (Oracle dialect, named binds), identifier
quoting, the type mapping to PostgreSQL, the fetch plan and converters, and error translation with real
python-oracledb exception objects. What needs a live database is in tests/contract/test_oracle_contract.py."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import oracledb
import pytest
from oracledb import errors as ora_errors
from sqlalchemy.exc import DBAPIError

from connectors import open_connector
from connectors.base import ReadRequest, TableName
from connectors.oracle import (
    MAX_ARRAYSIZE,
    OracleConnector,
    _keep_fractional_seconds,
    _size_fetches,
    as_utc,
    classify,
    describe_probe,
    fetch_plan,
    interval_ym_text,
    output_type_handler,
    postgres_type,
    utc_select,
)
from utilities.errors import FatalError, TransientError
from utilities.secrets import Secret

URL = "oracle://scott:tiger-pw@db.example:1521/?service_name=ORCLPDB1"
WINDOW = (datetime(2024, 1, 1), datetime(2024, 2, 1))
REPO = Path(__file__).resolve().parents[2]


def _connector(url: str = URL, variables: dict[str, str] | None = None) -> OracleConnector:
    connector = open_connector("erp", Secret(url), Path("."), variables)
    assert isinstance(connector, OracleConnector)
    return connector


def _compiled(connector: OracleConnector, request: ReadRequest) -> Any:
    stmt, _ = connector.select_for(request)
    return stmt.compile(dialect=connector.dialect)


# -- URL and settings ---------------------------------------------------------------------------


def test_both_schemes_select_the_thin_oracledb_dialect() -> None:
    for url in (URL, URL.replace("oracle://", "oracle+oracledb://")):
        sa_url = _connector(url).sqlalchemy_url()
        assert sa_url.drivername == "oracle+oracledb"
        assert sa_url.query["service_name"] == "ORCLPDB1"


def test_password_setting_goes_into_the_url_object_never_into_its_text() -> None:
    connector = _connector("oracle://scott@db.example:1521/?service_name=ORCLPDB1", {"ETL_CONN_ERP_PASSWORD": "s3cr3t"})
    url = connector.sqlalchemy_url()
    assert url.password == "s3cr3t"
    assert "s3cr3t" not in str(url) and "s3cr3t" not in connector.safe_url
    assert connector.database_name == "ORCLPDB1"


def test_module_import_does_not_import_the_drivers() -> None:
    code = (
        "import sys, connectors.oracle, connectors.sqlserver; print('oracledb' in sys.modules, 'pyodbc' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_capabilities_say_source_only() -> None:
    caps = OracleConnector.capabilities
    assert (caps.read, caps.write, caps.merge) == (True, False, False)


# -- compiled SQL -------------------------------------------------------------------------------


def test_windowed_query_is_a_subquery_without_as_and_named_binds() -> None:
    request = ReadRequest(
        sql="SELECT id, updated_at FROM items WHERE region = :region -- EU only\n",
        params={"region": "EU", "not_in_query": 1},
        cursor="updated_at",
        filtered=True,
        window_start=WINDOW[0],
        window_end=WINDOW[1],
    )
    connector = _connector()
    stmt, params = connector.select_for(request)
    compiled = stmt.compile(dialect=connector.dialect)
    assert str(compiled) == (
        "SELECT * \nFROM (SELECT id, updated_at FROM items WHERE region = :region) src \n"
        "WHERE src.updated_at > :window_start AND src.updated_at <= :window_end"
    )
    assert params == {"region": "EU"}
    assert compiled.params == {"region": "EU", "window_start": WINDOW[0], "window_end": WINDOW[1]}


def test_open_ended_window_has_no_upper_bound() -> None:
    request = ReadRequest(sql="SELECT * FROM items", cursor="updated_at", filtered=True, window_start=WINDOW[0])
    assert str(_compiled(_connector(), request)) == (
        "SELECT * \nFROM (SELECT * FROM items) src \nWHERE src.updated_at > :window_start"
    )


@pytest.mark.parametrize(
    ("name", "schema", "cursor", "expected"),
    [
        ("items", None, "updated_at", "SELECT * \nFROM items \nWHERE items.updated_at > :window_start"),
        (
            "ORDER",
            "SALES",
            "UPDATED_AT",
            'SELECT * \nFROM "SALES"."ORDER" \nWHERE "SALES"."ORDER"."UPDATED_AT" > :window_start',
        ),
        ("USER", None, "Changed On", 'SELECT * \nFROM "USER" \nWHERE "USER"."Changed On" > :window_start'),
        (
            "OrderLines",
            "Sales",
            "UpdatedAt",
            'SELECT * \nFROM "Sales"."OrderLines" \nWHERE "Sales"."OrderLines"."UpdatedAt" > :window_start',
        ),
    ],
)
def test_table_sources_are_quoted_by_the_oracle_dialect(
    name: str, schema: str | None, cursor: str, expected: str
) -> None:
    request = ReadRequest(table=TableName(name, schema), cursor=cursor, filtered=True, window_start=WINDOW[0])
    assert str(_compiled(_connector(), request)) == expected


def test_reserved_words_are_quoted() -> None:
    preparer = _connector().dialect.identifier_preparer
    assert [preparer.quote(n) for n in ("order", "ORDER", "user", "USER", "select", "items")] == [
        '"order"',
        '"ORDER"',
        '"user"',
        '"USER"',
        '"select"',
        "items",
    ]


def test_describe_probe_selects_no_rows() -> None:
    stmt, _ = _connector().select_for(ReadRequest(sql="SELECT id FROM items"))
    assert str(describe_probe(stmt).compile(dialect=_connector().dialect)) == (
        "SELECT * \nFROM (SELECT id FROM items) probe \nWHERE 1 = 0"
    )


def test_zoned_columns_are_rewritten_to_utc_on_the_server_and_keep_the_plain_names() -> None:
    connector = _connector()
    request = ReadRequest(sql="SELECT * FROM t", cursor="changed", filtered=True, window_start=WINDOW[0])
    stmt, _ = connector.select_for(request)
    columns = [("ID", False), ("CHANGED", True), ("Mixed Case", True)]
    sql = str(utc_select(stmt, columns, connector.dialect.normalize_name).compile(dialect=connector.dialect))
    assert sql == (
        'SELECT "ID" AS id, from_tz(sys_extract_utc("CHANGED"), \'+00:00\') AS changed, '
        'from_tz(sys_extract_utc("Mixed Case"), \'+00:00\') AS "Mixed Case" \n'
        "FROM (SELECT * \nFROM (SELECT * FROM t) src \nWHERE src.changed > :window_start) src_utc"
    )


def test_describe_read_shows_the_sql_and_bound_values() -> None:
    request = ReadRequest(sql="SELECT * FROM items", cursor="updated_at", filtered=True, window_start=WINDOW[0])
    text = _connector().describe_read(request)
    assert text.endswith("-- bound: window_start=datetime.datetime(2024, 1, 1, 0, 0)")
    assert "FROM (SELECT * FROM items) src" in text


# -- types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("oracle", "postgres"),
    [
        ("NUMBER", "numeric"),
        ("NUMBER(12,2)", "numeric(12,2)"),
        ("NUMBER(4)", "smallint"),
        ("NUMBER(9,0)", "integer"),
        ("NUMBER(18)", "bigint"),
        ("NUMBER(38)", "numeric(38,0)"),
        ("NUMBER(*,0)", "numeric(38,0)"),
        ("NUMBER(5,-2)", "numeric"),
        ("INTEGER", "numeric(38,0)"),
        ("FLOAT(126)", "numeric"),
        ("BINARY_DOUBLE", "double precision"),
        ("BINARY_FLOAT", "real"),
        ("DATE", "timestamp(0)"),
        ("TIMESTAMP", "timestamp(6)"),
        ("TIMESTAMP(3)", "timestamp(3)"),
        ("TIMESTAMP(9) WITH TIME ZONE", "timestamptz(6)"),
        ("timestamp with local time zone", "timestamptz(6)"),
        ("INTERVAL DAY(2) TO SECOND(6)", "interval"),
        ("INTERVAL YEAR(2) TO MONTH", "interval"),
        ("VARCHAR2(100 CHAR)", "text"),
        ("NVARCHAR2(50)", "text"),
        ("CHAR(1)", "text"),
        ("CLOB", "text"),
        ("NCLOB", "text"),
        ("RAW(16)", "bytea"),
        ("LONG RAW", "bytea"),
        ("BLOB", "bytea"),
        ("JSON", "jsonb"),
        ("BOOLEAN", "boolean"),
    ],
)
def test_oracle_types_map_to_postgres(oracle: str, postgres: str) -> None:
    assert postgres_type(oracle) == postgres


def test_an_unmapped_type_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="SDO_GEOMETRY"):
        postgres_type("SDO_GEOMETRY")


@pytest.mark.parametrize(
    ("db_type", "precision", "scale", "expected"),
    [
        (oracledb.DB_TYPE_NUMBER, 12, 2, (Decimal, None)),  # NUMBER(12,2)
        (oracledb.DB_TYPE_NUMBER, 0, -127, (Decimal, None)),  # NUMBER: the driver's default would be float
        (oracledb.DB_TYPE_NUMBER, 126, -127, (Decimal, None)),  # FLOAT(126)
        (oracledb.DB_TYPE_NUMBER, 0, 0, (Decimal, None)),  # ambiguous (deep subqueries)
        (oracledb.DB_TYPE_NUMBER, 10, 0, (int, None)),  # NUMBER(10)
        (oracledb.DB_TYPE_TIMESTAMP_TZ, 0, 0, (oracledb.DB_TYPE_TIMESTAMP_TZ, as_utc)),
        (oracledb.DB_TYPE_CLOB, 0, 0, (oracledb.DB_TYPE_LONG, None)),
        (oracledb.DB_TYPE_NCLOB, 0, 0, (oracledb.DB_TYPE_LONG_NVARCHAR, None)),
        (oracledb.DB_TYPE_BLOB, 0, 0, (oracledb.DB_TYPE_LONG_RAW, None)),
        (oracledb.DB_TYPE_INTERVAL_YM, 0, 0, (oracledb.DB_TYPE_INTERVAL_YM, interval_ym_text)),
        (oracledb.DB_TYPE_DATE, 0, 0, None),  # naive datetime with its time part, as the driver gives it
        (oracledb.DB_TYPE_TIMESTAMP, 0, 0, None),
        (oracledb.DB_TYPE_RAW, 0, 0, None),  # bytes
        (oracledb.DB_TYPE_VARCHAR, 0, 0, None),
        (oracledb.DB_TYPE_BINARY_DOUBLE, 0, 0, None),  # float, as stored
    ],
)
def test_fetch_plan(db_type: Any, precision: int, scale: int, expected: Any) -> None:
    assert fetch_plan(db_type, precision, scale) == expected


def test_converters_on_sample_values() -> None:
    fetched = datetime(2024, 3, 31, 22, 30, 15, 123456)  # what thin mode returns for an offset-0 TSTZ value
    assert as_utc(fetched) == datetime(2024, 3, 31, 22, 30, 15, 123456, tzinfo=UTC)
    assert as_utc(fetched).utcoffset() == timedelta(0)
    assert interval_ym_text(oracledb.IntervalYM(years=1, months=2)) == "P1Y2M"
    assert interval_ym_text(oracledb.IntervalYM(years=-1, months=-6)) == "P-1Y-6M"


class _RecordingCursor:
    """Stands in for an oracledb cursor (a real one needs a server): records what the handler asks for."""

    arraysize = 500

    def __init__(self) -> None:
        self.calls: list[tuple[Any, dict[str, Any]]] = []

    def var(self, var_type: Any, **kwargs: Any) -> str:
        self.calls.append((var_type, kwargs))
        return "a variable"


def test_output_type_handler_applies_the_plan_and_otherwise_defers_to_sqlalchemy() -> None:
    deferred: list[tuple[Any, ...]] = []
    handler = output_type_handler(lambda *args: deferred.append(args) or "sqlalchemy's variable")
    cursor = _RecordingCursor()

    assert handler(cursor, "AMOUNT", oracledb.DB_TYPE_NUMBER, 22, 12, 2) == "a variable"
    assert handler(cursor, "DOC", oracledb.DB_TYPE_JSON, 0, 0, 0) == "sqlalchemy's variable"
    assert cursor.calls == [(Decimal, {"arraysize": 500, "outconverter": None})]
    assert deferred == [(cursor, "DOC", oracledb.DB_TYPE_JSON, 0, 0, 0)]
    assert output_type_handler(None)(cursor, "DOC", oracledb.DB_TYPE_JSON, 0, 0, 0) is None


def test_streaming_reads_fetch_a_bounded_number_of_rows_per_round_trip() -> None:
    cursor = SimpleNamespace(arraysize=100)
    _size_fetches(None, cursor, "SELECT 1 FROM dual", {}, SimpleNamespace(execution_options={"yield_per": 2000}), False)
    assert cursor.arraysize == 2000
    _size_fetches(
        None, cursor, "SELECT 1 FROM dual", {}, SimpleNamespace(execution_options={"yield_per": 10**6}), False
    )
    assert cursor.arraysize == MAX_ARRAYSIZE
    untouched = SimpleNamespace(arraysize=100)
    _size_fetches(None, untouched, "SELECT 1 FROM dual", {}, SimpleNamespace(execution_options={}), False)
    assert untouched.arraysize == 100


def test_window_bounds_with_fractional_seconds_are_bound_as_timestamp() -> None:
    from sqlalchemy import create_engine

    dialect = create_engine("oracle+oracledb://u:p@h:1521/?service_name=x").dialect  # does not connect
    request = ReadRequest(
        sql="SELECT * FROM t",
        cursor="changed",
        filtered=True,
        window_start=datetime(2024, 1, 1, 10, 0, 0, 500),
        window_end=datetime(2024, 1, 2),
    )
    stmt, _ = _connector().select_for(request)
    compiled = stmt.compile(dialect=dialect)
    binds = {compiled.bind_names[b]: b for b in compiled.bind_names}
    sizes = {b: oracledb.DATETIME for b in binds.values()}  # what SQLAlchemy asks for a datetime
    parameters = [{"window_start": request.window_start, "window_end": request.window_end}]

    _keep_fractional_seconds(sizes, None, str(compiled), parameters, SimpleNamespace(compiled=compiled))

    assert sizes[binds["window_start"]] is oracledb.DB_TYPE_TIMESTAMP  # DATE would drop the 500 µs
    assert sizes[binds["window_end"]] is oracledb.DATETIME  # whole seconds: DATE keeps DATE indexes usable


# -- errors --------------------------------------------------------------------------------------


def _ora(message: str, exc_class: type[Exception] = oracledb.DatabaseError, **kw: Any) -> Exception:
    """A real python-oracledb exception as the driver raises it (args[0] is its _Error)."""
    return exc_class(ora_errors._Error(message, **kw))


def _wrapped(orig: Exception) -> DBAPIError:
    return DBAPIError.instance("SELECT 1 FROM dual", {}, orig, oracledb.DatabaseError)


@pytest.mark.parametrize(
    ("message", "error", "hint"),
    [
        ("ORA-01017: invalid credential or not authorized; logon denied", FatalError, "check the user and password"),
        ("ORA-28000: The account is locked.", FatalError, "check the user and password"),
        ("ORA-12541: Cannot connect. No listener at host db port 1521.", TransientError, "reachable"),
        ("ORA-12514: Cannot connect to database. Service FREE is not registered", TransientError, "service_name"),
        ("ORA-12170: Cannot connect. TCP connect timeout of 20s", TransientError, "reachable"),
        ('ORA-00942: table or view "SCOTT"."NOPE" does not exist', FatalError, "check the table and column"),
        ("ORA-00060: deadlock detected while waiting for resource", TransientError, "retries"),
    ],
)
def test_oracle_errors_are_translated_with_a_hint(message: str, error: type[Exception], hint: str) -> None:
    connector = _connector()
    with pytest.raises(error) as caught:
        with connector.translate_errors("connect"):
            raise _wrapped(_ora(message + "\nHelp: https://docs.oracle.com/error-help/db/ora-00000/"))
    text = str(caught.value)
    assert text.startswith("Oracle connection 'erp' (oracle://scott:***@db.example:1521/?service_name=ORCLPDB1)")
    assert message in text and hint in text and "Help:" not in text
    assert "tiger-pw" not in text
    assert isinstance(caught.value.__cause__, DBAPIError)


def test_thin_mode_network_errors_are_transient() -> None:
    refused = _ora(
        "DPY-6005: cannot connect to database (CONNECTION_ID=abc).\n[Errno 111] Connection refused",
        oracledb.OperationalError,
    )
    verdict = classify(refused)
    assert verdict is not None and verdict.transient
    assert verdict.text == "DPY-6005: cannot connect to database (CONNECTION_ID=abc). - [Errno 111] Connection refused"
    closed = oracledb.DatabaseError(ora_errors._create_err(ora_errors.ERR_CONNECTION_CLOSED))
    assert classify(closed).transient  # type: ignore[union-attr]


def test_named_time_zones_get_a_fatal_hint_and_unknown_codes_fall_through() -> None:
    named = oracledb.NotSupportedError(ora_errors._create_err(ora_errors.ERR_NAMED_TIMEZONE_NOT_SUPPORTED))
    verdict = classify(named)
    assert verdict is not None and not verdict.transient and "SYS_EXTRACT_UTC" in verdict.hint
    assert classify(_ora("ORA-00933: SQL command not properly ended")) is None
    assert classify(_ora("ORA-03113: end-of-file on communication channel", isrecoverable=True)).transient  # type: ignore[union-attr]
    assert classify(_ora("ORA-99999: something new", isrecoverable=True)).transient  # type: ignore[union-attr]


def test_unrecognised_errors_keep_the_generic_translation() -> None:
    with pytest.raises(FatalError, match="query failed: ORA-00933: SQL command not properly ended"):
        with _connector().translate_errors("query"):
            raise _wrapped(_ora("ORA-00933: SQL command not properly ended"))
