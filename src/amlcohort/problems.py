"""Problems found in input (cohort bundles, rule files, protocol files), reported uniformly.

Every problem names where it is (table or file, row, column), the offending value and the
reason, so a research coordinator can fix the source without reading code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding. ``row`` is the 1-based data row (the header is not counted), or None."""

    severity: Severity
    table: str
    reason: str
    row: int | None = None
    column: str | None = None
    value: object = None
    code: str = ""

    def __str__(self) -> str:
        where = [f"table {self.table!r}"]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        value = "" if self.value is None else f" value {self.value!r}:"
        return f"{self.severity.upper()} [{self.code}] {', '.join(where)}:{value} {self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "code": self.code,
            "table": self.table,
            "row": self.row,
            "column": self.column,
            "value": None if self.value is None else str(self.value),
            "reason": self.reason,
        }


class InputError(ValueError):
    """Input that cannot be used; ``problems`` lists every error found (and the warnings)."""

    def __init__(self, what: str, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.errors = tuple(p for p in self.problems if p.severity == "error")
        lines = [f"{what}: {len(self.errors)} error(s)"]
        lines += [f"  {p}" for p in self.errors[:50]]
        if len(self.errors) > 50:
            lines.append(f"  ... and {len(self.errors) - 50} more")
        super().__init__("\n".join(lines))
