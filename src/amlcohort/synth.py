"""Synthetic registries: ``amlcohort synth --patients N --out DIR`` writes a valid, seeded bundle.

SYNTHETIC DATA, for scale tests and benchmarks only: nothing here describes real patients.

Every patient is drawn from distributions (vectorised NumPy, no Python loop per patient), in chunks
of :data:`CHUNK_PATIENTS` patients written as they are made (memory bounded by the chunk, not N):

* **arms** and their **regimens** come from a study definition (``study.yaml``; by default the
  embedded study's), optionally restricted with ``arms``; patients are spread evenly over the arms.
  The bundle gets its own ``study.yaml`` (those arms, the index drug, criteria, CTCAE version);
* **patients**: sex, age at onset, a WHO 2016 category with approximate adult-AML frequencies
  (:data:`CATEGORIES`), an ISCN karyotype that fits the category, ECOG, height and weight;
  **mutations**: FLT3-ITD, NPM1, CEBPA, RUNX1, ASXL1, TP53, consistent with the category; the
  reported risk group follows from both (ELN-like);
* **a course** per patient (days from day 1, the first dose): CR or not (probability by risk group
  and age), relapse after CR, death, the data cut-off;
* **assessments**: a baseline 1-5 days before day 1, then every 1-2 weeks for the first visits and
  every 1-4 weeks after, until death or the cut-off (~40 per patient); marrow at baseline, at the CR
  and relapse visits and at some others; blood counts at every visit, chemistry at most, with the
  reference limits (ULN/LLN) of :data:`CHEMISTRY` and :data:`BLOOD_LIMITS`. Values follow the
  disease state: active disease (blasts >= 6 %, cytopenias), remission (blasts < 5 % with
  spicules, ANC > 1.0, platelets >= 100, no blood blasts), relapse (blasts in the blood);
* **exposures**: one row per 28-day cycle and regimen drug (continuous drugs all cycle long, the
  others for the days their schedule says), until relapse, death, the cut-off or the planned number
  of cycles; **transfusions** at active-disease visits with platelets < 20 or haemoglobin < 8 g/dL,
  never in the 7 days before a remission visit; **adverse events** with CTCAE grades while on
  treatment; **events**: ``cr_reported`` on the first remission visit (a marrow that meets the CR
  rules), ``relapse`` on the first relapse visit, ``death`` after the last assessment, else
  ``last_contact``.

Every date is on or before the data cut-off and the death; keys are unique. Same seed, same bytes.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
import yaml

from amlcohort.schema import TABLES_BY_NAME
from amlcohort.schema.model import DOSE_UNITS, FREQUENCIES, ROUTES
from amlcohort.schema.study import Arm, StudyDefinition

__all__ = ["synth_app", "synth_command", "write_synthetic_bundle"]

#: The first line of the YAML files of a synthetic bundle (how a later run recognises one).
SYNTH_MARK = "# SYNTHETIC DATA (amlcohort synth): not real patients.\n"
CHUNK_PATIENTS = 10_000
CUTOFF = date(2025, 6, 30)
FIRST_DOSE_FROM = date(2012, 1, 1)
FIRST_DOSE_TO = date(2024, 6, 30)
CYCLE_DAYS = 28
_EPOCH = date(1970, 1, 1)

#: WHO 2016 category, share of patients, karyotype (``{sx}`` = XX/XY), risk by karyotype.
#: Approximate adult-AML frequencies (APL left out: it is treated differently); illustrative only.
CATEGORIES: tuple[tuple[str, float, str, str], ...] = (
    ("AML with mutated NPM1", 0.27, "46,{sx}[20]", "npm1"),
    ("AML with myelodysplasia-related changes", 0.13, "45,{sx},-7[20]", "adverse"),
    ("AML with myelodysplasia-related changes", 0.12, "43,{sx},del(5)(q13q33),-7,-17,-18[20]", "adverse"),
    ("AML with t(8;21)(q22;q22.1); RUNX1-RUNX1T1", 0.06, "46,{sx},t(8;21)(q22;q22.1)[20]", "favorable"),
    (
        "AML with inv(16)(p13.1q22) or t(16;16)(p13.1;q22); CBFB-MYH11",
        0.05,
        "46,{sx},inv(16)(p13.1q22)[20]",
        "favorable",
    ),
    ("AML with biallelic mutations of CEBPA", 0.04, "46,{sx}[20]", "cebpa"),
    ("AML with mutated RUNX1", 0.05, "46,{sx}[20]", "adverse"),
    ("AML with t(9;11)(p21.3;q23.3); MLLT3-KMT2A", 0.02, "46,{sx},t(9;11)(p21.3;q23.3)[20]", "intermediate"),
    (
        "AML with inv(3)(q21.3q26.2) or t(3;3)(q21.3;q26.2); GATA2, MECOM",
        0.01,
        "46,{sx},inv(3)(q21.3q26.2)[20]",
        "adverse",
    ),
    ("Therapy-related myeloid neoplasms", 0.07, "45,{sx},-7[20]", "adverse"),
    ("AML with maturation", 0.07, "46,{sx}[20]", "intermediate"),
    ("AML without maturation", 0.05, "46,{sx}[20]", "intermediate"),
    ("Acute myelomonocytic leukemia", 0.04, "46,{sx}[20]", "intermediate"),
    ("Acute monoblastic/monocytic leukemia", 0.02, "46,{sx}[20]", "intermediate"),
)
GENES = ("FLT3-ITD", "NPM1", "CEBPA", "RUNX1", "ASXL1", "TP53")
RISKS = ("favorable", "intermediate", "adverse")
P_CR = {"favorable": 0.8, "intermediate": 0.6, "adverse": 0.35}

#: Chemistry: column, reference-limit columns with their values, log-normal median and spread.
CHEMISTRY: tuple[tuple[str, dict[str, float], float, float, int], ...] = (
    ("alt", {"alt_uln": 40.0}, 25.0, 0.5, 0),
    ("ast", {"ast_uln": 40.0}, 24.0, 0.45, 0),
    ("bilirubin", {"bilirubin_uln": 21.0}, 10.0, 0.5, 1),
    ("creatinine", {"creatinine_uln": 106.0}, 75.0, 0.25, 0),
    ("potassium", {"potassium_lln": 3.5, "potassium_uln": 5.1}, 4.0, 0.1, 1),
    ("sodium", {"sodium_lln": 135.0, "sodium_uln": 145.0}, 139.0, 0.025, 0),
    ("calcium", {"calcium_lln": 2.1, "calcium_uln": 2.6}, 2.3, 0.06, 2),
)
#: Blood-count reference limits (canonical units), the same at every visit.
BLOOD_LIMITS = {"anc_lln": 1.8, "platelets_lln": 150.0, "wbc_lln": 4.0, "hemoglobin_lln": 12.0}

#: Adverse events: CTCAE term, share among events, probabilities of grades 1-4.
AE_TERMS: tuple[tuple[str, float, tuple[float, float, float, float]], ...] = (
    ("Febrile neutropenia", 0.18, (0.0, 0.0, 0.85, 0.15)),
    ("Lung infection", 0.10, (0.0, 0.3, 0.55, 0.15)),
    ("Sepsis", 0.04, (0.0, 0.0, 0.0, 1.0)),
    ("Nausea", 0.12, (0.6, 0.3, 0.1, 0.0)),
    ("Diarrhea", 0.10, (0.55, 0.3, 0.15, 0.0)),
    ("Fatigue", 0.12, (0.5, 0.4, 0.1, 0.0)),
    ("Rash maculo-papular", 0.08, (0.5, 0.35, 0.15, 0.0)),
    ("Palmar-plantar erythrodysesthesia syndrome", 0.06, (0.4, 0.4, 0.2, 0.0)),
    ("Hypertension", 0.06, (0.3, 0.5, 0.2, 0.0)),
    ("Alanine aminotransferase increased", 0.06, (0.6, 0.25, 0.12, 0.03)),
    ("Mucositis oral", 0.08, (0.45, 0.4, 0.15, 0.0)),
)
DEATH_CAUSES = ("leukemia", "infection", "hemorrhage", "treatment_related", "other")


def _days(d: date) -> int:
    return (d - _EPOCH).days


def _segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows grouped by owner with ``counts`` rows each: (owner of each row, index within owner)."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(int(counts.sum())) - starts[owner]


def _choice(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws of the index of ``p`` (probabilities)."""
    return np.searchsorted(np.cumsum(p) / np.sum(p), rng.random(n), side="right").clip(0, len(p) - 1)


