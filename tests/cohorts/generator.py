"""A seeded generator of invented cohort bundles (CSV + metadata.yaml, and study.yaml when declared).

Every patient is built so that its best response, its death and its adverse events are known by
construction (the spec says how many patients of each arm reach CR, CRh, die, ...), so the tests
can assert the report's numbers against what was put in, not against what the code computes.

Response by construction (marrow on study day 29 with spicules, no extramedullary disease, no
peripheral blasts, no transfusions):

* ``cr``:  marrow blasts 2 %, ANC 1.5 x10^9/L, platelets 150 x10^9/L;
* ``crh``: marrow blasts 2 %, ANC 0.7, platelets 70 (ELN 2022 CRh: ANC >= 0.5, platelets >= 50);
* ``nr``:  marrow blasts 45 % (baseline 40 %), ANC 0.3, platelets 15.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

D = dt.date


@dataclass(frozen=True)
class Drug:
    drug: str
    dose: float
    unit: str
    frequency: str
    route: str
    days: int  # planned days of the first course


@dataclass(frozen=True)
class ArmSpec:
    code: str
    label: str
    drugs: tuple[Drug, ...]
    n: int
    cr: int = 0  # patients whose best response is CR
    crh: int = 0  # patients with CRh (ELN 2022 only; else they count as no response)
    deaths: int = 0  # patients who die (non-CR patients die first)


@dataclass(frozen=True)
class CohortSpec:
    name: str
    arms: tuple[ArmSpec, ...]
    seed: int = 1
    criteria: str | None = None  # study.yaml response.criteria (None: no study.yaml key)
    ctcae_version: str | None = None
    index_drug: str | None = None
    declare_study: bool = True
    ae_terms: tuple[tuple[str, int], ...] = (("Febrile neutropenia", 3), ("Diarrhea", 1))
    ae_version: str = "5.0"
    drop_marrow: bool = False
    empty_tables: tuple[str, ...] = ()
    cutoff: dt.date = dt.date(2024, 6, 30)
    expect: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return sum(a.n for a in self.arms)


SORAFENIB = Drug("sorafenib", 400, "mg", "bid", "oral", 60)
LDAC = Drug("cytarabine", 20, "mg/m2", "bid", "sc", 10)
AZA = Drug("azacitidine", 75, "mg/m2", "qd", "sc", 7)
VEN = Drug("venetoclax", 400, "mg", "qd", "oral", 28)


COLUMNS = {
    "patients": [
        "patient_id",
        "sex",
        "age_at_onset",
        "diagnosis_date",
        "who2008_category",
        "karyotype",
        "ecog_ps",
        "study_arm",
        "risk_group_reported",
    ],
    "mutations": ["patient_id", "gene", "result"],
    "prior_therapies": [
        "patient_id",
        "line",
        "regimen",
        "agents",
        "therapy_type",
        "response",
        "cycles",
        "start_date",
        "end_date",
    ],
    "exposures": [
        "patient_id",
        "drug",
        "phase",
        "dose",
        "dose_unit",
        "frequency",
        "route",
        "start_date",
        "end_date",
        "end_reason",
    ],
    "assessments": [
        "patient_id",
        "assessment_date",
        "marrow_blasts_pct",
        "marrow_spicules",
        "extramedullary_disease",
        "anc",
        "platelets",
        "wbc",
        "hemoglobin",
        "peripheral_blasts_pct",
    ],
    "transfusions": ["patient_id", "transfusion_date", "product"],
    "supportive_care": ["patient_id", "category", "agent", "start_date"],
    "adverse_events": ["patient_id", "term", "onset_date", "grade", "ctcae_version", "worst_grade_date"],
    "events": ["patient_id", "event_type", "event_date", "death_cause"],
}


def _patients(spec: CohortSpec, rng: np.random.Generator) -> list[dict]:
    out = []
    i = 0
    for arm in spec.arms:
        for k in range(arm.n):
            i += 1
            status = "cr" if k < arm.cr else "crh" if k < arm.cr + arm.crh else "nr"
            # deaths: non-responders first (from the end of the arm's list), then responders
            dies = (arm.n - 1 - k) < arm.deaths
            out.append(
                {
                    "i": i,
                    "id": f"G{i:03d}",
                    "arm": arm,
                    "status": status,
                    "dies": dies,
                    "age": int(rng.integers(25, 85)),
                    "female": bool(rng.integers(0, 2)),
                }
            )
    return out


def write_bundle(spec: CohortSpec, folder: Path) -> Path:
    """Write the bundle of ``spec`` into ``folder`` (created) and return it."""
    rng = np.random.default_rng(spec.seed)
    folder.mkdir(parents=True, exist_ok=True)
    pts = _patients(spec, rng)
    rows: dict[str, list[dict]] = {
        t: []
        for t in (
            "patients",
            "mutations",
            "prior_therapies",
            "exposures",
            "assessments",
            "transfusions",
            "adverse_events",
            "events",
        )
    }
    for p in pts:
        pid, arm = p["id"], p["arm"]
        first = D(2020, 1, 6) + dt.timedelta(days=2 * p["i"])
        diag = first - dt.timedelta(days=int(rng.integers(60, 400)))
        rows["patients"].append(
            {
                "patient_id": pid,
                "sex": "female" if p["female"] else "male",
                "age_at_onset": p["age"],
                "diagnosis_date": diag,
                "who2008_category": "AML with maturation",
                "karyotype": "46,XY[20]",
                "ecog_ps": int(rng.integers(0, 3)),
                "study_arm": arm.code,
                "risk_group_reported": "intermediate",
            }
        )
        rows["mutations"].append({"patient_id": pid, "gene": "FLT3-ITD", "result": "wild_type"})
        rows["mutations"].append(
            {"patient_id": pid, "gene": "NPM1", "result": "not_tested" if p["i"] % 3 == 0 else "wild_type"}
        )
        rows["prior_therapies"].append(
            {
                "patient_id": pid,
                "line": 1,
                "regimen": "7+3",
                "agents": "daunorubicin;cytarabine",
                "therapy_type": "intensive_chemotherapy",
                "response": "refractory",
                "cycles": 1,
                "start_date": diag + dt.timedelta(days=5),
                "end_date": diag + dt.timedelta(days=11),
            }
        )
        death_day = (
            (40 + 7 * (p["i"] % 40) if p["status"] == "nr" else 300 + 7 * (p["i"] % 40))
            if p["dies"]
            else None
        )
        for drug in arm.drugs:
            days = drug.days if death_day is None else min(drug.days, death_day)  # no dose after death
            rows["exposures"].append(
                {
                    "patient_id": pid,
                    "drug": drug.drug,
                    "phase": "induction",
                    "dose": drug.dose,
                    "dose_unit": drug.unit,
                    "frequency": drug.frequency,
                    "route": drug.route,
                    "start_date": first,
                    "end_date": first + dt.timedelta(days=days - 1),
                    "end_reason": "planned_end",
                }
            )
        base = {
            "marrow_spicules": "true",
            "extramedullary_disease": "false",
            "wbc": 2.0,
            "hemoglobin": 9.0,
            "peripheral_blasts_pct": 0,
        }
        rows["assessments"].append(
            {
                "patient_id": pid,
                "assessment_date": first - dt.timedelta(days=2),
                **base,
                "marrow_blasts_pct": 40,
                "anc": 0.4,
                "platelets": 20,
                "peripheral_blasts_pct": 10,
            }
        )
        day29 = {"cr": (2, 1.5, 150), "crh": (2, 0.7, 70), "nr": (45, 0.3, 15)}[p["status"]]
        rows["assessments"].append(
            {
                "patient_id": pid,
                "assessment_date": first + dt.timedelta(days=28),
                **base,
                "marrow_blasts_pct": day29[0],
                "anc": day29[1],
                "platelets": day29[2],
            }
        )
        if p["status"] == "cr":
            rows["events"].append(
                {"patient_id": pid, "event_type": "cr_reported", "event_date": first + dt.timedelta(days=28)}
            )
        if p["dies"]:
            day = death_day
            rows["events"].append(
                {
                    "patient_id": pid,
                    "event_type": "death",
                    "event_date": first + dt.timedelta(days=day),
                    "death_cause": "leukemia",
                }
            )
        else:
            rows["events"].append(
                {
                    "patient_id": pid,
                    "event_type": "last_contact",
                    "event_date": spec.cutoff - dt.timedelta(days=p["i"]),
                }
            )
        for j, (term, grade) in enumerate(spec.ae_terms):
            if (p["i"] + j) % 2 == 0:
                onset = first + dt.timedelta(days=5 + 3 * j)
                rows["adverse_events"].append(
                    {
                        "patient_id": pid,
                        "term": term,
                        "onset_date": onset,
                        "grade": grade,
                        "ctcae_version": spec.ae_version,
                        "worst_grade_date": onset + dt.timedelta(days=1),
                    }
                )
    rows["supportive_care"] = []
    for name, data in rows.items():
        df = pd.DataFrame(data, columns=COLUMNS[name])
        if name in spec.empty_tables:
            df = df.iloc[0:0]
        if name == "assessments" and spec.drop_marrow:
            df = df.drop(columns=["marrow_blasts_pct", "marrow_spicules"])
        df.to_csv(folder / f"{name}.csv", index=False)
    meta = {
        "study_name": spec.name,
        "cutoff_date": spec.cutoff,
        "reconstructed": False,
        "units": {"anc": "10^9/L", "platelets": "10^9/L", "wbc": "10^9/L", "hemoglobin": "g/dL"},
    }
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    if spec.declare_study:
        study: dict = {
            "name": spec.name,
            "arms": [
                {
                    "code": a.code,
                    "label": a.label,
                    "regimen": [
                        {
                            "drug": d.drug,
                            "dose": d.dose,
                            "unit": d.unit,
                            "route": d.route,
                            "schedule": f"{d.frequency} days 1-{d.days}",
                        }
                        for d in a.drugs
                    ],
                }
                for a in spec.arms
            ],
        }
        if spec.index_drug:
            study["index_drug"] = spec.index_drug
        if spec.criteria:
            study["response"] = {"criteria": spec.criteria}
        if spec.ctcae_version:
            study["ctcae_version"] = spec.ctcae_version
        (folder / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False), encoding="utf-8")
    return folder


def _arm(
    code: str, label: str, drugs: tuple[Drug, ...], n: int, cr: int = 0, crh: int = 0, deaths: int = 0
) -> ArmSpec:
    return ArmSpec(code, label, drugs, n, cr, crh, deaths)


S_ALONE = ("sorafenib_alone", "Sorafenib alone", (SORAFENIB,))
S_LDAC = ("sorafenib_ldac", "Sorafenib + LDAC", (SORAFENIB, LDAC))
AZA_VEN = ("aza_ven", "Azacitidine + venetoclax", (AZA, VEN))

#: name -> spec; ``paper_model`` marks cohorts the pre-study-definition model can already load
COHORTS: dict[str, CohortSpec] = {
    "three_arms": CohortSpec(
        "Three arms",
        (
            _arm(*S_ALONE, n=6, cr=1, deaths=4),
            _arm(*S_LDAC, n=6, cr=3, deaths=3),
            _arm(*AZA_VEN, n=8, cr=6, deaths=2),
        ),
        seed=3,
        criteria="eln2022",
    ),
    "aza_ven_only": CohortSpec(
        "Azacitidine + venetoclax", (_arm(*AZA_VEN, n=10, cr=4, deaths=5),), seed=4, criteria="eln2022"
    ),
    "single_arm": CohortSpec("Single arm", (_arm(*S_ALONE, n=5, cr=2, deaths=3),), seed=5),
    "nobody_cr": CohortSpec(
        "Nobody in CR", (_arm(*S_ALONE, n=4, deaths=2), _arm(*S_LDAC, n=4, deaths=2)), seed=6
    ),
    "everybody_alive": CohortSpec(
        "Everybody alive", (_arm(*S_ALONE, n=4, cr=1), _arm(*S_LDAC, n=4, cr=3)), seed=7
    ),
    "one_patient": CohortSpec("One patient", (_arm(*S_LDAC, n=1, cr=1),), seed=8),
    "eln2022_crh": CohortSpec(
        "ELN 2022 with CRh", (_arm(*AZA_VEN, n=9, cr=3, crh=2, deaths=4),), seed=9, criteria="eln2022"
    ),
    "ctcae5": CohortSpec(
        "CTCAE v5.0 adverse events",
        (_arm(*S_ALONE, n=4, cr=1, deaths=2), _arm(*S_LDAC, n=4, cr=2, deaths=1)),
        seed=10,
        ctcae_version="5.0",
        ae_terms=(
            ("Febrile neutropenia", 3),
            ("Palmar-plantar erythrodysesthesia syndrome", 2),
            ("Hypertension", 2),
        ),
    ),
    "two_hundred": CohortSpec(
        "200 patients",
        (
            _arm(*S_ALONE, n=70, cr=14, deaths=50),
            _arm(*S_LDAC, n=60, cr=27, deaths=30),
            _arm(*AZA_VEN, n=70, cr=35, deaths=25),
        ),
        seed=11,
        criteria="eln2022",
    ),
    "no_marrow": CohortSpec(
        "No marrow data",
        (_arm(*S_ALONE, n=3, deaths=1), _arm(*S_LDAC, n=3, deaths=1)),
        seed=12,
        drop_marrow=True,
    ),
    "empty_ae_events": CohortSpec(
        "No adverse events, no events",
        (_arm(*S_ALONE, n=3, cr=1), _arm(*S_LDAC, n=3, cr=1)),
        seed=13,
        empty_tables=("adverse_events", "events"),
    ),
    "no_patients": CohortSpec("No patients", (_arm(*S_ALONE, n=0), _arm(*S_LDAC, n=0)), seed=14),
}

#: cohorts whose arms and drugs the model before the study definition already accepts
PAPER_MODEL = frozenset(
    {
        "single_arm",
        "nobody_cr",
        "everybody_alive",
        "one_patient",
        "ctcae5",
        "no_marrow",
        "empty_ae_events",
        "no_patients",
    }
)
