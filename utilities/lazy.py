"""Modules imported on first use: a heavy library (SQLAlchemy's types) named at module level but loaded
only when a function of ours touches it, so start-up paths that never do (``--list``) never pay for it."""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    """Stands for module ``name``; the first attribute read imports it, and each attribute read is kept."""

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(self.__name__), attr)
        setattr(self, attr, value)  # the next read finds it here, without this method
        return value


def lazy_module(name: str) -> Any:
    """``sat = lazy_module("sqlalchemy.types")`` (under ``if not TYPE_CHECKING``): imported on first use."""
    return LazyModule(name)
