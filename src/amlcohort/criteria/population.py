"""Study population (Xu 2019 §2.1, §2.4): primary refractory, relapsed, elderly unfit, FLT3-ITD negative.

The definitions are rule data (``rules/population.csv``: rule sets ``population.status`` and
``population.membership``, version ``2019``); this module derives their inputs per patient with
Ibis and compiles the rules:

* ``prior_lines`` — lines in ``prior_therapies`` (a patient without rows had no prior therapy);
* ``ever_cr`` — any prior line gave CR or CRi; ``relapsed_after_cr`` — any prior CR was followed
  by relapse (including after HSCT); ``induction_cycles`` — cycles of chemotherapy lines
  (a line without ``cycles`` counts as one);
* ``age_at_onset``, ``ecog_ps``, ``has_comorbidity`` — from ``patients``;
* ``adverse_cytogenetics`` — ELN 2017 adverse on the karyotype alone (the risk rules run
  without mutations: an adverse karyotype decides adverse whatever the genes);
* ``flt3_itd`` — the FLT3-ITD result (``wild_type``/``mutated``; NULL when not tested).

Elderly-unfit patients are those untreated before sorafenib (section 3.1: "unfit ... at onset").
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import ibis
import ibis.expr.types as ir

from amlcohort.criteria.engine import (
    RuleSet,
    apply_rules,
    evaluate,
    parse_rules,
    parser_depth_limited,
    ruleset,
)
from amlcohort.criteria.risk import derive_risk
from amlcohort.problems import InputError, Problem

RULE_FILE = "population.csv"
VERSION = "2019"
R_R = ("relapsed", "primary_refractory")


class CohortLike(Protocol):
    def table(self, name: str) -> ir.Table: ...


STATUS_RULESET = "population.status"
MEMBERSHIP_RULESET = "population.membership"


def status_rules() -> RuleSet:
    return ruleset(RULE_FILE, STATUS_RULESET, VERSION)


def membership_rules() -> RuleSet:
    return ruleset(RULE_FILE, MEMBERSHIP_RULESET, VERSION)


def population_rules_file(path: Path) -> tuple[RuleSet, RuleSet]:
    """A study's own population rules (``population:`` in ``study.yaml``): the rule sets
    ``population.status`` and ``population.membership``, one version each, same inputs as ours.
    Raises :class:`InputError` naming the file when either is missing or ambiguous."""
    return _population_rules(path.read_text(encoding="utf-8"), path.name)


@functools.cache
def _population_rules(text: str, name: str) -> tuple[RuleSet, RuleSet]:
    """Parsed once per file content (an edited file is parsed again)."""
    path = Path(name)
    book = parse_rules(text, name)

    def one(name: str) -> RuleSet:
        found = [rs for (n, _), rs in book.items() if n == name]
        if len(found) != 1:
            why = "is missing" if not found else f"has {len(found)} versions; keep one"
            raise InputError(
                f"population rule file {path.name}",
                [Problem("error", path.name, f"rule set {name!r} {why}", code="population.rules")],
            )
        return found[0]

    return one(STATUS_RULESET), one(MEMBERSHIP_RULESET)


def _rules_of(cohort: object) -> tuple[RuleSet, RuleSet]:
    """The cohort's study's population rules, or the shipped ones (§2.1/§2.4 definitions)."""
    path = getattr(getattr(cohort, "study", None), "population", None)
    return population_rules_file(path) if path is not None else (status_rules(), membership_rules())


def population_inputs(cohort: CohortLike) -> ir.Table:
    """One row per patient with every input of the population rules (Ibis)."""
    p = cohort.table("patients")
    pt = cohort.table("prior_therapies")
    chemo = pt.therapy_type.isin(("intensive_chemotherapy", "low_intensity_chemotherapy"))
    prior = pt.group_by("patient_id").aggregate(
        prior_lines=pt.count(),
        ever_cr=pt.response.isin(("cr", "cri")).any(),
        relapsed_after_cr=pt.relapsed.fill_null(False).any(),
        induction_cycles=pt.cycles.fill_null(1).sum(where=chemo),
    )
    m = cohort.table("mutations")
    itd = m.filter((m.gene == "FLT3-ITD") & m.result.isin(("wild_type", "mutated"))).select(
        "patient_id", flt3_itd=m.result
    )
    # a cohort that keeps its karyotype lookup (report.results.MaterialisedCohort) lends it
    lookup = getattr(cohort, "karyotype_lookup", None)
    cyto = derive_risk(p, m.limit(0), version="eln2017",
                       karyotypes=lookup() if callable(lookup) else None).select("patient_id", "eln2017")
    j = p.left_join(prior, "patient_id").drop("patient_id_right")
    j = j.left_join(itd, "patient_id").drop("patient_id_right")
    j = j.left_join(cyto, "patient_id").drop("patient_id_right")
    return j.select(
        "patient_id",
        prior_lines=j.prior_lines.fill_null(0).cast("float64"),
        ever_cr=j.ever_cr.fill_null(False),
        relapsed_after_cr=j.relapsed_after_cr.fill_null(False),
        induction_cycles=j.induction_cycles.fill_null(0).cast("float64"),
        age_at_onset=j.age_at_onset.cast("float64"),
        ecog_ps=j.ecog_ps.cast("float64"),
        adverse_cytogenetics=ibis.cases(
            (j.eln2017 == "adverse", True), (j.karyotype.isnull(), ibis.null("boolean")), else_=False
        ),
        has_comorbidity=j.comorbidities.notnull() & (j.comorbidities.strip() != ""),
        flt3_itd=j.flt3_itd,
    )


def derive_population(cohort: CohortLike) -> ir.Table:
    """Per patient: ``status`` (relapsed, primary_refractory, elderly_unfit, not_rr_or_unfit or
    not_evaluable), ``rr`` (relapsed or refractory), ``elderly_unfit``, ``flt3_itd_negative``,
    ``membership`` (``in_population`` or the reason for exclusion), the deciding rule ids and the
    missing inputs. The rules are the study definition's own (``population:``), else the shipped ones."""
    status, membership = _rules_of(cohort)
    t = population_inputs(cohort)
    if parser_depth_limited(t):
        # SQLite: the two rule sets' CASEs over the inputs' joins (the karyotype risk among them)
        # nest deeper than its parser takes; the inputs are one row a patient, kept as a
        # temporary table of the connection
        t = t.cache()
    t = apply_rules(status, t, outcome="status", rule_id="status_rule", missing="status_missing")
    t = apply_rules(membership, t, outcome="_membership", rule_id="_membership_rule",
                    missing="_membership_missing")
    return t.select(
        "patient_id",
        "status",
        "status_rule",
        "status_missing",
        rr=t.status.isin(R_R),
        elderly_unfit=t.status == "elderly_unfit",
        flt3_itd_negative=t.flt3_itd == "wild_type",
        membership=t._membership.fill_null("not_evaluable"),
        membership_rule=t._membership_rule,
        membership_missing=t._membership_missing,
    )


@dataclass(frozen=True)
class PopulationResult:
    status: str | None
    membership: str | None
    status_reason: str
    membership_reason: str


def classify_population(values: Mapping[str, Any]) -> PopulationResult:
    """The population rules on one patient's inputs (the names of :func:`population_inputs`)."""
    s = evaluate(status_rules(), {k: v for k, v in values.items() if k in status_rules().variables})
    m = evaluate(membership_rules(), {"status": s.outcome, "flt3_itd": values.get("flt3_itd")})
    return PopulationResult(s.outcome, m.outcome, s.reason, m.reason)