def _first_per_owner(owner: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """Row indices of the first flagged row of each owner (rows ordered by owner)."""
    prev = np.zeros_like(flag)
    prev[1:] = flag[:-1] & (owner[1:] == owner[:-1])
    return np.flatnonzero(flag & ~prev)


def _dates(days: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    arr = pa.array(days.astype(np.int32), mask=None if valid is None else ~valid)
    return arr.cast(pa.date32())


def _floats(x: np.ndarray, decimals: int, valid: np.ndarray | None = None) -> pa.Array:
    return pa.array(np.round(x, decimals), mask=None if valid is None else ~valid)


def _labels(labels: tuple[str, ...] | list[str], idx: np.ndarray) -> pa.Array:
    return pa.array(list(labels), pa.string()).take(pa.array(idx.astype(np.int64)))


def _table(name: str, cols: dict[str, pa.Array]) -> pa.Table:
    """Columns in the model's order (only the model's columns)."""
    order = [c for c in TABLES_BY_NAME[name].column_names if c in cols]
    unknown = set(cols) - set(order)
    if unknown:
        raise AssertionError(f"{name}: not model columns {sorted(unknown)}")
    return pa.table({c: cols[c] for c in order})


# ---- regimens -------------------------------------------------------------------------------


def _frequency(schedule: str) -> str:
    first = re.split(r"[,\s]+", schedule.strip().lower())[0] if schedule.strip() else ""
    return first if first in FREQUENCIES else "qd"


def _days_per_cycle(schedule: str) -> tuple[int, int]:
    """Days given per 28-day cycle: all for a continuous drug, else ``N`` or ``N-M days``."""
    if "continuous" in schedule.lower() or not schedule.strip():
        return CYCLE_DAYS, CYCLE_DAYS
    m = re.search(r"(\d+)\s*(?:-\s*(\d+))?\s*days?", schedule)
    if not m:
        return 7, 7
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    return max(1, min(lo, CYCLE_DAYS)), max(1, min(hi, CYCLE_DAYS))


def _study(source: Path | None) -> StudyDefinition:
    from amlcohort.io.cohort import embedded_study_path
    from amlcohort.io.study import read_study

    folder = source or embedded_study_path()
    if folder.is_file():
        folder = folder.parent
    study, problems, exists = read_study(folder)
    if study is None or not exists:
        why = "; ".join(p.reason for p in problems if p.severity == "error") or "no study.yaml"
        raise ValueError(f"no usable study definition in {folder}: {why}")
    if not study.arms or any(not a.regimen for a in study.arms):
        raise ValueError(f"the study definition in {folder} must declare arms with regimens to synthesise")
    return study


# ---- one chunk of patients ------------------------------------------------------------------


def _chunk(
    rng: np.random.Generator, ids: pa.Array, arms: tuple[Arm, ...], study: StudyDefinition
) -> dict[str, pa.Table]:
    n = len(ids)
    cutoff = _days(CUTOFF)
    # -- patients
    arm = rng.integers(0, len(arms), n)
    male = rng.random(n) < 0.56
    age = np.clip(np.round(rng.normal(64, 14, n)), 18, 95).astype(np.int64)
    cat = _choice(rng, np.array([c[1] for c in CATEGORIES]), n)
    first_dose = rng.integers(_days(FIRST_DOSE_FROM), _days(FIRST_DOSE_TO) + 1, n)
    diagnosis = first_dose - rng.integers(7, 36, n)
    karyotypes = [c[2].format(sx=sx) for c in CATEGORIES for sx in ("XX", "XY")]
    kind = np.array([c[3] for c in CATEGORIES])[cat]
    # -- mutations (one row per gene tested)
    flt3 = rng.random(n) < np.where(kind == "npm1", 0.35, 0.15)
    asxl1 = rng.random(n) < np.where(kind == "adverse", 0.25, 0.08)
    complex_k = np.char.find(np.array([c[2] for c in CATEGORIES])[cat], "-17") >= 0
    tp53 = rng.random(n) < np.where(complex_k, 0.5, 0.03)
    mutated = np.stack(
        [
            flt3,
            kind == "npm1",
            kind == "cebpa",
            np.array(["mutated RUNX1" in c[0] for c in CATEGORIES])[cat],
            asxl1,
            tp53,
        ],
        axis=1,
    )
    # -- reported risk (ELN-like): favourable CBF/CEBPA/NPM1 without FLT3-ITD; adverse karyotype,
    #    RUNX1/ASXL1/TP53 (unless favourable); the rest intermediate
    favorable = (kind == "favorable") | (kind == "cebpa") | ((kind == "npm1") & ~flt3)
    adverse = ~favorable & ((kind == "adverse") | asxl1 | tp53)
    risk = np.where(favorable, 0, np.where(adverse, 2, 1))
    ecog = _choice(rng, np.array([0.3, 0.4, 0.2, 0.1]), n)
    elderly_unfit = (age >= 75) & (ecog >= 2)
    height = np.where(male, rng.normal(175, 7, n), rng.normal(162, 6.5, n)).clip(140, 205)
    weight = (height / 100) ** 2 * rng.normal(25.5, 4, n).clip(17, 45)
    # -- course (days since the first dose; day 0 = the first-dose date)
    p_cr = np.array([P_CR[r] for r in RISKS])[risk] - np.where(age >= 75, 0.15, 0.0)
    plan_cr = rng.random(n) < p_cr
    cr_target = rng.integers(21, 100, n)
    relapse_target = cr_target + 30 + rng.exponential(420, n).astype(np.int64)
    plan_relapse = plan_cr & (rng.random(n) < np.array([0.35, 0.5, 0.65])[risk])
    death = np.where(
        plan_cr,
        np.where(
            plan_relapse, relapse_target + rng.exponential(260, n), cr_target + rng.exponential(2500, n)
        ),
        10 + rng.exponential(200, n),
    ).astype(np.int64)
    # at least one response assessment (the first visit is by day 14) before death
    death = np.maximum(death, 15)
    to_cutoff = cutoff - first_dose
    dies = death <= to_cutoff
    last_day = np.where(dies, death - 1, to_cutoff)  # last day an assessment may have
    # -- visits: a baseline, then gaps of 7-14 days (first 6) and 7-28 days
    cap = last_day // 7 + 1
    owner, k = _segments(cap)
    gap = np.where(k < 6, rng.integers(7, 15, len(k)), rng.integers(7, 29, len(k)))
    cs = np.cumsum(gap)
    t = cs - (cs - gap)[np.cumsum(cap) - cap][owner]
    keep = t <= last_day[owner]
    owner, t = owner[keep], t[keep]
    # state per visit: 0 active, 1 remission, 2 relapse
    cr_rows = _first_per_owner(owner, plan_cr[owner] & (t >= cr_target[owner]))
    cr_day = np.full(n, -1)
    cr_day[owner[cr_rows]] = t[cr_rows]
    in_cr = cr_day >= 0
    rel_rows = _first_per_owner(owner, plan_relapse[owner] & in_cr[owner] & (t >= relapse_target[owner]))
    rel_day = np.full(n, -1)
    rel_day[owner[rel_rows]] = t[rel_rows]
    relapsed = rel_day >= 0
    state = np.where(in_cr[owner] & (t >= cr_day[owner]), 1, 0)
    state = np.where(relapsed[owner] & (t >= rel_day[owner]), 2, state)
    # prepend the baseline visit (1-5 days before day 1) of every patient
    base_t = -rng.integers(1, 6, n)
    owner = np.concatenate([np.arange(n), owner])
    t = np.concatenate([base_t, t])
    state = np.concatenate([np.zeros(n, np.int64), state])
    forced = np.zeros(len(t), bool)
    forced[:n] = True
    forced[n + cr_rows] = True
    forced[n + rel_rows] = True
    order = np.lexsort((t, owner))
    owner, t, state, forced = owner[order], t[order], state[order], forced[order]
    m = len(t)
    active, remission = state != 1, state == 1
    marrow = forced | (rng.random(m) < np.where(t <= 120, 0.3, 0.08))
    u = rng.random(m)
    blasts = np.where(
        state == 1, u * 4.9, np.where(state == 2, 6 + u * 64, np.where(t < 0, 20 + u * 70, 6 + u * 74))
    )
    spicules = np.where(remission, True, rng.random(m) < 0.95)
    pb = np.where(remission, 0.0, np.where(state == 2, 1 + rng.random(m) * 29, rng.random(m) * 40))
    anc = np.where(remission, rng.uniform(1.1, 6.0, m), rng.lognormal(np.log(0.4), 0.7, m).clip(0.01, 5))
    plt = np.where(remission, rng.uniform(100, 400, m), rng.lognormal(np.log(35), 0.7, m).clip(2, 300))
    wbc = np.where(remission, rng.uniform(3, 10, m), rng.lognormal(np.log(3), 1.0, m).clip(0.2, 150))
    hb = np.where(remission, rng.uniform(10, 15.5, m), rng.uniform(6.0, 11.0, m))
    chem = rng.random(m) < 0.7
    a_cols: dict[str, pa.Array] = {
        "patient_id": ids.take(pa.array(owner)),
        "assessment_date": _dates(first_dose[owner] + t),
        "marrow_blasts_pct": _floats(blasts, 1, marrow),
        "marrow_spicules": pa.array(spicules, mask=~marrow),
        "extramedullary_disease": pa.array(np.zeros(m, bool), mask=~marrow),
        "anc": _floats(anc, 2),
        "platelets": _floats(plt, 0),
        "wbc": _floats(wbc, 2),
        "hemoglobin": _floats(hb, 1),
        "peripheral_blasts_pct": _floats(pb, 0),
    }
    for col, value in BLOOD_LIMITS.items():
        a_cols[col] = pa.array(np.full(m, value))
    for col, limits, median, spread, dec in CHEMISTRY:
        a_cols[col] = _floats(rng.lognormal(np.log(median), spread, m), dec, chem)
        for lim, value in limits.items():
            a_cols[lim] = pa.array(np.full(m, value), mask=~chem)
    assessments = _table("assessments", a_cols)
    # -- transfusions: at active visits with low counts, not within 7 days before a remission visit
    nxt_remission = np.zeros(m, bool)
    nxt_remission[:-1] = remission[1:] & (owner[1:] == owner[:-1])
    may = active & ~nxt_remission & (t >= 0)
    plt_tx, rbc_tx = may & (plt < 20), may & (hb < 8)
    tx_rows = np.concatenate([np.flatnonzero(plt_tx), np.flatnonzero(rbc_tx)])
    product = np.concatenate([np.zeros(plt_tx.sum(), np.int64), np.ones(rbc_tx.sum(), np.int64)])
    o = np.lexsort((product, t[tx_rows], owner[tx_rows]))
    tx_rows, product = tx_rows[o], product[o]
    transfusions = _table(
        "transfusions",
        {
            "patient_id": ids.take(pa.array(owner[tx_rows])),
            "transfusion_date": _dates(first_dose[owner[tx_rows]] + t[tx_rows]),
            "product": _labels(("platelets", "rbc"), product),
            "units_given": pa.array(np.where(product == 1, 2, 1).astype(np.int64)),
        },
    )
    # -- exposures: 28-day cycles of every regimen drug until the treatment stops
    planned = np.where(plan_cr, 1 + rng.geometric(0.2, n), rng.integers(1, 4, n)).clip(1, 24)
    stop = np.minimum(planned * CYCLE_DAYS - 1, last_day)
    stop = np.where(relapsed, np.minimum(stop, rel_day), stop)
    reason = np.where(
        relapsed & (stop == rel_day),
        "relapse",
        np.where(
            stop == last_day,
            np.where(dies, "death", "ongoing"),
            np.where(in_cr | plan_cr, "planned_end", "no_response"),
        ),
    )
    cycles = stop // CYCLE_DAYS + 1
    e_parts = []
    for j, a in enumerate(arms):
        sel = np.flatnonzero(arm == j)
        for drug in a.regimen:
            lo, hi = _days_per_cycle(drug.schedule)
            po, c = _segments(cycles[sel])
            p = sel[po]
            start = c * CYCLE_DAYS
            end = np.minimum(start + rng.integers(lo, hi + 1, len(p)) - 1, stop[p])
            last = c == cycles[p] - 1
            why = np.where(last & (end == stop[p]), reason[p], "planned_end")
            e_parts.append((p, start, end, why, drug, c))
    e_owner = np.concatenate([x[0] for x in e_parts])
    e_start = np.concatenate([x[1] for x in e_parts])
    e_end = np.concatenate([x[2] for x in e_parts])
    e_why = np.concatenate([x[3] for x in e_parts])
    e_cycle = np.concatenate([x[5] for x in e_parts])
    e_drug = np.concatenate([np.full(len(x[0]), i) for i, x in enumerate(e_parts)])
    drugs = [x[4] for x in e_parts]
    o = np.lexsort((e_drug, e_start, e_owner))
    e_owner, e_start, e_end, e_why, e_cycle, e_drug = (
        v[o] for v in (e_owner, e_start, e_end, e_why, e_cycle, e_drug)
    )
    ongoing = e_why == "ongoing"
    reasons = sorted(set(e_why.tolist()))
    exposures = _table(
        "exposures",
        {
            "patient_id": ids.take(pa.array(e_owner)),
            "drug": _labels([d.drug for d in drugs], e_drug),
            "phase": _labels(("induction", "maintenance"), (e_cycle >= 2).astype(np.int64)),
            "dose": pa.array(np.array([float(d.dose or 1.0) for d in drugs])[e_drug]),
            "dose_unit": _labels([d.unit if d.unit in DOSE_UNITS else "units" for d in drugs], e_drug),
            "frequency": _labels([_frequency(d.schedule) for d in drugs], e_drug),
            "route": _labels([d.route if d.route in ROUTES else "oral" for d in drugs], e_drug),
            "start_date": _dates(first_dose[e_owner] + e_start),
            "end_date": _dates(first_dose[e_owner] + e_end, ~ongoing),
            "end_reason": _labels(reasons, np.searchsorted(reasons, e_why)),
        },
    )
    # -- adverse events while on treatment (and 30 days after), one per term and onset
    window = np.minimum(stop + 30, last_day)
    n_ae = rng.poisson(3.0, n)
    ae_owner, _ = _segments(n_ae)
    ae_onset = (rng.random(len(ae_owner)) * (window[ae_owner] + 1)).astype(np.int64)
    ae_term = _choice(rng, np.array([x[1] for x in AE_TERMS]), len(ae_owner))
    o = np.lexsort((ae_onset, ae_term, ae_owner))
    ae_owner, ae_onset, ae_term = ae_owner[o], ae_onset[o], ae_term[o]
    dup = np.zeros(len(o), bool)
    dup[1:] = (
        (ae_owner[1:] == ae_owner[:-1]) & (ae_term[1:] == ae_term[:-1]) & (ae_onset[1:] == ae_onset[:-1])
    )
    ae_owner, ae_onset, ae_term = ae_owner[~dup], ae_onset[~dup], ae_term[~dup]
    o = np.lexsort((ae_term, ae_onset, ae_owner))
    ae_owner, ae_onset, ae_term = ae_owner[o], ae_onset[o], ae_term[o]
    q = len(ae_owner)
    grade_p = np.cumsum(np.array([x[2] for x in AE_TERMS]), axis=1)[ae_term]
    grade = 1 + (rng.random(q)[:, None] > grade_p).sum(axis=1).clip(0, 3)
    ae_end = last_day[ae_owner]
    worst = np.minimum(ae_onset + rng.integers(0, 6, q), ae_end)
    resolved_day = ae_onset + rng.integers(2, 40, q)
    resolved = resolved_day <= ae_end
    outcome = np.where(resolved, 0, np.where(dies[ae_owner], 2, 1))
    adverse_events = _table(
        "adverse_events",
        {
            "patient_id": ids.take(pa.array(ae_owner)),
            "term": _labels([x[0] for x in AE_TERMS], ae_term),
            "onset_date": _dates(first_dose[ae_owner] + ae_onset),
            "worst_grade_date": _dates(first_dose[ae_owner] + worst),
            "resolution_date": _dates(first_dose[ae_owner] + resolved_day, resolved),
            "grade": pa.array(grade.astype(np.int64)),
            "ctcae_version": _labels((study.ctcae_version,), np.zeros(q, np.int64)),
            "action_taken": _labels(("none", "interrupted"), (grade >= 3).astype(np.int64)),
            "outcome": _labels(("recovered", "not_recovered", "unknown"), outcome),
        },
    )
    # -- events: CR (the CR visit), relapse (the relapse visit), death or last contact
    pid = np.arange(n)
    last_visit = np.full(n, -(10**6))
    np.maximum.at(last_visit, owner, t)
    last_seen = np.minimum(last_visit + rng.integers(0, 15, n), to_cutoff)
    cause = np.where(relapsed | ~in_cr, 0, 1 + _choice(rng, np.array([0.4, 0.1, 0.3, 0.2]), n))
    ev = [
        (pid[in_cr], 0, cr_day[in_cr], None),
        (pid[relapsed], 2, rel_day[relapsed], None),
        (pid[dies], 3, death[dies], cause[dies]),
        (pid[~dies], 4, last_seen[~dies], None),
    ]
    ev_owner = np.concatenate([x[0] for x in ev])
    ev_type = np.concatenate([np.full(len(x[0]), x[1]) for x in ev])
    ev_day = np.concatenate([x[2] for x in ev])
    ev_cause = np.concatenate([x[3] if x[3] is not None else np.full(len(x[0]), -1) for x in ev])
    o = np.lexsort((ev_type, ev_day, ev_owner))
    ev_owner, ev_type, ev_day, ev_cause = ev_owner[o], ev_type[o], ev_day[o], ev_cause[o]
    events = _table(
        "events",
        {
            "patient_id": ids.take(pa.array(ev_owner)),
            "event_type": _labels(("cr_reported", "hsct", "relapse", "death", "last_contact"), ev_type),
            "event_date": _dates(first_dose[ev_owner] + ev_day),
            "death_cause": pa.array(np.array(DEATH_CAUSES)[ev_cause.clip(0)], mask=ev_cause < 0),
        },
    )
    patients = _table(
        "patients",
        {
            "patient_id": ids,
            "sex": _labels(("female", "male"), male.astype(np.int64)),
            "age_at_onset": pa.array(age),
            "diagnosis_date": _dates(diagnosis),
            "who2016_category": _labels([c[0] for c in CATEGORIES], cat),
            "karyotype": _labels(karyotypes, 2 * cat + male),
            "ecog_ps": pa.array(ecog.astype(np.int64)),
            "study_arm": _labels([a.code for a in arms], arm),
            "risk_group_reported": _labels(RISKS, risk),
            "disease_status_reported": pa.array(
                np.where(elderly_unfit, "elderly_unfit", ""), mask=~elderly_unfit
            ),
            "height_cm": _floats(height, 0),
            "weight_kg": _floats(weight, 1),
        },
    )
    tested = rng.random((n, len(GENES))) > 0.03
    g_owner, g_gene = np.divmod(np.arange(n * len(GENES)), len(GENES))
    result = np.where(tested.ravel(), np.where(mutated.ravel(), 0, 1), 2)
    cebpa = (g_gene == GENES.index("CEBPA")) & (result == 0)
    mutations = _table(
        "mutations",
        {
            "patient_id": ids.take(pa.array(g_owner)),
            "gene": _labels(GENES, g_gene),
            "result": _labels(("mutated", "wild_type", "not_tested"), result),
            "cebpa_biallelic": pa.array(np.ones(len(g_gene), bool), mask=~cebpa),
            "cebpa_bzip_inframe": pa.array(np.ones(len(g_gene), bool), mask=~cebpa),
        },
    )
    return {
        "patients": patients,
        "mutations": mutations,
        "prior_therapies": _empty("prior_therapies"),
        "exposures": exposures,
        "assessments": assessments,
        "transfusions": transfusions,
        "adverse_events": adverse_events,
        "events": events,
    }


_ARROW = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "date": pa.date32(),
    "bool": pa.bool_(),
}


def _empty(name: str) -> pa.Table:
    cols = [c for c in TABLES_BY_NAME[name].columns if c.required]
    return pa.table({c.name: pa.array([], _ARROW[c.dtype]) for c in cols})


def _study_yaml(study: StudyDefinition, arms: tuple[Arm, ...], patients: int, seed: int) -> dict:
    out: dict = {
        "name": f"SYNTHETIC registry of {patients} patients (seed {seed}) - not real patients",
        "description": f"Synthetic data from 'amlcohort synth', arms and regimens of: {study.name}",
        "arms": [
            {
                "code": a.code,
                "label": a.label,
                "regimen": [
                    {
                        k: v
                        for k, v in (
                            ("drug", d.drug),
                            ("dose", d.dose),
                            ("unit", d.unit),
                            ("route", d.route),
                            ("schedule", d.schedule),
                        )
                        if v not in (None, "")
                    }
                    for d in a.regimen
                ],
            }
            for a in arms
        ],
        "response": {"criteria": study.criteria},
        "ctcae_version": study.ctcae_version,
    }
    if study.index_drug:
        out["index_drug"] = study.index_drug
    return out


def _units(tables: dict[str, pa.Table]) -> dict[str, str]:
    """The canonical unit of every written column that could be declared in another unit."""
    out: dict[str, str] = {}
    for name, table in tables.items():
        for c in TABLES_BY_NAME[name].columns:
            if c.name in table.column_names and c.units and c.unit:
                out[c.name] = c.unit
    return out


def write_synthetic_bundle(
    out: Path,
    patients: int,
    *,
    seed: int = 1,
    fmt: str = "parquet",
    arms: tuple[str, ...] | None = None,
    source: Path | None = None,
) -> dict[str, int]:
    """Write a synthetic bundle of ``patients`` patients to ``out``; returns rows per table.

    ``source``: a folder with a ``study.yaml`` (default: the embedded study) whose arms and regimens
    are used; ``arms``: a subset of its arm codes.
    """
    if patients < 1:
        raise ValueError("patients must be at least 1")
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"format must be 'parquet' or 'csv', got {fmt!r}")
    study = _study(source)
    chosen = study.arms
    if arms:
        unknown = [a for a in arms if a not in study.arm_codes]
        if unknown:
            raise ValueError(
                f"arms {unknown} are not in the study definition; its arms: {list(study.arm_codes)}"
            )
        chosen = tuple(study.arm(a) for a in dict.fromkeys(arms))
    if study.index_drug:
        without = [a.code for a in chosen if study.index_drug not in a.drugs]
        if without:
            raise ValueError(
                f"arms {without} do not give the index drug {study.index_drug!r}: no study day 1"
            )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    width = len(str(patients))
    writers: dict[str, pq.ParquetWriter] = {}
    rows: dict[str, int] = {}
    units: dict[str, str] = {}
    try:
        for chunk_no, first in enumerate(range(0, patients, CHUNK_PATIENTS)):
            n = min(CHUNK_PATIENTS, patients - first)
            rng = np.random.default_rng([seed, chunk_no])
            ids = pa.array(
                np.char.add("S", np.char.zfill(np.arange(first + 1, first + n + 1).astype(str), width))
            )
            tables = _chunk(rng, ids.cast(pa.string()), chosen, study)
            units.update(_units(tables))
            for name, table in tables.items():
                rows[name] = rows.get(name, 0) + table.num_rows
                if fmt == "parquet":
                    if name not in writers:
                        writers[name] = pq.ParquetWriter(out / f"{name}.parquet", table.schema)
                    writers[name].write_table(table)
                else:
                    with (out / f"{name}.csv").open("ab" if first else "wb") as fh:
                        pacsv.write_csv(
                            table, fh, pacsv.WriteOptions(include_header=first == 0, quoting_style="needed")
                        )
    finally:
        for w in writers.values():
            w.close()
    meta = {
        "study_name": f"SYNTHETIC registry of {patients} patients (seed {seed}) - not real patients",
        "source": "synthetic: amlcohort synth (drawn from distributions; describes no real patient)",
        "reconstructed": True,
        "cutoff_date": CUTOFF,
        "description": (
            f"synthetic data: {patients} patients generated by 'amlcohort synth' (seed {seed}, arms "
            f"{', '.join(a.code for a in chosen)}) from distributions of diagnosis, genetics, response, "
            "relapse and survival. For scale tests and benchmarks only; describes no real patient."
        ),
        "units": units,
    }
    (out / "metadata.yaml").write_text(SYNTH_MARK + yaml.safe_dump(meta, sort_keys=False))
    (out / "study.yaml").write_text(
        SYNTH_MARK
        + yaml.safe_dump(_study_yaml(study, chosen, patients, seed), sort_keys=False, allow_unicode=True)
    )
    return rows


