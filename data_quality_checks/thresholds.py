"""When a check's failing rows make it fail: the ``error_if`` / ``warn_if`` conditions and the verdict.

A condition is a comparison operator and a number: ``>0``, ``>=10``, ``=0``, ``!=0``, ``<5``, or a
percentage of the rows the check looked at: ``>1%``, ``>=0.5%``. A count is a whole number of rows; a
percentage is from 0 to 100 (decimals allowed). The verdict is ``error`` when ``error_if`` holds, else
``warn`` when ``warn_if`` holds, else a pass. Percentages are compared exactly (as fractions): 3 failing
rows of 300 are 1%, which ``>1%`` does not exceed.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

Level = Literal["error", "warn"]

_OPERATORS: dict[str, Callable[[Fraction, Fraction], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}
THRESHOLD_PATTERN = r"^\s*(>=|<=|!=|>|<|=)\s*(?:([0-9]+)|([0-9]+(?:\.[0-9]+)?)\s*%)\s*$"
THRESHOLD_HELP = (
    'a condition on the failing rows such as ">0", ">=10", "=0" or ">1%": one of > >= < <= = != '
    "then a whole number of rows, or a percentage (0 to 100) of the rows checked"
)


@dataclass(frozen=True)
class Threshold:
    """``operator amount`` (``percent``: the amount is a percentage of the rows checked)."""

    operator: str
    amount: Fraction
    percent: bool = False

    def __str__(self) -> str:
        amount = format((Decimal(self.amount.numerator) / self.amount.denominator).normalize(), "f")
        return f"{self.operator}{amount}{'%' if self.percent else ''}"

    def __repr__(self) -> str:  # as --dry-run prints a check spec
        return f"Threshold({str(self)!r})"

    def holds(self, failing: int, checked: int | None) -> bool:
        """Whether ``failing`` rows (of ``checked``, needed for a percentage) meet the condition."""
        if self.percent:
            if checked is None:
                raise ValueError(f"the condition {self} is a percentage, but the rows checked were not counted")
            value = share(failing, checked)
        else:
            value = Fraction(failing)
        return _OPERATORS[self.operator](value, self.amount)


def parse_threshold(text: object) -> Threshold:
    """The condition written as ``text``; ValueError saying what was expected (the caller shows ``text``)."""
    match = re.match(THRESHOLD_PATTERN, text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(THRESHOLD_HELP)
    op, rows, percent = match.groups()
    if rows is not None:
        return Threshold(op, Fraction(int(rows)))
    amount = Fraction(percent)
    if amount > 100:
        raise ValueError("a percentage from 0 to 100")
    return Threshold(op, amount, percent=True)


def share(failing: int, checked: int) -> Fraction:
    """``failing`` as a percentage of ``checked``. Nothing checked is 0% (100% if rows still fail,
    as a custom query may return rows of an empty table's neighbours): never a division by zero."""
    if checked <= 0:
        return Fraction(100 if failing else 0)
    return Fraction(failing * 100, checked)


def verdict(
    failing: int, checked: int | None, error_if: Threshold | None, warn_if: Threshold | None
) -> tuple[Level, Threshold] | None:
    """The level that fires and its condition (``error_if`` first), or None: the check passes."""
    if error_if is not None and error_if.holds(failing, checked):
        return "error", error_if
    if warn_if is not None and warn_if.holds(failing, checked):
        return "warn", warn_if
    return None


def percent_text(value: Fraction) -> str:
    """``1.2%``, ``0.33%``, ``100%``: at most two decimals, no trailing zeros."""
    text = f"{float(value):.2f}".rstrip("0").rstrip(".")
    return (text if text != "0" or value == 0 else f"{float(value):.2g}") + "%"
