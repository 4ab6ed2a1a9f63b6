"""amlcohort: an AML salvage-therapy cohort study, end to end.

Research software, not a medical device.

>>> from amlcohort import load_cohort
>>> cohort = load_cohort()          # the embedded (reconstructed) study cohort
>>> cohort.table("patients").count().execute()
13

The names below are imported on first use (PEP 562), so ``import amlcohort`` (and the command
line's ``--help``) does not load Ibis, pandas or PyArrow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from amlcohort.problems import InputError, Problem

if TYPE_CHECKING:
    from amlcohort.api import analysis_table, best_response, kaplan_meier, logrank, responses, table1  # noqa: F401
    from amlcohort.io.cohort import Cohort, ValidationReport, load_cohort, validate_bundle

__version__ = "0.1.0"
__all__ = ["Cohort", "InputError", "Problem", "ValidationReport", "load_cohort", "validate_bundle"]

#: Public name -> the module that defines it (imported when the name is first looked up).
_LAZY: dict[str, str] = {
    **dict.fromkeys(("Cohort", "ValidationReport", "load_cohort", "validate_bundle"), "amlcohort.io.cohort"),
    **dict.fromkeys(
        ("analysis_table", "best_response", "kaplan_meier", "logrank", "responses", "table1"), "amlcohort.api"
    ),
}


def __getattr__(name: str) -> Any:
    """``amlcohort.load_cohort`` etc.: import the defining module on first use, then cache the name."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'amlcohort' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
