"""Transforms in flight: a table's rows changed chunk by chunk between its source and its target.

Per chunk (at most ``chunk_size`` rows, so memory stays bounded), in this order:

1. ``select:`` / ``drop:``, then per column of ``columns:``: ``trim``, ``null_if``, ``default``,
   ``cast``, and ``rename``;
2. ``lookups:`` add columns from reference rows loaded once when the table's load starts;
3. ``hash`` / ``mask`` / ``encrypt`` (script_factory/pii.py);
4. ``transform:``, a function of script_worker.py that takes a :class:`Batch` and returns one.

``dedupe:`` is not done here: it runs in the target's staging table (``DedupeStage``), so it holds no
row in memory. :func:`transformed_columns` gives the columns a table's target receives.

    python -m script_factory.transforms decrypt VALUE...   # ETL_PII_KEY from the environment or .env
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from connectors.base import Chunk, ReadRequest, RowStream
from connectors.columns import SourceColumn, parse_type, type_text
from script_factory.pii import Protector, mask, value_text
from script_factory.transform_spec import PII_KEY_VARIABLE, ColumnRule, LookupRule, TransformSpec
from utilities.errors import ConfigError, FatalError
from utilities.lazy import lazy_module
from utilities.secrets import Secret

if TYPE_CHECKING:
    import sqlalchemy.types as sat

    from connectors.base import Connector
else:
    sat = lazy_module("sqlalchemy.types")  # imported when a type is first built or compared

MAX_LOOKUP_ROWS = 1_000_000  # a lookup is a small reference table held in memory; larger: join in SQL


class Batch(NamedTuple):
    """What a ``transform:`` function receives and returns: the column names and the rows (tuples in
    that order). It may drop, add, rename or reorder columns and rows; every batch it returns for a
    table must have the same columns. ``[dict(zip(batch.columns, row)) for row in batch.rows]`` gives
    the rows as dicts."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class Pipeline:
    """A table's transforms, resolved by the factory: the spec, the PII key, the function, the project folder."""

    spec: TransformSpec
    folder: Path
    key: Secret | None = None
    function: Callable[[Batch], Any] | None = None


# -- the shape ----------------------------------------------------------------------------------


def transformed_columns(spec: TransformSpec, columns: tuple[SourceColumn, ...]) -> tuple[SourceColumn, ...]:
    """The columns the target receives when the source returns ``columns``: select/drop applied, renamed,
    cast types, hashed/masked/encrypted columns as text, lookups' columns added (text, or their ``type``).
    ConfigError when a named column is missing, or when a ``transform:`` function makes the shape unknown
    (such a table's target must exist: write its DDL)."""
    if spec.function:
        raise ConfigError(
            f"transform: {spec.function}: the columns a script_worker.py function returns are not known "
            f"before it runs; create the target table yourself (ddl: in project.yml)"
        )
    kept = _kept(spec, [c.name for c in columns])
    rules = {r.source.lower(): r for r in spec.columns}
    out: list[SourceColumn] = []
    for index in kept:
        column = columns[index]
        rule = rules.get(column.name.lower())
        if rule is None:
            out.append(column)
            continue
        kind = parse_type(rule.cast, f"columns.{rule.source}.cast") if rule.cast else column.type
        if rule.protects:
            kind = sat.Text()
        nullable = column.nullable and rule.default is None
        out.append(SourceColumn(rule.target, kind, nullable))
    names = [c.name.lower() for c in out]
    for lookup in spec.lookups:
        if lookup.column.lower() not in names:
            raise ConfigError(f"lookups ({lookup.name}): the table has no column {lookup.column!r} to look up")
        kind = parse_type(lookup.type, f"lookups ({lookup.name}).type") if lookup.type else sat.Text()
        out.append(SourceColumn(lookup.name, kind, True))
    return tuple(out)


def _kept(spec: TransformSpec, names: Sequence[str]) -> list[int]:
    """The indexes of the source columns kept by select / drop, in output order; ConfigError naming a
    column of select, drop or columns that the source does not return."""
    lowered = [n.lower() for n in names]
    for key, wanted in (("select", spec.select), ("drop", spec.drop), ("columns", [r.source for r in spec.columns])):
        for name in wanted:
            if name.lower() not in lowered:
                raise ConfigError(f"{key}: the source returns no column {name!r} (it returns {', '.join(names)})")
    if spec.select:
        return [lowered.index(n.lower()) for n in spec.select]
    dropped = {n.lower() for n in spec.drop}
    return [i for i, n in enumerate(lowered) if n not in dropped]


# -- the stream ---------------------------------------------------------------------------------


