"""SQL text: splitting a script into statements (quotes, comments and dollar quotes respected)."""

from __future__ import annotations

import re

_DOLLAR = re.compile(r"\$[A-Za-z_]*\$")


def split_statements(script: str) -> list[str]:
    """The statements of ``script``, split on top-level semicolons, without empty ones.

    Semicolons inside '...' strings, "..." identifiers, -- and /* */ comments and $tag$ bodies do
    not split.
    """
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(script)
    while i < n:
        ch = script[i]
        nxt = script[i + 1] if i + 1 < n else ""
        if ch in ("'", '"'):
            end = _closing_quote(script, i, ch)
            current.append(script[i:end])
            i = end
        elif ch == "-" and nxt == "-":
            end = script.find("\n", i)
            end = n if end == -1 else end
            current.append(script[i:end])
            i = end
        elif ch == "/" and nxt == "*":
            end = script.find("*/", i + 2)
            end = n if end == -1 else end + 2
            current.append(script[i:end])
            i = end
        elif ch == "$" and (match := _DOLLAR.match(script, i)):
            tag = match.group(0)
            end = script.find(tag, match.end())
            end = n if end == -1 else end + len(tag)
            current.append(script[i:end])
            i = end
        elif ch == ";":
            _flush(current, statements)
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    _flush(current, statements)
    return statements


def _closing_quote(script: str, start: int, quote: str) -> int:
    i = start + 1
    while i < len(script):
        if script[i] == quote:
            if i + 1 < len(script) and script[i + 1] == quote:  # doubled quote escapes itself
                i += 2
                continue
            return i + 1
        i += 1
    return len(script)


def _flush(parts: list[str], statements: list[str]) -> None:
    text = "".join(parts).strip()
    if _has_code(text):
        statements.append(text)


def _has_code(text: str) -> bool:
    without_comments = re.sub(r"--[^\n]*|/\*.*?\*/", "", text, flags=re.DOTALL)
    return bool(without_comments.strip())


def strip_comments(sql: str) -> str:
    """``sql`` without its -- and /* */ comments (quotes respected), so that a ``:name`` written in a
    comment is not taken for a bind parameter."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if ch in ("'", '"'):
            end = _closing_quote(sql, i, ch)
            out.append(sql[i:end])
            i = end
        elif ch == "$" and (match := _DOLLAR.match(sql, i)):
            end = sql.find(match.group(0), match.end())
            end = n if end == -1 else end + len(match.group(0))
            out.append(sql[i:end])
            i = end
        elif ch == "-" and nxt == "-":
            end = sql.find("\n", i)
            i = n if end == -1 else end
        elif ch == "/" and nxt == "*":
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
            out.append(" ")
        else:
            out.append(ch)
            i += 1
    return "".join(out).strip()
