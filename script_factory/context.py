"""The run context: what every step of one run shares (request, windows, connections, paths).

Customer functions in ``script_worker.py`` receive it as their first argument; its public surface
is ``request``, ``project``, ``paths``, ``environment``, ``run_id``, ``now``, ``window_for()``,
``connector()``, ``engine()`` and ``logger``. It is built complete (after the audit row is open) and
frozen; the only thing that changes during a run is which connections are open, and that is the
business of :class:`Connections`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from script_factory.config import ProjectConfig
from script_factory.request import RunRequest
from script_factory.settings import Paths
from script_factory.window import Window
from utilities.errors import ConfigError, FatalError
from utilities.secrets import Secret

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from connectors.base import Connector
    from connectors.sql import SqlConnector


class Connections:
    """The run's connectors, each opened on first use and closed together at the end of the run."""

    def __init__(self, urls: Mapping[str, Secret], home: Path, variables: Mapping[str, str], project: str) -> None:
        self.urls = urls
        self.home = home
        self.variables = variables
        self.project = project
        self._open: dict[str, Connector] = {}
        self._lock = threading.Lock()  # tables loading at once (parallel: N) share one connector per name

    def connector(self, name: str) -> Connector:
        """The connector of connection ``name`` (opened once per run)."""
        with self._lock:
            if name not in self._open:
                from connectors import open_connector

                url = self.urls.get(name)
                if url is None:
                    raise ConfigError(f"project {self.project}: connection {name!r} is not declared in project.yml")
                self._open[name] = open_connector(name, url, self.home, self.variables)
            return self._open[name]

    def sql_connector(self, name: str) -> SqlConnector:
        """The connector of ``name``, which must be a SQL database."""
        from connectors.sql import SqlConnector

        connector = self.connector(name)
        if not isinstance(connector, SqlConnector):
            raise FatalError(f"connection {name!r} is a {connector.kind}, not a SQL database")
        return connector

    def close(self) -> None:
        for connector in self._open.values():
            connector.close()
        self._open.clear()


@dataclass(frozen=True)
class RunContext:
    """Shared by the tasks of one run; the runner creates it and closes its connections."""

    request: RunRequest
    project: ProjectConfig
    paths: Paths
    environment: str
    connections: Connections
    windows: Mapping[str, Window]
    run_window: Window
    now: datetime
    run_id: int | None = None
    task_run_id: int | None = None  # the ``etl_task_runs`` row of the task being run
    progress_interval: float = 10.0
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("project"))

    def connector(self, name: str) -> Connector:
        """The connector of connection ``name`` (opened once per run, closed by the runner)."""
        return self.connections.connector(name)

    def sql_connector(self, name: str) -> SqlConnector:
        """The connector of ``name``, which must be a SQL database."""
        return self.connections.sql_connector(name)

    @property
    def warehouse(self) -> SqlConnector:
        return self.sql_connector(self.project.warehouse)

    def engine(self, name: str) -> Engine:
        """The SQLAlchemy engine of SQL connection ``name`` (for customer functions)."""
        return self.sql_connector(name).engine

    def window_for(self, table: str) -> Window:
        """The load window resolved for target table ``table`` at the start of the run."""
        return self.windows[table]

    @property
    def output_dir(self) -> Path:
        return self.paths.output / self.project.name

    def bind_values(self, window: Window | None = None) -> dict[str, Any]:
        """The values SQL files may reference: ``:start_date``, ``:end_date``, ``:previous_max_date``,
        ``:load_type``, ``:run_id``, ``:project`` (the run's window unless ``window`` is given)."""
        window = window or self.run_window
        return {
            "load_type": self.request.load_type.value,
            "run_id": self.run_id,
            "project": self.project.name,
            "start_date": window.start,
            "end_date": window.end,
            "previous_max_date": window.previous_max,
        }