def transform_stream(
    stream: RowStream, pipeline: Pipeline, table: str, connector: Callable[[str], Connector]
) -> RowStream:
    """``stream`` with ``pipeline`` applied to each chunk (Arrow batches are taken as rows). Lookups are
    loaded now; with a ``transform:`` function the first chunk is read now (its output names the columns)."""
    spec = pipeline.spec
    try:
        kept = _kept(spec, stream.columns)
    except ConfigError as exc:
        raise FatalError(f"load into {table}: {exc}; fix project.yml or the query") from None
    rules = {r.source.lower(): r for r in spec.columns}
    names: list[str] = []
    steps: list[Callable[[Any], Any] | None] = []
    for index in kept:
        rule = rules.get(stream.columns[index].lower())
        names.append(rule.target if rule else stream.columns[index])
        steps.append(_cleaner(rule, table) if rule else None)
    lookups = [
        (_position(names, lk, table), _load_lookup(lk, pipeline.folder, connector, table)) for lk in spec.lookups
    ]
    names += [lk.name for lk in spec.lookups]
    protector = Protector(pipeline.key) if spec.needs_key else None
    protect = {names.index(r.target): _protection(r, protector) for r in spec.columns if r.protects}

    def apply(chunk: Chunk) -> list[tuple[Any, ...]]:
        source = list(zip(*chunk, strict=True)) if chunk else [() for _ in stream.columns]
        out: list[Sequence[Any]] = []
        for index, step in zip(kept, steps, strict=True):
            values = source[index]
            out.append(values if step is None else [step(v) for v in values])
        for position, mapping in lookups:
            out.append([None if v is None else mapping.get(value_text(v)) for v in out[position]])
        for position, func in protect.items():
            out[position] = [func(v) for v in out[position]]
        return list(zip(*out, strict=True)) if chunk else []

    chunks: Iterator[list[tuple[Any, ...]]] = (apply(chunk) for chunk in stream if chunk)
    if pipeline.function is None:
        return RowStream(names, chunks, stream.close)
    return _with_function(names, chunks, pipeline.function, spec.function or "", table, stream.close)


def _with_function(
    names: list[str],
    chunks: Iterator[list[tuple[Any, ...]]],
    function: Callable[[Batch], Any],
    label: str,
    table: str,
    close: Callable[[], None],
) -> RowStream:
    """Run ``function`` on each chunk; the first chunk (or an empty batch) is run now, for the columns."""

    def call(rows: list[tuple[Any, ...]]) -> Batch:
        result = function(Batch(list(names), rows))
        if not (isinstance(result, tuple) and len(result) == 2):
            raise FatalError(
                f"load into {table}: transform {label} returned {type(result).__name__}; "
                f"return a Batch(columns, rows) (script_factory.transforms.Batch)"
            )
        return Batch(list(result[0]), [tuple(r) for r in result[1]])

    first = next(chunks, None)
    head = call(first if first is not None else [])
    columns = head.columns

    def rest() -> Iterator[list[tuple[Any, ...]]]:
        if first is None:
            return
        yield head.rows
        for chunk in chunks:
            batch = call(chunk)
            if batch.columns != columns:
                raise FatalError(
                    f"load into {table}: transform {label} returned columns {batch.columns} after {columns}; "
                    f"every batch must have the same columns"
                )
            yield batch.rows

    return RowStream(columns, rest(), close)


def _position(names: list[str], lookup: LookupRule, table: str) -> int:
    lowered = [n.lower() for n in names]
    if lookup.column.lower() not in lowered:
        raise FatalError(f"load into {table}: lookups ({lookup.name}): the table has no column {lookup.column!r}")
    return lowered.index(lookup.column.lower())


def _protection(rule: ColumnRule, protector: Protector | None) -> Callable[[Any], Any]:
    if rule.mask is not None:
        keep = rule.mask
        return lambda v: mask(v, keep)
    assert protector is not None
    return protector.hash if rule.hash else protector.encrypt


# -- cleaning and casting -----------------------------------------------------------------------


