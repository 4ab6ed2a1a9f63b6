"""Duration of the first neutropenia after the first dose (the paper's §3.3: "neutropenia of more
than 7 days" in every CR patient)."""

from __future__ import annotations

import ibis.expr.types as ir

from amlcohort.io.cohort import Cohort

ANC_THRESHOLD = 1.0  # x10^9/L: the protocol's G-CSF threshold (§2.1), below it a patient is neutropenic


def first_neutropenia(cohort: Cohort, threshold: float = ANC_THRESHOLD) -> ir.Table:
    """Per patient: the first count below ``threshold`` on or after day 1 (``start``), the first
    later count at or above it (``recovered``, NULL if none) and ``days`` between them (to the last
    count when counts never recovered) (Ibis)."""
    a = cohort.table("assessments")
    a = a.filter(a.anc.notnull() & (a.assessment_study_day >= 1))
    low = a.filter(a.anc < threshold).group_by("patient_id").aggregate(start=a.assessment_date.min())
    j = a.join(low, "patient_id")
    later = j.filter(j.assessment_date > j.start)
    per = later.group_by("patient_id").aggregate(
        start=later.start.min(),
        recovered=later.assessment_date.min(where=later.anc >= threshold),
        last=later.assessment_date.max(),
    )
    end = per.recovered.fill_null(per.last)
    return per.mutate(days=end.delta(per.start, unit="day"))
