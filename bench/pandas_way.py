"""The response derivation written "the usual way": pandas ``groupby(...).apply`` per patient.

For the side-by-side benchmark only (``bench/run.py``): the same rules as
``amlcohort.criteria.response.derive`` + ``best_response`` (it calls the same rule engine through
:func:`amlcohort.criteria.response.classify`, one assessment at a time), with the per-patient
history (baselines, transfusion window, previous best response, blast span) computed in Python.
"""

from __future__ import annotations

import math

import pandas as pd

from amlcohort.criteria.engine import NOT_EVALUABLE
from amlcohort.criteria.response import (
    NO_PREVIOUS,
    RANK,
    TRANSFUSION_PRODUCTS,
    derived_values,
    remission_categories,
    rules_for,
)


def _cond(c, values):
    """One condition in SQL's three-valued logic (None = unknown), as the compiled rules."""
    x = values.get(c.variable)
    if c.op == "is_null":
        return x is None
    if c.op == "not_null":
        return x is not None
    if x is None:
        return None
    if c.op == "is_true":
        return x is True or x == 1
    if c.op == "is_false":
        return x is False or x == 0
    if c.op in ("in", "not_in"):
        hit = x in [s.strip() for s in str(c.value).split("|")]
        return hit if c.op == "in" else not hit
    if c.ref:
        ref = values.get(c.ref)
        if ref is None:
            return None
        rhs = ref * c.factor
    else:
        rhs = float(c.value) if isinstance(x, (int, float)) else c.value
    return {"<": x < rhs, "<=": x <= rhs, ">": x > rhs, ">=": x >= rhs, "==": x == rhs, "!=": x != rhs}[c.op]


def _and(a, b):
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a, b):
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def classify(rules, values) -> str | None:
    """First rule that holds; not_evaluable when one is undecided first; None when none holds."""
    for rule in rules.rules:
        holds = False
        for clause in rule.clauses:
            part = True
            for c in clause:
                part = _and(part, _cond(c, values))
            holds = _or(holds, part)
        if holds is True:
            return rule.outcome
        if holds is None:
            return NOT_EVALUABLE
    return None


def _none(v):
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def _last_value(pre: pd.DataFrame, column: str):
    have = pre[pre[column].notna()]
    return None if have.empty else _none(have[column].iloc[-1])


def _blasts_abs(wbc, pb):
    if pb is None:
        return None
    if pb == 0:
        return 0.0
    return None if wbc is None else wbc * pb / 100


def per_patient(g: pd.DataFrame, first_dose, transfusion_days, criteria: str = "study") -> pd.DataFrame:
    g = g.sort_values("assessment_date")
    pre = g[g["assessment_date"] <= first_dose].copy()
    post = g[g["assessment_date"] > first_dose]
    pre["_pb_abs"] = [
        _blasts_abs(_none(w), _none(p)) for w, p in zip(pre["wbc"], pre["peripheral_blasts_pct"], strict=True)
    ]
    base_marrow = _last_value(pre, "marrow_blasts_pct")
    base_emd = _last_value(pre, "extramedullary_disease")
    base_pb = _last_value(pre, "_pb_abs")
    rows = []
    for rec in post.itertuples(index=False):
        day = rec.assessment_date
        ti = None
        if transfusion_days is not None:
            ti = not any((day - pd.Timedelta(days=7)) <= t <= day for t in transfusion_days)
        rows.append(
            {
                "assessment_date": day,
                "marrow_blasts_pct": _none(rec.marrow_blasts_pct),
                "marrow_spicules": _none(rec.marrow_spicules),
                "extramedullary_disease": _none(rec.extramedullary_disease),
                "anc": _none(rec.anc),
                "platelets": _none(rec.platelets),
                "wbc": _none(rec.wbc),
                "peripheral_blasts_pct": _none(rec.peripheral_blasts_pct),
                "transfusion_independent": ti,
                "baseline_marrow_blasts_pct": base_marrow,
                "baseline_extramedullary_disease": base_emd,
                "baseline_peripheral_blasts_abs": base_pb,
            }
        )
    out = []
    rules = rules_for(criteria)
    inputs = []
    for r in rows:
        raw = {k: v for k, v in r.items() if k != "assessment_date"}
        raw["previous_response"] = NO_PREVIOUS
        raw["peripheral_blasts_span_days"] = None
        inputs.append({**raw, **derived_values(raw)})
    first = [classify(rules, x) for x in inputs]  # pass 1: no history
    best_so_far = None
    episode_first_pb = None
    remission = remission_categories(rules)
    for r, x, cat1 in zip(rows, inputs, first, strict=True):
        previous = NO_PREVIOUS if best_so_far is None else best_so_far
        if cat1 in remission:
            episode_first_pb = None
        pb = r["peripheral_blasts_pct"]
        span = None
        if pb is not None and pb > 0:
            if episode_first_pb is None:
                episode_first_pb = r["assessment_date"]
            span = float((r["assessment_date"] - episode_first_pb).days)
        out.append(
            (
                r["assessment_date"],
                classify(rules, {**x, "previous_response": previous, "peripheral_blasts_span_days": span}),
            )
        )
        if cat1 in RANK and (best_so_far is None or RANK[cat1] < RANK[best_so_far]):
            best_so_far = cat1
    return pd.DataFrame(out, columns=["assessment_date", "response"])


def best_response_pandas(
    assessments: pd.DataFrame,
    exposures: pd.DataFrame,
    transfusions: pd.DataFrame | None,
    index_drug: str | None = None,
    criteria: str = "study",
) -> pd.DataFrame:
    """Best response per patient, pandas groupby-apply (the usual way).

    Study day 1 is the first dose of ``index_drug`` (of any drug when None), as the study says."""
    sor = exposures if index_drug is None else exposures[exposures["drug"] == index_drug]
    first = sor.groupby("patient_id")["start_date"].min()
    tr_days = None
    if transfusions is not None:
        tr = transfusions[transfusions["product"].isin(TRANSFUSION_PRODUCTS)]
        tr_days = tr.groupby("patient_id")["transfusion_date"].apply(list)
    a = assessments[assessments["patient_id"].isin(first.index)]

    def one(g: pd.DataFrame) -> pd.Series:
        pid = g.name
        days = [] if tr_days is None else tr_days.get(pid, [])
        resp = per_patient(g, first[pid], None if tr_days is None else days, criteria)
        ranks = resp["response"].map(RANK)
        if ranks.notna().any():
            best = ranks.min()
            cat = next(c for c, r in RANK.items() if r == best)
            date = resp.loc[ranks == best, "assessment_date"].min()
        else:
            cat, date = "not_evaluable", None
        return pd.Series({"best_response": cat, "best_response_date": date, "n_assessments": len(resp)})

    return a.groupby("patient_id").apply(one, include_groups=False)
