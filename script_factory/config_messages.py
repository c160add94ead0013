"""project.yml errors in the operator's words: pydantic's error list becomes one line per key, saying what was expected.

Each line names the key path as the user wrote it (``tables[0] (items).strategy``), never pydantic's own
wording or links; all the errors of a file go into one ConfigError, so a user fixes them in one pass.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from script_factory.config_models import TABLE_ENTRY_TAGS, ProjectFile
from script_factory.config_types import show
from script_factory.settings import connection_variable
from utilities.errors import ConfigError

_NOT_A_MAPPING = {"model_type", "model_attributes_type", "dataclass_type", "dataclass_exact_type", "dict_type"}
_NOT_A_LIST = {"tuple_type", "list_type", "set_type", "frozen_set_type", "iterable_type"}
_UNKNOWN_KEY = {"extra_forbidden", "unexpected_keyword_argument"}


def config_error(exc: ValidationError, raw: Any, file: Path) -> ConfigError:
    """One ConfigError for every error of the file: one line, or a count and then one line each."""
    errors = [_blame_defaults(e, raw) for e in exc.errors(include_url=False)]
    inner = {e["loc"][:i] for e in errors for i in range(len(e["loc"]))}
    # a list whose items failed is also "too short" for pydantic (it counts the valid ones): say it once
    errors = [e for e in errors if not (e["type"] == "too_short" and e["loc"] in inner)]
    errors.sort(key=lambda e: _file_order(e["loc"], raw))
    lines = list(dict.fromkeys(describe(error, raw) for error in errors))
    if len(lines) == 1:
        return ConfigError(f"{file}: {lines[0]}")
    return ConfigError(f"{file}: {len(lines)} errors:\n" + "\n".join(f"  {line}" for line in lines))


def _blame_defaults(error: ErrorDetails, raw: Any) -> ErrorDetails:
    """An error in a table's key that the table took from ``defaults:`` is an error of ``defaults:``,
    said once (for a table's ``source`` key: when the table's source does not set it)."""
    loc = error["loc"]
    defaults = raw.get("defaults") if isinstance(raw, dict) else None
    if not isinstance(defaults, dict) or len(loc) < 3 or loc[0] != "tables":
        return error
    keys = loc[3:] if loc[2] in TABLE_ENTRY_TAGS else loc[2:]
    table = _child(raw.get("tables"), loc[1])
    for depth, key in enumerate(keys[:2]):
        if not isinstance(table, dict) or not isinstance(defaults, dict):
            return error
        if key not in table:
            return {**error, "loc": ("defaults", *keys)} if key in defaults else error
        if depth or key != "source":
            return error
        table, defaults = table[key], defaults.get(key)
    return error


def describe(error: ErrorDetails, raw: Any) -> str:
    """``key.path: what was expected, got what`` for one of pydantic's errors on the document ``raw``."""
    kind, loc, ctx = error["type"], error["loc"], error.get("ctx", {})
    path = key_path(loc, raw)
    got = f", got {show(error['input'])}"
    if kind == "config":
        return f"{path}: {ctx['text']}"
    if kind == "missing":
        return f"{path}: missing (it is required)"
    if kind in _UNKNOWN_KEY:
        where = path if len(loc) > 1 else f"project.yml.{path}"
        return f"{where}: unknown key (expected one of: {', '.join(allowed_keys(loc[:-1]))})"
    if kind == "union_tag_not_found":
        return f"{path}.kind: missing (it is required)"
    if kind == "union_tag_invalid":
        tags = ", ".join(sorted(_quoted(ctx["expected_tags"])))
        return f"{path}.kind: expected one of {tags}, got {show(error['input'].get('kind'))}"
    if kind == "enum":
        return f"{path}: expected one of {', '.join(_quoted(ctx['expected']))}{got}"
    if kind in _NOT_A_MAPPING:
        return f"{path}: expected a mapping (key: value lines){got}"
    if kind in _NOT_A_LIST:
        return f"{path}: expected a list (lines starting with '- '){got}"
    if kind == "too_short":
        return f"{path}: expected a non-empty list, got an empty one"
    if kind == "sqlite_default":
        scheme = ctx["scheme"]
        shown = f"a {scheme}:// URL" if scheme else repr(error["input"])
        return (
            f"{path}: expected a sqlite:/// URL (other URLs carry credentials: "
            f"set {connection_variable(str(loc[-2]))} instead), got {shown}"
        )
    return f"{path}: {error['msg'].lower()}{got}"  # not expected: every kind of error should be named above


