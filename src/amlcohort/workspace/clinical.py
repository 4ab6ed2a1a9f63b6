"""The clinical rules at entry: derived response, CTCAE grades of the labs, ELN risk, due list.

Each runs the same code as the report (``criteria.response.derive``, ``criteria.ctcae.
grade_assessments``, ``criteria.risk.derive_risk``, ``protocol.schedule.due``) on the patient's
rows read from the workspace database (:func:`store.cohort_from_db`). What cannot be computed is
returned as a sentence saying why, never as an exception on the page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

ELN_VERSIONS = ("eln2017", "eln2022")


@dataclass
class PatientRules:
    responses: dict[str, dict] = field(default_factory=dict)   # assessment_date ISO → derived row
    grades: dict[str, list[dict]] = field(default_factory=dict)  # assessment_date ISO → graded labs
    risk: list[dict] = field(default_factory=list)
    due: dict | None = None
    notes: list[str] = field(default_factory=list)


def study_settings(cohort: Any) -> tuple[str, str]:
    """The response criteria set and the CTCAE version of the study (defaults when undeclared)."""
    sd = getattr(cohort, "study", None)
    return getattr(sd, "criteria", None) or "study", getattr(sd, "ctcae_version", None) or "4.03"


def _responses(cohort: Any, criteria: str) -> dict[str, dict]:
    from amlcohort.criteria.response import derive, rules_for

    rules = rules_for(criteria)
    out = {}
    for r in derive(cohort, criteria).to_pyarrow().to_pylist():
        rule = None
        if r["rule_id"]:
            try:
                rule = rules.rule(r["rule_id"])
            except Exception:  # a rule id the set does not list: show the id only
                rule = None
        out[r["assessment_date"].isoformat()] = {
            **r, "source": getattr(rule, "source", None), "label": getattr(rule, "label", None)}
    return out


def _grades(cohort: Any, version: str) -> dict[str, list[dict]]:
    from amlcohort.criteria.ctcae import grade_assessments

    out: dict[str, list[dict]] = {}
    for r in grade_assessments(cohort.table("assessments"), version=version).to_pyarrow().to_pylist():
        out.setdefault(r["assessment_date"].isoformat(), []).append(r)
    return out


def _risk(cohort: Any) -> list[dict]:
    from amlcohort.criteria.risk import derive_risk

    rows = derive_risk(cohort.table("patients"), cohort.table("mutations"),
                       version=ELN_VERSIONS).to_pyarrow().to_pylist()
    if not rows:
        return []
    r = rows[0]
    return [{"version": v, "category": r[v], "rule_id": r[f"{v}_rule"], "reasons": r[f"{v}_reasons"],
             "missing": r[f"{v}_missing"], "lesions": r["karyotype_lesions"]} for v in ELN_VERSIONS]


def _due(cohort: Any, patient_id: str, on: dt.date) -> dict | None:
    """The protocol's due list for the patient, when the study declares a protocol (guarded: the
    protocol API is young)."""
    sd = getattr(cohort, "study", None)
    path = getattr(sd, "protocol", None)
    if sd is None or path is None:
        return None
    from amlcohort.protocol.definition import load_protocol
    from amlcohort.protocol.schedule import due

    report = due(cohort, patient_id, on, protocol=load_protocol(path))
    return {"on": on, "phase": report.phase, "study_day": report.study_day,
            "items": [{"what": i.what, "status": i.status, "due_date": i.due_date,
                       "days_overdue": i.days_overdue, "source": i.source} for i in report.items],
            "firing": [str(getattr(r, "text", r)) for r in report.firing],
            "protocol": report.protocol, "disclaimer": report.disclaimer}


def patient_rules(cohort: Any, patient_id: str, on: dt.date | None = None) -> PatientRules:
    """Every rule result for one patient; a failing part becomes a note naming what failed."""
    out = PatientRules()
    criteria, version = study_settings(cohort)
    parts = (("responses", "derived response", lambda: _responses(cohort, criteria)),
             ("grades", "CTCAE grades", lambda: _grades(cohort, version)),
             ("risk", "ELN risk", lambda: _risk(cohort)),
             ("due", "protocol due list", lambda: _due(cohort, patient_id, on or dt.date.today())))
    for attr, what, fn in parts:
        try:
            setattr(out, attr, fn())
        except Exception as e:  # shown on the page: a valid patient never gets a traceback
            out.notes.append(f"{what} not computed: {type(e).__name__}: {str(e)[:300]}")
    return out