def _cleaner(rule: ColumnRule, table: str) -> Callable[[Any], Any] | None:
    """trim -> null_if -> default -> cast for one value (None when the rule changes no value here)."""
    steps: list[Callable[[Any], Any]] = []
    if rule.trim:
        steps.append(lambda v: v.strip() if isinstance(v, str) else v)
    if rule.null_if:
        nulls = tuple(rule.null_if)  # a tuple compares with ==, so an unhashable value (JSON) is fine
        steps.append(lambda v: None if v in nulls else v)
    if rule.default is not None:
        default = rule.default
        steps.append(lambda v: default if v is None else v)
    if rule.cast:
        steps.append(_caster(rule, table))
    if not steps:
        return None
    if len(steps) == 1:
        return steps[0]

    def run(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    return run


def _caster(rule: ColumnRule, table: str) -> Callable[[Any], Any]:
    """The value converted to ``rule.cast``; FatalError naming the column (not a protected value)."""
    assert rule.cast is not None
    kind = parse_type(rule.cast, f"columns.{rule.source}.cast")
    convert = _converter(kind)
    shown = type_text(kind)

    def cast(value: Any) -> Any:
        if value is None:
            return None
        try:
            return convert(value)
        except (ValueError, TypeError, ArithmeticError):
            what = "a value" if rule.protects else repr(value)[:60]
            raise FatalError(
                f"load into {table}: column {rule.source!r}: cannot cast {what} to {shown}; "
                f"fix the source, or add null_if: / change cast: in project.yml"
            ) from None

    return cast


_TRUE, _FALSE = {"true", "t", "yes", "y", "1", "on"}, {"false", "f", "no", "n", "0", "off"}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | Decimal | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    if number != number.to_integral_value():
        raise ValueError(value)
    return int(number)


_WIDE = Context(prec=2000)  # PostgreSQL's numeric holds up to 1000 digits before the point


def _to_decimal(scale: int | None) -> Callable[[Any], Decimal]:
    step = Decimal(1).scaleb(-scale) if scale is not None else None

    def convert(value: Any) -> Decimal:
        if isinstance(value, bool):
            raise TypeError(value)
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
        if not number.is_finite():
            raise InvalidOperation(value)
        # numeric(38,10) has more digits than the default context's 28: quantize with room for any numeric
        return number.quantize(step, rounding=ROUND_HALF_UP, context=_WIDE) if step is not None else number

    return convert


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    return datetime.fromisoformat(str(value).strip())


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()


def _to_time(value: Any) -> time:
    return value if isinstance(value, time) else time.fromisoformat(str(value).strip())


def _to_bytes(value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _converter(kind: sat.TypeEngine[Any]) -> Callable[[Any], Any]:
    """Python's conversion of a value to a project.yml type (parse_type's result)."""
    if isinstance(kind, sat.Boolean):
        return _to_bool
    if isinstance(kind, sat.Integer):
        return _to_int
    if isinstance(kind, sat.Float):
        return lambda v: float(v) if not isinstance(v, bool) else _fail(v)
    if isinstance(kind, sat.Numeric):
        return _to_decimal(kind.scale if kind.precision is not None else None)
    if isinstance(kind, sat.DateTime):
        return _to_datetime
    if isinstance(kind, sat.Date):
        return _to_date
    if isinstance(kind, sat.Time):
        return _to_time
    if isinstance(kind, sat.LargeBinary):
        return _to_bytes
    if isinstance(kind, sat.String | sat.Uuid):
        return value_text
    return lambda v: v  # interval, json: the target converts


def _fail(value: Any) -> Any:
    raise TypeError(value)


# -- lookups ------------------------------------------------------------------------------------


def _load_lookup(lookup: LookupRule, folder: Path, connector: Callable[[str], Connector], table: str) -> dict[str, Any]:
    """``key text -> value`` of the reference rows (the value as text, or cast to the lookup's type)."""
    where = f"load into {table}: lookups ({lookup.name}) from {lookup.origin}"
    convert = _converter(parse_type(lookup.type)) if lookup.type else value_text
    mapping: dict[str, Any] = {}
    for key, value in _reference_rows(lookup, folder, connector, where):
        if key is None:
            continue
        text = value_text(key)
        if text in mapping:
            raise FatalError(f"{where}: key {text!r} appears twice; a lookup needs one row per key")
        if len(mapping) >= MAX_LOOKUP_ROWS:
            raise FatalError(f"{where}: more than {MAX_LOOKUP_ROWS:,} rows; join such a table in SQL instead")
        try:
            mapping[text] = None if value is None else convert(value)
        except (ValueError, TypeError, ArithmeticError):
            raise FatalError(f"{where}: value {value!r} of key {text!r} is not a {lookup.type}") from None
    return mapping


def _reference_rows(
    lookup: LookupRule, folder: Path, connector: Callable[[str], Connector], where: str
) -> Iterator[tuple[Any, Any]]:
    if lookup.file:
        path = folder / lookup.file
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in (lookup.key, lookup.value) if c not in (reader.fieldnames or [])]
                if missing:
                    raise FatalError(f"{where}: no column {', '.join(missing)} in its header {reader.fieldnames}")
                for row in reader:
                    yield row[lookup.key], row[lookup.value] if row[lookup.value] != "" else None
        except OSError as exc:
            raise FatalError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
        return
    assert lookup.connection is not None
    with connector(lookup.connection).read(ReadRequest(table=lookup.table)) as stream:
        lowered = [c.lower() for c in stream.columns]
        missing = [c for c in (lookup.key, lookup.value) if c.lower() not in lowered]
        if missing:
            raise FatalError(f"{where}: the table has no column {', '.join(missing)}")
        k, v = lowered.index(lookup.key.lower()), lowered.index(lookup.value.lower())
        for chunk in stream:
            for values in chunk:
                yield values[k], values[v]


# -- decrypt ------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """``decrypt VALUE...`` (or ``decrypt -``: one value per line of standard input): the plain text of
    values written by ``encrypt:``, one per line, with the key in ETL_PII_KEY (environment or .env)."""
    if not argv or argv[0] != "decrypt" or len(argv) < 2:
        sys.stderr.write("usage: python -m script_factory.transforms decrypt VALUE... | decrypt -\n")
        return 2
    from script_factory.pii import decrypt, pii_key
    from script_factory.settings import load_settings

    try:
        key = pii_key(load_settings().get(PII_KEY_VARIABLE), "decrypt")
        values = sys.stdin.read().split() if argv[1:] == ["-"] else argv[1:]
        for value in values:
            sys.stdout.write(decrypt(value, key) + "\n")
    except (ConfigError, FatalError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 2 if isinstance(exc, ConfigError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