_TABLE_SUFFIXES = (".parquet", ".csv")


def _earlier_bundle(folder: Path) -> bool:
    """Whether ``folder`` holds a bundle this command wrote (its metadata.yaml starts with the mark)."""
    meta = folder / "metadata.yaml"
    try:
        with meta.open(encoding="utf-8") as fh:
            return fh.readline() == SYNTH_MARK
    except (OSError, UnicodeDecodeError):
        return False


def output_problem(out: Path) -> str | None:
    """Why ``out`` cannot take a synthetic bundle (None: it can): a file, or a folder with files
    that are not an earlier synthetic bundle (they would be overwritten or mixed in)."""
    if out.is_file():
        return f"{out} is a file; give a folder"
    if out.is_dir() and any(out.iterdir()) and not _earlier_bundle(out):
        return (f"{out} is not empty and is not a bundle written by 'amlcohort synth': its files would be "
                "overwritten or mixed in; give a new or empty folder")
    return None


def clear_earlier_bundle(out: Path) -> None:
    """Remove the tables and YAML files of an earlier synthetic bundle in ``out`` (another format's
    tables would be left beside the new ones, and the bundle refused as mixed)."""
    if not (out.is_dir() and _earlier_bundle(out)):
        return
    for f in out.iterdir():
        if f.is_file() and (f.suffix in _TABLE_SUFFIXES or f.name in ("metadata.yaml", "study.yaml")):
            f.unlink()


