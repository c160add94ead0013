"""Snowflake through snowflake-connector-python: streaming reads, staged loads, error translation.

``ETL_CONN_<NAME>=snowflake://user[:password]@account/database[/schema]?warehouse=WH&role=ROLE``.
The password may instead come from ``ETL_CONN_<NAME>_PASSWORD``; key-pair authentication from
``ETL_CONN_<NAME>_PRIVATE_KEY_FILE`` (PEM, relative to the ETL home) and, for an encrypted key,
``ETL_CONN_<NAME>_PRIVATE_KEY_PASSPHRASE``. ``ETL_CONNECT_TIMEOUT`` (seconds, default 30) bounds the login.

Names from project.yml (tables, schemas, the cursor) are case-insensitive, as Snowflake's unquoted
identifiers are: they are upper-cased and quoted, so ``sales.fact_orders`` means
``"SALES"."FACT_ORDERS"``. Result columns whose names are all upper case (Snowflake's spelling of an
unquoted name) are reported in lower case; quoted mixed-case names are kept as they are.
Loading (``open_load``) lives in :mod:`connectors.snowflake_load`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, unquote

from connectors.base import (
    Aggregate,
    Capabilities,
    Chunk,
    Connector,
    ReadRequest,
    RowStream,
    import_driver,
)
from connectors.driver_errors import Verdict, fatal, render, transient, translating
from utilities.errors import ConfigError, EtlError, FatalError, TransientError
from utilities.secrets import Masker, Secret
from utilities.sql_text import strip_comments

if TYPE_CHECKING:
    from connectors.target import LoadSession, LoadTarget

logger = logging.getLogger(__name__)

#: query-string keys of the URL, passed to snowflake.connector.connect (ints where the driver wants them)
URL_OPTIONS = {
    "warehouse": str,
    "role": str,
    "authenticator": str,
    "host": str,
    "port": int,
    "protocol": str,
    "login_timeout": int,
    "network_timeout": int,
}
DEFAULT_LOGIN_TIMEOUT = 30
DEFAULT_SCHEMA = "PUBLIC"
KEY_PAIR_AUTHENTICATOR = "SNOWFLAKE_JWT"

# How a driver error is classified (see translate_error). Codes are Snowflake's documented ones.
AUTH_ERRNOS = {390100, 390144, 251005, 251006, 251008}  # bad user/password, bad JWT, no user, no password, bad key
SESSION_ERRNOS = {390111, 390112, 390114}  # session gone or token expired: a new login fixes it
TRANSIENT_CLASSES = {
    "OperationalError",
    "InterfaceError",
    "InternalServerError",
    "ServiceUnavailableError",
    "GatewayTimeoutError",
    "BadGatewayError",
    "RequestTimeoutError",
    "TooManyRequests",
    "OtherHTTPRetryableError",
    "RequestExceedMaxRetryError",
    "TokenExpiredError",
    "PresignedUrlExpiredError",
}
FATAL_CLASSES = {"ForbiddenError", "BadRequest", "MethodNotAllowed", "NonRetryableTlsError", "RevocationCheckError"}
TRANSIENT_MARKERS = ("timeout", "timed out", "connection reset", "could not connect", "temporarily", "try again")


@dataclass(frozen=True)
class SnowflakeUrl:
    """The parts of ``snowflake://user[:password]@account/database[/schema]?options``."""

    user: str
    account: str
    database: str
    schema: str
    password: Secret | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


