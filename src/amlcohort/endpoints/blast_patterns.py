"""Early marrow-blast course after the first dose (the paper's Figures 1-2, §3.2).

Per patient: the baseline marrow (last before or on the first dose), the week-1 marrow (study
days 2-8), the highest marrow of weeks 2-3 (study days 9-22) and the pattern from the rule set
``marrow.blast_pattern`` (``rules/blast_patterns.csv``): transient_fall, sustained_fall, rising,
unchanged, or not_evaluable when a marrow is missing.
"""

from __future__ import annotations

import ibis.expr.types as ir

from amlcohort.criteria.engine import apply_rules, ruleset
from amlcohort.io.cohort import Cohort

WEEK_1 = (2, 8)
WEEKS_2_3 = (9, 22)  # study days of weeks 2-3 after the first dose (the stopping rule's window)


def marrows(cohort: Cohort) -> ir.Table:
    """The assessments that have a marrow blast count."""
    a = cohort.table("assessments")
    return a.filter(a.marrow_blasts_pct.notnull())


def baseline_marrow(cohort: Cohort) -> ir.Table:
    """Per patient: ``baseline_marrow_blasts_pct``, the last marrow on or before the first dose
    (study day <= 1): the pre-treatment value of the stopping rule and of the blast patterns."""
    m = marrows(cohort)
    pre = m.filter(m.assessment_study_day <= 1)
    last = pre.group_by("patient_id").aggregate(d=pre.assessment_study_day.max())
    base = pre.join(last, [pre.patient_id == last.patient_id, pre.assessment_study_day == last.d])
    return base.select(pre.patient_id, baseline_marrow_blasts_pct=pre.marrow_blasts_pct)


def blast_patterns(cohort: Cohort) -> ir.Table:
    """One row per patient: baseline, week-1 and weeks 2-3 marrow blasts and the pattern (Ibis)."""
    m = marrows(cohort)
    base = baseline_marrow(cohort)
    base = base.select("patient_id", baseline_blasts_pct=base.baseline_marrow_blasts_pct)
    w1 = m.filter(m.assessment_study_day.between(*WEEK_1))
    w1 = w1.group_by("patient_id").aggregate(week1_blasts_pct=w1.marrow_blasts_pct.max())
    w23 = m.filter(m.assessment_study_day.between(*WEEKS_2_3))
    w23 = w23.group_by("patient_id").aggregate(weeks_2_3_max_blasts_pct=w23.marrow_blasts_pct.max())
    first = cohort.first_dose()
    j = first.left_join(base, first.patient_id == base.patient_id)
    j = j.left_join(w1, first.patient_id == w1.patient_id).left_join(w23, first.patient_id == w23.patient_id)
    t = j.select(
        first.patient_id, base.baseline_blasts_pct, w1.week1_blasts_pct, w23.weeks_2_3_max_blasts_pct
    )
    t = t.mutate(week1_relative_change=(t.week1_blasts_pct - t.baseline_blasts_pct) / t.baseline_blasts_pct)
    return apply_rules(ruleset("blast_patterns.csv", "marrow.blast_pattern", "1"), t,
                       outcome="pattern", rule_id=None, missing="pattern_missing")