synth_app = typer.Typer(add_completion=False)


@synth_app.command("synth")
def synth_command(
    patients: int = typer.Option(..., "--patients", help="Number of synthetic patients."),
    out: Path = typer.Option(..., "--out", help="Folder to write the bundle to."),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed, same bundle)."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    arms: str = typer.Option(
        "", "--arms", help="Comma-separated arm codes (default: every arm of the study)."
    ),
    study: Path | None = typer.Option(
        None, "--study", help="Folder with the study.yaml whose arms and regimens to use (default: embedded)."
    ),
) -> None:
    """Write a SYNTHETIC cohort bundle (valid, seeded) for scale tests and benchmarks."""
    chosen = tuple(a.strip() for a in arms.split(",") if a.strip()) or None
    if arms.strip() and chosen is None:
        raise typer.BadParameter(f"no arm code in {arms!r}; leave --arms out for every arm of the study")
    problem = output_problem(out)
    if problem:
        raise typer.BadParameter(problem, param_hint="'--out'")
    try:
        clear_earlier_bundle(out)
        rows = write_synthetic_bundle(out, patients, seed=seed, fmt=fmt, arms=chosen, source=study)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    except OSError as err:
        raise typer.BadParameter(f"cannot write there: {err.strerror or err}", param_hint="'--out'") from None
    typer.echo(f"wrote a synthetic bundle to {out}: " + ", ".join(f"{k} {v}" for k, v in rows.items()))
