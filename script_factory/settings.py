"""Settings: the one place that reads the environment and ``.env`` files, and the resolution order.

Resolution order, highest first: command line (carried by ``RunRequest``), then the process
environment, then ``.env.<NAME>`` (with ``--env NAME``), then ``.env``, then ``project.yml``, then
built-in defaults. :func:`load_settings` is the only function that reads ``os.environ``; everything
else receives the frozen :class:`Settings` it returns.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

from utilities.errors import ConfigError
from utilities.secrets import Masker, Secret, is_secret_name

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE_CONNECTION = "warehouse"
DEFAULT_WAREHOUSE_URL = "sqlite:///metadata/warehouse.db"
_ENV_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
# The NAME of a ``[export ]NAME =`` statement: all of a bad .env line that an error may show.
_NAMED_STATEMENT = re.compile(r"(?:export[^\S\n]+)?(?!export\s)([A-Za-z_][A-Za-z0-9_]*)[^\S\n]*=")


@dataclass(frozen=True)
class Paths:
    """Where projects, DDL, aggregations and run artifacts live, all below one home folder."""

    home: Path

    @property
    def projects(self) -> Path:
        return self.home / "customer_code"

    @property
    def warehouse_ddl(self) -> Path:
        return self.home / "warehouse"

    @property
    def aggregations(self) -> Path:
        return self.home / "aggregations"

    @property
    def metadata(self) -> Path:
        return self.home / "metadata"

    @property
    def logs(self) -> Path:
        return self.metadata / "logs"

    @property
    def output(self) -> Path:
        return self.metadata / "output"

    @property
    def locks(self) -> Path:
        return self.metadata / "locks"


@dataclass(frozen=True)
class Settings:
    """The frozen environment of one run: merged variables, paths, environment name, masker."""

    paths: Paths
    environment: str
    variables: Mapping[str, str]
    masker: Masker = field(compare=False)

    def get(self, key: str, default: str | None = None) -> str | None:
        """A variable's value (environment over ``.env`` files), or ``default``."""
        value = self.variables.get(key)
        return value if value not in (None, "") else default

    def option(self, key: str, project_value: T | None, default: T, parse: Callable[[str], T]) -> T:
        """Environment variable ``key`` if set, else the project.yml value, else ``default``."""
        raw = self.get(key)
        if raw is not None:
            try:
                return parse(raw)
            except ValueError as exc:
                raise ConfigError(f"environment variable {key}={raw!r} is invalid: {exc}") from None
        return project_value if project_value is not None else default

    def connection_url(self, name: str) -> Secret | None:
        """The URL of connection ``name`` from ``ETL_CONN_<NAME>``, as a :class:`Secret`, or None."""
        value = self.get(connection_variable(name))
        return Secret(value) if value else None


def connection_variable(name: str) -> str:
    """The environment variable that holds connection ``name``'s URL: ``ETL_CONN_<NAME>``."""
    return f"ETL_CONN_{name.upper()}"


def load_settings(env_name: str | None = None, home: Path | None = None) -> Settings:
    """Read ``os.environ`` and the ``.env`` files once and freeze the result.

    ``home`` (or ``ETL_HOME``, or the repository root) holds ``customer_code/``, ``warehouse/``,
    ``aggregations/``, ``metadata/`` and the ``.env`` files. ``--env NAME`` requires ``.env.NAME``.
    """
    environ = dict(os.environ)
    root = Path(home or environ.get("ETL_HOME") or REPO_ROOT).resolve()
    if not root.is_dir():
        raise ConfigError(f"ETL_HOME {str(root)!r} is not a folder; point it at the folder holding customer_code/")
    merged: dict[str, str] = {}
    base_file = root / ".env"
    if base_file.is_file():
        merged.update(read_env_file(base_file))
    if env_name:
        if not _ENV_NAME.match(env_name):
            raise ConfigError(f"--env {env_name!r}: use letters, digits, '_' or '-' (e.g. --env prod)")
        env_file = root / f".env.{env_name}"
        if not env_file.is_file():
            raise ConfigError(f"--env {env_name}: file {env_file} not found; create it or drop --env")
        merged.update(read_env_file(env_file))
    merged.update(environ)
    environment = env_name or merged.get("ETL_ENV") or "local"
    masker = Masker(secret_values(merged))
    return Settings(Paths(root), environment, MappingProxyType(merged), masker)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of one ``.env`` file (python-dotenv's syntax); ConfigError naming the file and
    every line python-dotenv cannot read, and never the line's text (it may hold half a password)."""
    import io

    from dotenv import dotenv_values  # small; imported here so the module imports fast in tests
    from dotenv.parser import parse_stream

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    bad = [_statement_line(b.original.string, b.original.line) for b in parse_stream(io.StringIO(text)) if b.error]
    if bad:
        lines = ", ".join(f"{n}" + (f" ({name})" if name else "") for n, name in bad)
        what = (
            f"line {lines} cannot be read: fix or remove it"
            if len(bad) == 1
            else f"lines {lines} cannot be read: fix or remove them"
        )
        raise ConfigError(
            f"{path}: {what} (the form is NAME=value, e.g. ETL_CONN_ERP=postgresql://etl@db/erp; quote a value "
            "holding spaces or '#'; a comment starts with '#')"
        )
    # No line is in error now, so python-dotenv has nothing to warn about; values are parsed once more
    # by dotenv_values for its interpolation of ${VAR}.
    return {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}


def _statement_line(statement: str, first_line: int) -> tuple[int, str | None]:
    """The line of a statement python-dotenv could not read, and its variable name if one stands before
    ``=``. python-dotenv numbers a statement from the blank lines before it, so those are skipped."""
    body = statement.lstrip()
    line = first_line + statement[: len(statement) - len(body)].count("\n")
    named = _NAMED_STATEMENT.match(body)
    return line, named.group(1) if named else None


def secret_values(variables: Mapping[str, str]) -> list[str]:
    """The secret strings to mask: secret-named variables and the passwords inside connection URLs."""
    found: list[str] = []
    for key, value in variables.items():
        if not value:
            continue
        if is_secret_name(key):
            found.append(value)
        elif key.upper().startswith("ETL_"):
            found.extend(_url_passwords(value))
    return found


def _url_passwords(url: str) -> list[str]:
    """The password of a ``scheme://user:password@host`` URL, as written and percent-decoded."""
    from urllib.parse import unquote

    match = re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@]*:([^@]+)@", url)
    if not match:
        return []
    return sorted({match.group(1), unquote(match.group(1))})
