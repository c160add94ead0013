"""Transforms in flight: the shape they give (transformed_columns), what they do to values, the PII key
at build time, and the operations a dedupe adds."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy.types as sat

from connectors.base import Capabilities, RowStream, TableName
from connectors.columns import SourceColumn, type_text
from connectors.target import STAGE, TARGET, CheckKeys, DedupeStage, InsertFromStage, MergeFromStage, WriteRows
from script_factory import transforms
from script_factory.config import Strategy, parse_project
from script_factory.load_strategies import LoadPlan, operations
from script_factory.pii import decrypt, mask
from script_factory.transform_spec import ColumnRule, LookupRule, TransformSpec
from script_factory.transforms import Batch, Pipeline, transform_stream, transformed_columns
from script_factory.window import Window
from utilities.errors import ConfigError, FatalError
from utilities.secrets import Masker, Secret

KEY = "k" * 40
SOURCE = (
    SourceColumn("id", sat.BigInteger(), False),
    SourceColumn("name", sat.String(50)),
    SourceColumn("email", sat.Text()),
    SourceColumn("amount", sat.Text()),
    SourceColumn("country", sat.Text()),
    SourceColumn("secret", sat.Text()),
)


def shape(columns: tuple[SourceColumn, ...]) -> list[tuple[str, str, bool]]:
    return [(c.name, type_text(c.type), c.nullable) for c in columns]


def test_transformed_columns_are_exact() -> None:
    spec = TransformSpec(
        drop=("secret",),
        columns=(
            ColumnRule("name", trim=True, null_if=("",)),
            ColumnRule("email", rename="email_hash", hash=True),
            ColumnRule("amount", cast="numeric(12,2)", default=0),
        ),
        lookups=(
            LookupRule("country", "code", "name", "country_name", file="c.csv"),
            LookupRule("country", "code", "pop", "population", file="c.csv", type="bigint"),
        ),
    )
    assert shape(transformed_columns(spec, SOURCE)) == [
        ("id", "bigint", False),
        ("name", "varchar(50)", True),
        ("email_hash", "text", True),
        ("amount", "numeric(12, 2)", False),
        ("country", "text", True),
        ("country_name", "text", True),
        ("population", "bigint", True),
    ]


def test_transformed_columns_select_orders_and_protects() -> None:
    spec = TransformSpec(select=("secret", "id"), columns=(ColumnRule("secret", encrypt=True, rename="s"),))
    assert shape(transformed_columns(spec, SOURCE)) == [("s", "text", True), ("id", "bigint", False)]


def test_transformed_columns_refuse_unknown_shapes() -> None:
    with pytest.raises(ConfigError, match="select: the source returns no column 'nope'"):
        transformed_columns(TransformSpec(select=("nope",)), SOURCE)
    with pytest.raises(ConfigError, match="create the target table yourself"):
        transformed_columns(TransformSpec(function="clean"), SOURCE)


def run(spec: TransformSpec, columns: list[str], rows: list[tuple], tmp_path: Path, **kw) -> RowStream:
    pipeline = Pipeline(spec, tmp_path, Secret(KEY) if spec.needs_key else None, kw.get("function"))
    return transform_stream(RowStream(columns, iter([rows[:2], rows[2:]])), pipeline, "t", lambda name: None)


def test_values_are_cleaned_cast_looked_up_and_protected(tmp_path: Path) -> None:
    (tmp_path / "countries.csv").write_text("code,name\nFR,France\nDE,Germany\n", encoding="utf-8")
    spec = TransformSpec(
        columns=(
            ColumnRule("name", trim=True, null_if=("", "N/A")),
            ColumnRule("amount", cast="numeric(12,2)", default="0"),
            ColumnRule("day", cast="date"),
            ColumnRule("email", rename="email_hash", hash=True),
            ColumnRule("phone", mask=4),
            ColumnRule("ssn", encrypt=True),
        ),
        lookups=(LookupRule("country", "code", "name", "country_name", file="countries.csv"),),
    )
    columns = ["id", "name", "amount", "day", "email", "phone", "ssn", "country"]
    rows = [
        (1, "  Ann ", "12.345", "2024-01-02", "a@x.org", "0612345678", "123-45-6789", "FR"),
        (2, " N/A ", None, "2024-01-03 10:00:00", None, "12", None, "XX"),
        (3, "", "7", date(2024, 1, 4), "a@x.org", None, "987", None),
    ]
    stream = run(spec, columns, rows, tmp_path)
    assert stream.columns == [*columns[:4], "email_hash", "phone", "ssn", "country", "country_name"]
    out = [row for chunk in stream for row in chunk]
    expected_hash = hmac.new(KEY.encode(), b"a@x.org", hashlib.sha256).hexdigest()
    assert [r[:6] for r in out] == [
        (1, "Ann", Decimal("12.35"), date(2024, 1, 2), expected_hash, "******5678"),
        (2, None, Decimal("0.00"), date(2024, 1, 3), None, "**"),
        (3, None, Decimal("7.00"), date(2024, 1, 4), expected_hash, None),
    ]
    assert [r[7:] for r in out] == [("FR", "France"), ("XX", None), (None, None)]
    assert decrypt(out[0][6], Secret(KEY)) == "123-45-6789" and out[1][6] is None
    assert decrypt(out[2][6], Secret(KEY)) == "987" and out[0][6] != out[2][6]
    with pytest.raises(FatalError, match="wrong key"):
        decrypt(out[0][6], Secret("x" * 40))


def test_a_bad_cast_names_the_column_not_a_protected_value(tmp_path: Path) -> None:
    stream = run(TransformSpec(columns=(ColumnRule("n", cast="integer"),)), ["n"], [("1",), ("1.5",)], tmp_path)
    with pytest.raises(FatalError, match=r"column 'n': cannot cast '1.5' to integer"):
        list(stream)
    stream = run(TransformSpec(columns=(ColumnRule("n", cast="integer", hash=True),)), ["n"], [("x",)], tmp_path)
    with pytest.raises(FatalError, match="cannot cast a value to integer"):
        list(stream)


def test_mask_hides_short_values_whole() -> None:
    assert mask("1234567", 3) == "****567"
    assert mask("123", 3) == "***"
    assert mask(None, 3) is None


def test_a_transform_function_takes_and_returns_batches(tmp_path: Path) -> None:
    def double(batch: Batch) -> Batch:
        return Batch(["id", "twice"], [(r[0], r[1] * 2) for r in batch.rows])

    stream = run(TransformSpec(function="double"), ["id", "n"], [(1, 1), (2, 2), (3, 3)], tmp_path, function=double)
    assert stream.columns == ["id", "twice"]
    assert [r for chunk in stream for r in chunk] == [(1, 2), (2, 4), (3, 6)]
    empty = transform_stream(
        RowStream(["id", "n"], iter([])), Pipeline(TransformSpec(function="double"), tmp_path, None, double), "t", None
    )
    assert empty.columns == ["id", "twice"] and list(empty) == []


def test_the_pii_key_is_a_masked_secret() -> None:
    from script_factory.settings import secret_values

    assert Masker(secret_values({"ETL_PII_KEY": KEY}))(f"key={KEY}") == "key=***"


def test_dedupe_stages_then_checks_keys_before_the_strategy() -> None:
    window = Window(start=datetime(2024, 1, 1), end=datetime(2024, 2, 1), filtered=True, start_reason="test")
    direct = Capabilities(write=True, merge=True, direct_write=True, merge_statement=True)
    append = LoadPlan(TableName("t"), Strategy.APPEND, (), "u", window, dedupe=("id",))
    assert operations(append, direct) == (
        WriteRows(STAGE),
        DedupeStage(("id",), "u"),
        CheckKeys(("id",)),
        InsertFromStage(),
    )
    merge = LoadPlan(TableName("t"), Strategy.MERGE, ("id",), "u", window, dedupe=("id",))
    assert operations(merge, direct) == (
        WriteRows(STAGE),
        DedupeStage(("id",), "u"),
        CheckKeys(("id",)),
        MergeFromStage(("id",)),
    )
    plain = LoadPlan(TableName("t"), Strategy.APPEND, (), "u", window)
    assert operations(plain, direct)[0] == WriteRows(TARGET, read_back=operations(plain, direct)[0].read_back)


BASE = {"project": "p1", "tables": [{"target": "t", "source": {"connection": "warehouse", "table": "s"}}]}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"columns": {"a": {"cast": "nummeric(12,2)"}}}, "columns.a.cast: 'nummeric(12,2)' is not a type"),
        ({"columns": {"a": {"hash": True, "mask": 2}}}, "hash, mask and encrypt exclude each other"),
        ({"columns": {"id": {"encrypt": True}}}, "key column 'id' is encrypted or masked"),
        ({"columns": {"u": {"rename": "v"}, "w": {"rename": "v"}}}, "two columns would be named 'v'"),
        ({"select": ["id"], "columns": {"a": {"trim": True}}}, "columns.a: not in select"),
        ({"columns": {"x": {"rename": "u", "hash": True}}}, "cursor 'u' is hashed, masked or encrypted"),
        (
            {"lookups": [{"column": "c", "from": {"file": "f.csv", "table": "x"}, "key": "k", "value": "v"}]},
            "either file",
        ),
    ],
)
def test_bad_transforms_are_config_errors(table: dict, message: str, tmp_path: Path) -> None:
    doc = {**BASE, "tables": [{**BASE["tables"][0], "strategy": "merge", "keys": ["id"], "cursor": "u", **table}]}
    with pytest.raises(ConfigError, match="tables\\[0\\] \\(t\\)") as caught:
        parse_project(doc, tmp_path, tmp_path / "project.yml")
    assert message in str(caught.value)


def test_dedupe_needs_a_cursor(tmp_path: Path) -> None:
    doc = {**BASE, "tables": [{**BASE["tables"][0], "strategy": "replace", "keys": ["id"], "dedupe": {}}]}
    with pytest.raises(ConfigError, match="dedupe keeps the row with the latest cursor"):
        parse_project(doc, tmp_path, tmp_path / "project.yml")


def test_decrypt_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from script_factory.pii import Protector

    token = Protector(Secret(KEY)).encrypt("4111 1111")
    monkeypatch.setenv("ETL_HOME", str(tmp_path))
    assert transforms.main(["decrypt", token]) == 2  # no key
    assert "ETL_PII_KEY" in capsys.readouterr().err
    monkeypatch.setenv("ETL_PII_KEY", KEY)
    assert transforms.main(["decrypt", token]) == 0
    assert capsys.readouterr().out == "4111 1111\n"


def test_a_cast_to_numeric_keeps_38_digits() -> None:
    """numeric(38,10) holds more digits than Python's default decimal context (28): nothing is rounded."""
    from script_factory.transforms import _to_decimal

    for text in ("9999999999999999999999999999.9999999999", "-0.0000000001", "0"):
        assert _to_decimal(10)(text) == Decimal(text)
    assert str(_to_decimal(10)("1.5")) == "1.5000000000"
