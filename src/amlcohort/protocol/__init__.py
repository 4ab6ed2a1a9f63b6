"""amlcohort.protocol: the study's treatment protocol as data, its schedule, rules and adherence audit.

* :func:`load_protocol` -- the protocol definition file (``data/protocol/xu2019.yaml``; thresholds in
  ``rules/protocol_xu2019.csv``, the stopping rule shared with the endpoints), validated on load.
* :func:`due` -- for a patient and a date: surveillance items due / overdue (rolling schedules from
  the patient's actual assessments) and the rules that fire; :func:`recommendations` -- every rule
  evaluated on the data known on that date, with values, rule and source.
* :func:`audit`, :func:`audit_summary`, :func:`audit_section` -- protocol deviations over a cohort
  (Ibis), summaries, and a report section.
* :func:`ldac_dose`, :func:`bsa` -- LDAC dosing by body-surface area (Mosteller or DuBois).
* :func:`plan`, :func:`to_ical` -- the planned schedule as an RFC 5545 calendar.

Research software that supports research and protocol documentation; it is not a medical device
and gives no treatment advice.
"""

from amlcohort.protocol.audit import AuditSummary, audit, audit_section, audit_summary
from amlcohort.protocol.definition import Protocol, load_protocol, parse_protocol
from amlcohort.protocol.dosing import bsa, ldac_dose
from amlcohort.protocol.recommend import Recommendation, recommendations
from amlcohort.protocol.schedule import DueItem, DueReport, due, plan, schedule_table, to_ical
from amlcohort.protocol.timeline import add_months, as_of, periods

__all__ = [
    "AuditSummary",
    "DueItem",
    "DueReport",
    "Protocol",
    "Recommendation",
    "add_months",
    "as_of",
    "audit",
    "audit_section",
    "audit_summary",
    "bsa",
    "due",
    "ldac_dose",
    "load_protocol",
    "parse_protocol",
    "periods",
    "plan",
    "recommendations",
    "schedule_table",
    "to_ical",
]