def parse_url(url: str, name: str) -> SnowflakeUrl:
    """Split a connection URL; ConfigError (never showing the password) when a part is missing."""
    variable = f"ETL_CONN_{name.upper()}"
    expected = f"{variable}: expected snowflake://user@account/database/schema?warehouse=WH&role=ROLE"
    rest = url.partition("://")[2]
    rest, _, query = rest.partition("?")
    credentials, at, location = rest.rpartition("@")
    user, colon, password = credentials.partition(":")
    account, _, path = location.partition("/")
    parts = [unquote(p) for p in path.split("/") if p]
    if not at or not user or not account or not parts or len(parts) > 2:
        raise ConfigError(f"{expected} (user, account and database are required)")
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        kind = URL_OPTIONS.get(key.lower())
        if kind is None:
            raise ConfigError(f"{variable}: unknown option {key!r} (known: {', '.join(sorted(URL_OPTIONS))})")
        try:
            options[key.lower()] = kind(value)
        except ValueError:
            raise ConfigError(f"{variable}: option {key!r} expects a whole number, got {value!r}") from None
    return SnowflakeUrl(
        user=unquote(user),
        account=unquote(account),
        database=parts[0],
        schema=parts[1] if len(parts) > 1 else DEFAULT_SCHEMA,
        password=Secret(unquote(password)) if colon and password else None,
        options=options,
    )