def key_path(loc: tuple[int | str, ...], raw: Any) -> str:
    """``tables[0] (items).source.query``: the location as the user reads the file."""
    text, node = "", raw
    for segment in loc:
        if segment == "[key]":  # the key itself is wrong (connections: {Bad-Name: ...})
            continue
        if isinstance(node, dict) and segment not in node and segment in (node.get("kind"), *TABLE_ENTRY_TAGS):
            continue  # the check kind, or the kind of table entry, pydantic chose the model by
        if isinstance(segment, int) and not isinstance(node, dict):
            node = _child(node, segment)
            target = node.get("target") if isinstance(node, dict) else None
            text += f"[{segment}]" + (f" ({target.strip()})" if isinstance(target, str) and target.strip() else "")
            continue
        text += f".{segment}" if text else str(segment)
        node = _child(node, segment)
    return text or "project.yml"


def _child(node: Any, key: int | str) -> Any:
    if isinstance(node, list) and isinstance(key, int):
        return node[key] if 0 <= key < len(node) else None
    if not isinstance(node, dict):
        return None
    if key == "on" and key not in node:
        return node.get(True)  # YAML 1.1 reads a bare `on:` key as the boolean true
    return node.get(key)


def _file_order(loc: tuple[int | str, ...], raw: Any) -> list[int]:
    """Where ``loc`` is in the file, so errors are listed top to bottom (a key not written: after its mapping)."""
    order, node = [], raw
    for segment in loc:
        if isinstance(node, dict):
            keys = ["on" if key is True else key for key in node]
            order.append(keys.index(segment) if segment in keys else len(keys))
        elif isinstance(node, list) and isinstance(segment, int):
            order.append(segment)
        node = _child(node, segment)
    return order


def allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys of the mapping at ``loc``, found by following the models' annotations."""
    shape: Any = ProjectFile
    for segment in loc:
        shape = _inner(shape, segment)
    for member in _members(shape):
        if fields := _fields(member):
            return sorted(fields)
    return []


def _quoted(text: str) -> list[str]:
    """``"'a', 'b' or 'c'"`` (pydantic's list of choices) as ``['a', 'b', 'c']``."""
    return re.findall(r"'([^']*)'", text)


def _members(shape: Any) -> list[Any]:
    """The types an annotation stands for, without Annotated, Optional and unions."""
    if get_origin(shape) is Annotated:
        return _members(get_args(shape)[0])
    if get_origin(shape) in (Union, types.UnionType):
        return [member for arg in get_args(shape) for member in _members(arg)]
    return [shape]


def _fields(shape: Any) -> dict[str, Any]:
    """A model's or a pydantic dataclass's keys and their annotations ({} for anything else)."""
    if isinstance(shape, type) and issubclass(shape, BaseModel):
        return {info.alias or name: info.annotation for name, info in shape.model_fields.items()}
    return {name: info.annotation for name, info in getattr(shape, "__pydantic_fields__", {}).items()}


def _inner(shape: Any, segment: int | str) -> Any:
    for member in _members(shape):
        origin, args = get_origin(member), get_args(member)
        if origin in (tuple, list, frozenset) and isinstance(segment, int):
            return args[0]
        if origin is dict:
            return args[1]
        fields = _fields(member)
        if segment in fields:
            return fields[segment]
        if "kind" in fields and get_args(fields["kind"]) == (segment,):
            return member  # the union member chosen by its kind
        if TABLE_ENTRY_TAGS.get(str(segment)) is member:
            return member  # the kind of table entry
    return None
