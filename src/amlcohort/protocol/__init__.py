"""amlcohort.protocol: the study's treatment protocol as data, its schedule, rules and adherence audit.

* :func:`load_protocol` -- a protocol definition file (the regimen as a list of drugs, dosing,
  rule references, surveillance, pathway), validated on load; :func:`study_protocol` -- the
  protocol of a cohort's study definition (None when it has none). The embedded study's is
  ``data/study/protocol.yaml`` (thresholds in ``rules/protocol_xu2019.csv``).
* :func:`due` -- for a patient and a date: surveillance items due / overdue (rolling schedules from
  the patient's actual assessments) and the rules that fire; :func:`recommendations` -- every rule
  evaluated on the data known on that date, with values, rule and source.
* :func:`audit`, :func:`audit_summary`, :func:`audit_section` -- protocol deviations over a cohort
  (Ibis), summaries, and a report section.
* :func:`bsa_dose`, :func:`bsa` -- dosing of mg/m² drugs by body-surface area (Mosteller or DuBois).
* :func:`plan`, :func:`to_ical` -- the planned schedule as an RFC 5545 calendar.

Research software that supports research and protocol documentation; it is not a medical device
and gives no treatment advice.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amlcohort.protocol.audit import AuditSummary, audit, audit_section, audit_summary
    from amlcohort.protocol.definition import Drug, Protocol, load_protocol, parse_protocol, study_protocol
    from amlcohort.protocol.dosing import bsa, bsa_dose
    from amlcohort.protocol.recommend import Recommendation, recommendations
    from amlcohort.protocol.schedule import DueReport, due, plan, to_ical
    from amlcohort.protocol.surveillance import DateOutOfRange, DueItem, UnknownPatient, schedule_table
    from amlcohort.protocol.timeline import add_months, as_of, periods

#: Public name -> its module, imported on first use (PEP 562): the command line's ``protocol
#: --help`` and ``import amlcohort.protocol.cli`` do not load Ibis or pandas.
_LAZY: dict[str, str] = {
    **dict.fromkeys(("AuditSummary", "audit", "audit_section", "audit_summary"), "audit"),
    **dict.fromkeys(("Drug", "Protocol", "load_protocol", "parse_protocol", "study_protocol"), "definition"),
    **dict.fromkeys(("bsa", "bsa_dose"), "dosing"),
    **dict.fromkeys(("Recommendation", "recommendations"), "recommend"),
    **dict.fromkeys(("DueReport", "due", "plan", "to_ical"), "schedule"),
    **dict.fromkeys(("DateOutOfRange", "DueItem", "UnknownPatient", "schedule_table"), "surveillance"),
    **dict.fromkeys(("add_months", "as_of", "periods"), "timeline"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """``amlcohort.protocol.audit`` stays the function :func:`audit` (as with eager imports): the
    import system's binding of the submodule of the same name to the package is not kept."""

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "AuditSummary",
    "DateOutOfRange",
    "Drug",
    "DueItem",
    "DueReport",
    "Protocol",
    "Recommendation",
    "UnknownPatient",
    "add_months",
    "as_of",
    "audit",
    "audit_section",
    "audit_summary",
    "bsa",
    "bsa_dose",
    "due",
    "load_protocol",
    "parse_protocol",
    "periods",
    "plan",
    "recommendations",
    "schedule_table",
    "study_protocol",
    "to_ical",
]