class SnowflakeConnector(Connector):
    """A Snowflake database: a source (queries or tables) and a load target."""

    capabilities: ClassVar[Capabilities] = Capabilities(read=True, write=True, merge=True, sql=True)
    kind: ClassVar[str] = "Snowflake"

    _connection: Any = None

    # -- settings and connections -------------------------------------------------------------

    @cached_property
    def parts(self) -> SnowflakeUrl:
        return parse_url(self.url.reveal(), self.name)

    @property
    def database_name(self) -> str:
        return self.parts.database

    @cached_property
    def _masker(self) -> Masker:
        """Masks this connection's secrets in driver messages (they should hold none; this makes sure)."""
        secrets = [self.parts.password.reveal() if self.parts.password else ""]
        secrets += [self.setting("PASSWORD") or "", self.setting("PRIVATE_KEY_PASSPHRASE") or ""]
        return Masker(secrets)

    def connect_args(self) -> dict[str, Any]:
        """Keyword arguments for ``snowflake.connector.connect`` (they hold secrets: never log them)."""
        parts = self.parts
        timeout = int(self.variable("ETL_CONNECT_TIMEOUT", str(DEFAULT_LOGIN_TIMEOUT)) or DEFAULT_LOGIN_TIMEOUT)
        args: dict[str, Any] = {
            "user": parts.user,
            "account": parts.account,
            "database": parts.database,
            "schema": parts.schema,
            "login_timeout": timeout,
            "paramstyle": "qmark",  # values are bound on the server, never formatted into the SQL
            **parts.options,
        }
        key_file = self.setting("PRIVATE_KEY_FILE")
        if key_file:
            path = Path(key_file) if Path(key_file).is_absolute() else self.home / key_file
            if not path.is_file():
                raise ConfigError(f"ETL_CONN_{self.name.upper()}_PRIVATE_KEY_FILE: {path} does not exist")
            args["private_key_file"] = str(path)
            passphrase = self.setting("PRIVATE_KEY_PASSPHRASE")
            if passphrase:
                args["private_key_file_pwd"] = passphrase
            args.setdefault("authenticator", KEY_PAIR_AUTHENTICATOR)
            return args
        password = parts.password.reveal() if parts.password else self.setting("PASSWORD")
        if password:
            args["password"] = password
        return args

    def connect(self) -> Any:
        """A new driver connection (imports the driver now); errors come out translated."""
        snowflake_connector = import_driver(
            "snowflake.connector", kind=self.kind, connection=self.name, package="snowflake-connector-python"
        )
        args = self.connect_args()
        with self.translate_errors("connect"):
            try:
                return snowflake_connector.connect(**args)
            except (ValueError, TypeError) as exc:
                if "private_key_file" not in args:
                    raise
                raise FatalError(
                    f"{self.kind} connection {self.name!r}: could not read the private key: "
                    f"{self._masker(str(exc))}; check ETL_CONN_{self.name.upper()}_PRIVATE_KEY_FILE "
                    f"and ETL_CONN_{self.name.upper()}_PRIVATE_KEY_PASSPHRASE"
                ) from exc

    @property
    def connection(self) -> Any:
        """The connection this connector checks and loads with, opened on first use."""
        if self._connection is None:
            self._connection = self.connect()
        return self._connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's own outcome
                logger.warning("Snowflake connection %r: close failed: %s", self.name, self._masker(str(exc)))

    def check(self) -> str:
        with self.translate_errors("check"):
            cursor = self.connection.cursor()
            try:
                cursor.execute("SELECT CURRENT_VERSION()")
                version = cursor.fetchone()[0]
            finally:
                cursor.close()
        return f"Snowflake {version}"

    # -- errors -------------------------------------------------------------------------------

    @contextmanager
    def translate_errors(self, action: str) -> Iterator[None]:
        """Turn driver and network errors into TransientError or FatalError, keeping the cause."""

        def mask(text: str) -> str:  # the URL is parsed only when an error needs it
            return self._masker(text)

        with translating(self, action, lambda exc: classify(exc, self.name), mask=mask):
            yield

    # -- reading ------------------------------------------------------------------------------

    def select_for(self, request: ReadRequest) -> tuple[str, list[Any]]:
        """The SQL text (``?`` placeholders) and the values, in order, that read ``request``."""
        from sqlalchemy import bindparam, column, literal_column, select, table, text

        if request.sql is not None:
            query = text(strip_comments(request.sql))
            if not (request.filtered and request.cursor):
                return self._compile(query, request.params)
            source: Any = query.columns(column(request.cursor)).subquery("src")
        else:
            name = request.table
            cols: list[Any] = [column(request.cursor)] if request.cursor else []
            source = table(name.name, *cols, schema=name.schema)
        stmt: Any = select(literal_column("*")).select_from(source)
        if request.filtered and request.cursor:
            cursor = source.c[request.cursor]
            stmt = stmt.where(cursor > bindparam("window_start", request.window_start))
            if request.window_end is not None:
                stmt = stmt.where(cursor <= bindparam("window_end", request.window_end))
        return self._compile(stmt, request.params if request.sql is not None else {})

    def _compile(self, stmt: Any, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """Render ``stmt``; the window's values come from the statement, the others from ``params``."""
        compiled = stmt.compile(dialect=sql_dialect())
        names = compiled.positiontup or []
        missing = sorted({n for n in names if not n.startswith("window_") and n not in params})
        if missing:
            known = ", ".join(f":{k}" for k in sorted(params)) or "none"
            raise FatalError(
                f"{self.kind} connection {self.name!r}: the query uses {', '.join(':' + m for m in missing)}, "
                f"which the run does not provide (known: {known}); write \\: for a literal colon"
            )
        values = {**params, **{n: v for n, v in compiled.params.items() if n.startswith("window_")}}
        return str(compiled).strip(), [values[n] for n in names]

    def describe_read(self, request: ReadRequest) -> str:
        sql, values = self.select_for(request)
        shown = ", ".join(repr(v) for v in values)
        return f"{sql}\n-- bound, in order: {shown or '(none)'}"

    def aggregate(self, request: ReadRequest, aggregates: Sequence[Aggregate]) -> dict[str, Any]:
        sql, values = self.select_for(request)
        quote = sql_dialect().identifier_preparer.quote
        figures = ", ".join(
            "COUNT(*)" if a.column is None else f"{a.func.upper()}({quote(a.column)})" for a in aggregates
        )
        conn = self.connect()
        try:
            with self.translate_errors("aggregate the source's window"):
                cursor = conn.cursor()
                cursor.execute(f"SELECT {figures} FROM ({sql}) AS etl_window", values)
                row = cursor.fetchone()
        finally:
            conn.close()
        return {a.label: value for a, value in zip(aggregates, row, strict=True)}

    def read(self, request: ReadRequest) -> RowStream:
        sql, values = self.select_for(request)
        conn = self.connect()  # its own session: a load into this connection may run meanwhile
        try:
            with self.translate_errors("query"):
                cursor = conn.cursor()
                cursor.execute(sql, values)
            columns = [column_name(d[0]) for d in cursor.description]
        except BaseException:
            conn.close()
            raise

        def chunks() -> Iterator[Chunk]:
            with self.translate_errors("read"):
                while rows := cursor.fetchmany(request.chunk_size):
                    yield [tuple(row) for row in rows]

        def close() -> None:
            try:
                cursor.close()
            finally:
                conn.close()

        return RowStream(columns, chunks(), close)

    # -- writing (target) ---------------------------------------------------------------------

    @contextmanager
    def open_load(self, target: LoadTarget) -> Iterator[LoadSession]:
        from connectors.snowflake_load import open_load

        try:
            with open_load(self, target) as session:
                yield session
        except TransientError:
            self.close()  # the session may be gone: a retry of the task logs in again
            raise


def column_name(name: str) -> str:
    """``CUSTOMER_ID`` (an unquoted name) -> ``customer_id``; a quoted mixed-case name stays as it is."""
    return name.lower() if name == name.upper() else name


def sql_dialect() -> Any:
    """A SQLAlchemy dialect that renders Snowflake SQL text: ``?`` placeholders, and every name from
    project.yml upper-cased and quoted (Snowflake's meaning of an unquoted name)."""
    from sqlalchemy.engine.default import DefaultDialect
    from sqlalchemy.sql.compiler import IdentifierPreparer

    class SnowflakeNames(IdentifierPreparer):
        def quote(self, ident: str, force: Any = None) -> str:
            return self.quote_identifier(ident.upper())

        def quote_schema(self, schema: str, force: Any = None) -> str:
            return self.quote_identifier(schema.upper())

    class SnowflakeText(DefaultDialect):
        name = "snowflake_text"
        preparer = SnowflakeNames

    return SnowflakeText(paramstyle="qmark")


def translate_error(exc: BaseException, name: str, safe_url: str, action: str, masker: Masker) -> EtlError:
    """The runner's error for a driver or network error (see :func:`classify`), with a message naming
    the connection and what to check."""
    verdict = classify(exc, name) or fatal(_first_line(str(exc)))
    return verdict.error(render("Snowflake", name, safe_url, action, verdict, masker))


def classify(exc: BaseException, name: str) -> Verdict | None:
    """The verdict for a driver or network error: transient when retrying can help (network, timeouts,
    HTTP 5xx/429, an expired session), fatal otherwise (bad credentials, a missing object, bad SQL);
    None for anything else (a bug is not a driver error)."""
    if not _is_driver_error(exc) and not isinstance(exc, OSError):
        return None
    errno = _errno(exc)
    sqlstate = getattr(exc, "sqlstate", None)
    classes = {c.__name__ for c in type(exc).__mro__}
    message = _first_line(str(exc))
    variable = f"ETL_CONN_{name.upper()}"
    if sqlstate == "28000" or errno in AUTH_ERRNOS:
        return fatal(
            message,
            f"check the user and password ({variable} or {variable}_PASSWORD) "
            f"or the key pair ({variable}_PRIVATE_KEY_FILE)",
        )
    if errno in SESSION_ERRNOS:
        return transient(message, "the session expired, a new login should succeed")
    if classes & FATAL_CLASSES:
        return fatal(message, f"check the account name and network policy in {variable}")
    if classes & TRANSIENT_CLASSES or isinstance(exc, OSError) or _retryable_http(errno):
        return transient(message)
    if any(marker in message.lower() for marker in TRANSIENT_MARKERS):
        return transient(message)
    return fatal(message)


def _is_driver_error(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("snowflake.connector")


def _errno(exc: BaseException) -> int:
    try:
        return int(getattr(exc, "errno", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _retryable_http(errno: int) -> bool:
    """The driver reports HTTP status S as errno 290000 + S."""
    status = errno - 290000
    return status in (408, 429) or 500 <= status < 600


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    # "SQL compilation error:" alone says little: keep the line that follows it
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
