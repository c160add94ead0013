"""Function steps: call a function of the project's ``script_worker.py`` with its bound parameters."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from script_factory.context import RunContext
from script_factory.task import StepResult
from utilities.errors import FatalError


def call_function(ctx: RunContext, *, function: Callable[..., Any], params: Mapping[str, Any]) -> StepResult:
    """``function(ctx, **params)``; it may return None, a row count or a StepResult."""
    result = function(ctx, **params)
    if result is None:
        return StepResult()
    if isinstance(result, StepResult):
        return result
    if isinstance(result, int) and not isinstance(result, bool):
        return StepResult(rows=result)
    raise FatalError(
        f"{function.__module__}.{function.__name__} returned a {type(result).__name__}; "
        f"return None, a row count or a StepResult"
    )
