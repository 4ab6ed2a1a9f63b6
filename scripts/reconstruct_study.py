"""Write the embedded study bundle (src/amlcohort/data/study/): a RECONSTRUCTION.

Xu J. et al., Int J Clin Exp Med Sci 2019;5(6):92-97 publishes Table 1 per patient and the
rest only in aggregate. This script is the recipe of the reconstruction: the published
per-patient facts (Table 1) are copied; everything else is chosen so that every aggregate the
paper states holds (see ``claims.yaml`` and the tests), and every such column is marked
``reconstructed`` in ``metadata.yaml``. It is not the original records.

Run: ``.venv/bin/python scripts/reconstruct_study.py`` (a test checks the committed files are
what it writes). Study days below are *elapsed days* from the first sorafenib dose
(elapsed 0 = study day 1).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "amlcohort" / "data" / "study"
D = dt.date.fromisoformat


def day(first: dt.date, elapsed: int) -> str:
    return (first + dt.timedelta(days=elapsed)).isoformat()


# ---- Table 1, as published (karyotype written in ISCN from the published description) ------
PATIENTS = [
    # id, sex, onset age, WHO 2008 category, diagnosis text (Table 1), karyotype (ISCN), risk
    ("P01", "female", 49, "AML with maturation",
     "AML with maturation; adverse group with normal karyotype but ASXL1 mutation", "46,XX[20]", "adverse"),
    ("P02", "female", 52, "AML with maturation",
     "AML with maturation; adverse group with normal karyotype but ASXL1 mutation", "46,XX[20]", "adverse"),
    ("P03", "female", 24, "AML without maturation",
     "AML without maturation; favorable group with normal karyotype and biallelic mutated CEBPA",
     "46,XX[20]", "favorable"),
    ("P04", "male", 68, "AML with inv(3)(q21q26.2) or t(3;3)(q21;q26.2); RPN1-EVI1",
     "AML with inv (3) (q22; 26); adverse group with unfavorable karyotype", "46,XY,inv(3)(q21q26.2)[20]",
     "adverse"),
    ("P05", "male", 72, "AML with t(8;21)(q22;q22); RUNX1-RUNX1T1",
     "AML with t (8; 21) (q22; q22); favorable group with good karyotype", "46,XY,t(8;21)(q22;q22)[20]",
     "favorable"),
    ("P06", "female", 28, "AML with maturation",
     "AML with maturation; Intermediate group with normal karyotype", "46,XX[20]", "intermediate"),
    ("P07", "female", 20, "Acute erythroid leukemia",
     "Acute erythroid leukemia; Intermediate group with normal karyotype", "46,XX[20]", "intermediate"),
    ("P08", "female", 39, "Acute monoblastic/monocytic leukemia",
     "Acute monoblastic /monocytic leukemia; Intermediate group with +8", "47,XX,+8[20]", "intermediate"),
    ("P09", "male", 56, "Acute myelomonocytic leukemia",
     "Acute myelomonocytic leukemia; Intermediate group with normal karyotype", "46,XY[20]", "intermediate"),
    ("P10", "male", 19, "Acute monoblastic/monocytic leukemia",
     "Acute monoblastic/monocytic leukemia; Intermediate group with normal karyotype", "46,XY[20]",
     "intermediate"),
    ("P11", "male", 68, "AML without maturation",
     "AML without maturation; adverse group with normal karyotype but ASXL1 mutation", "46,XY[20]", "adverse"),
    ("P12", "male", 82, "AML without maturation",
     "AML without maturation; adverse group with normal karyotype but ASXL1 mutation", "46,XY[20]", "adverse"),
    ("P13", "male", 64, "Acute myelomonocytic leukemia",
     "Acute myelomonocytic leukemia; Adverse group with complex karyotype including - 7,+8,+8",
     "47,XY,-7,+8,+8[18]/46,XY[2]", "adverse"),
]

# ---- reconstructed per patient ---------------------------------------------------------------
# arm, first sorafenib dose, diagnosis date, ECOG, comorbidities, height, weight, status reported
COURSE = {
    "P01": ("sorafenib_alone", "2016-05-23", "2015-09-14", 1, "", 160, 55, "primary_refractory"),
    "P02": ("sorafenib_ldac", "2016-12-12", "2016-05-30", 1, "", 158, 57, "primary_refractory"),
    "P03": ("sorafenib_ldac", "2017-06-19", "2016-11-01", 1, "", 162, 52, "relapsed_refractory"),
    "P04": ("sorafenib_ldac", "2018-03-05", "2016-01-10", 1, "hypertension", 168, 64, "relapsed_refractory"),
    "P05": ("sorafenib_alone", "2015-11-16", "2015-06-08", 1, "", 166, 60, "primary_refractory"),
    "P06": ("sorafenib_ldac", "2017-03-06", "2016-09-19", 1, "", 159, 50, "primary_refractory"),
    "P07": ("sorafenib_alone", "2018-08-13", "2015-10-12", 1, "", 161, 49, "relapsed"),
    "P08": ("sorafenib_alone", "2016-02-22", "2013-05-06", 1, "", 157, 54, "relapsed_refractory"),
    "P09": ("sorafenib_alone", "2015-08-03", "2013-09-02", 1, "", 170, 66, "primary_refractory"),
    "P10": ("sorafenib_ldac", "2017-09-11", "2016-02-15", 1, "", 175, 63, "relapsed_refractory"),
    "P11": ("sorafenib_alone", "2018-05-07", "2018-04-23", 2, "mitral regurgitation; atrial fibrillation",
            167, 62, "elderly_unfit"),
    "P12": ("sorafenib_alone", "2015-05-12", "2015-04-27", 2, "", 163, 55, "elderly_unfit"),
    "P13": ("sorafenib_alone", "2016-09-05", "2016-08-22", 2, "severe pneumonia; liver cirrhosis", 169, 61,
            "elderly_unfit"),
}

# prior lines: (regimen as published, agents, type, cycles, start, end, response, cr date,
#               relapse date, relapse interval months as published, donor)
PRIOR = {
    "P01": [("Etoposide+pirarubicin+cytarabine", "etoposide;pirarubicin;cytarabine", "intensive_chemotherapy", 1,
             "2015-09-16", "2015-09-22", "refractory", None, None, None, None),
            ("Fludarabine+ high-dose cytarabine", "fludarabine;cytarabine", "intensive_chemotherapy", 1,
             "2015-10-26", "2015-10-30", "refractory", None, None, None, None)],
    "P02": [("Idarubicin+cytarabine for 2 rounds", "idarubicin;cytarabine", "intensive_chemotherapy", 2,
             "2016-06-01", "2016-08-10", "refractory", None, None, None, None)],
    "P03": [("Idarubicin+cytarabine", "idarubicin;cytarabine", "intensive_chemotherapy", 1,
             "2016-11-03", "2016-11-09", "cr", "2016-12-10", "2017-03-10", 3, None),
            ("Etoposide+mitoxantrone+cytarabine", "etoposide;mitoxantrone;cytarabine", "intensive_chemotherapy", 1,
             "2017-03-15", "2017-03-21", "refractory", None, None, None, None)],
    "P04": [("Homoharringtonine+cytarabine", "homoharringtonine;cytarabine", "intensive_chemotherapy", 1,
             "2016-01-12", "2016-01-18", "cr", "2016-02-25", "2017-02-25", 12, None),
            ("Pirarubicin+cytarabine", "pirarubicin;cytarabine", "intensive_chemotherapy", 1,
             "2016-03-21", "2016-03-27", "not_available", None, None, None, None),
            ("Idarubicin+cytarabine for 5 rounds", "idarubicin;cytarabine", "intensive_chemotherapy", 5,
             "2016-04-25", "2016-10-31", "not_available", None, None, None, None),
            ("Mitoxantrone+high-dose cytarabine", "mitoxantrone;cytarabine", "intensive_chemotherapy", 1,
             "2017-03-06", "2017-03-10", "refractory", None, None, None, None)],
    "P05": [("Low-dose cytarabine+ aclarubicin+G-CSF", "cytarabine;aclarubicin;G-CSF", "low_intensity_chemotherapy",
             1, "2015-06-10", "2015-06-23", "refractory", None, None, None, None),
            ("Idarubicin+cytarabine", "idarubicin;cytarabine", "intensive_chemotherapy", 1,
             "2015-07-27", "2015-08-02", "refractory", None, None, None, None)],
    "P06": [("Idarubicin+cytarabine", "idarubicin;cytarabine", "intensive_chemotherapy", 1,
             "2016-09-21", "2016-09-27", "refractory", None, None, None, None),
            ("Idarubicin+cytarabine", "idarubicin;cytarabine", "intensive_chemotherapy", 1,
             "2016-11-07", "2016-11-13", "refractory", None, None, None, None)],
    "P07": [("Daunarubicin+cytarabine", "daunorubicin;cytarabine", "intensive_chemotherapy", 1,
             "2015-10-14", "2015-10-20", "cr", "2015-11-20", "2016-12-20", 13, None),
            ("Homoharringtonine+mitoxantrone+ cytarabine for 2 rounds", "homoharringtonine;mitoxantrone;cytarabine",
             "intensive_chemotherapy", 2, "2015-12-21", "2016-03-02", "not_available", None, None, None, None),
            ("Low-dose cytarabine+ aclarubicin+G-CSF", "cytarabine;aclarubicin;G-CSF", "low_intensity_chemotherapy",
             1, "2016-12-26", "2017-01-08", "not_available", None, None, None, None),
            ("Mitoxantrone+high-dose cytarabine", "mitoxantrone;cytarabine", "intensive_chemotherapy", 1,
             "2017-02-13", "2017-02-17", "cr", "2017-03-20", None, None, None),
            ("HLA Haplo- identical stem-cell transplantation", "haploidentical HSCT", "hsct", 1,
             "2017-05-15", "2017-05-15", "cr", "2017-06-20", "2017-09-20", 3, "haploidentical")],
    "P08": [("Homoharringtonine+mitoxantrone+ cytarabine+donor lymphocyte transfusion",
             "homoharringtonine;mitoxantrone;cytarabine;donor lymphocytes", "intensive_chemotherapy", 1,
             "2013-05-08", "2013-05-20", "cr", "2013-06-17", "2014-12-17", 18, None),
            ("Daunarubicin+cytarabine for 4 rounds", "daunorubicin;cytarabine", "intensive_chemotherapy", 4,
             "2013-07-15", "2013-12-20", "not_available", None, None, None, None),
            ("Decitabine+ Low-dose cytarabine+ Homoharringtonine +G-CSF",
             "decitabine;cytarabine;homoharringtonine;G-CSF", "low_intensity_chemotherapy", 1,
             "2014-12-22", "2015-01-04", "not_available", None, None, None, None),
            ("Idarubicin+cytarabine for 2 rounds", "idarubicin;cytarabine", "intensive_chemotherapy", 2,
             "2015-02-02", "2015-04-10", "refractory", None, None, None, None)],
    "P09": [("Cladribine+Mitoxantrone+cytarabine", "cladribine;mitoxantrone;cytarabine", "intensive_chemotherapy", 1,
             "2013-09-04", "2013-09-10", "refractory", None, None, None, None),
            ("Decitabine+venetoclax", "decitabine;venetoclax", "low_intensity_chemotherapy", 1,
             "2013-10-14", "2013-11-08", "refractory", None, None, None, None),
            ("Decitabine+homoharringtonine +cytarabine", "decitabine;homoharringtonine;cytarabine",
             "low_intensity_chemotherapy", 1, "2013-11-25", "2013-12-08", "refractory", None, None, None, None),
            ("Daunarubicin+cytarabine for 2 rounds", "daunorubicin;cytarabine", "intensive_chemotherapy", 2,
             "2014-01-06", "2014-03-10", "refractory", None, None, None, None),
            ("Fludarabine+ high-dose cytarabine + G-CSF", "fludarabine;cytarabine;G-CSF", "intensive_chemotherapy",
             1, "2014-04-07", "2014-04-11", "refractory", None, None, None, None),
            ("Mitoxantrone+high-dose cytarabine", "mitoxantrone;cytarabine", "intensive_chemotherapy", 1,
             "2014-05-19", "2014-05-23", "refractory", None, None, None, None),
            ("Decitabine+ Low-dose cytarabine + cladribine + G- CSF", "decitabine;cytarabine;cladribine;G-CSF",
             "low_intensity_chemotherapy", 1, "2014-06-30", "2014-07-13", "refractory", None, None, None, None),
            ("HLA identical stem-cell transplantation", "HLA-identical HSCT", "hsct", 1,
             "2014-09-01", "2014-09-01", "refractory", None, None, None, "hla_identical"),
            ("Decitabine + Low-dose cytarabine + donor lymphocyte infusion",
             "decitabine;cytarabine;donor lymphocytes", "dli", 1, "2015-05-04", "2015-05-17", "refractory",
             None, None, None, None)],
    "P10": [("Cladribine+Mitoxantrone+cytarabine", "cladribine;mitoxantrone;cytarabine", "intensive_chemotherapy", 1,
             "2016-02-17", "2016-02-23", "cr", "2016-03-25", "2016-05-25", 2, None),
            ("Decitabine+ Low-dose cytarabine + cladribine + G- CSF", "decitabine;cytarabine;cladribine;G-CSF",
             "low_intensity_chemotherapy", 1, "2016-05-30", "2016-06-12", "refractory", None, None, None, None),
            ("HLA identical stem-cell transplantation", "HLA-identical HSCT", "hsct", 1,
             "2016-08-01", "2016-08-01", "cr", "2016-09-05", "2016-12-05", 3, "hla_identical"),
            ("Decitabine + Low-dose cytarabine + donor lymphocyte infusion",
             "decitabine;cytarabine;donor lymphocytes", "dli", 1, "2016-12-12", "2016-12-25", "refractory",
             None, None, None, None)],
}

ASXL1 = {"P01", "P02", "P11", "P12"}

# Marrow blasts % by elapsed day (baseline at -2). CR patients meet CR at `cr_day`.
# Non-CR patterns (Fig. 2): fall in week 1 not sustained (P02, P07, P09, P12), unchanged
# (P05, P13), rising after one week (P08, P11).
MARROW = {
    "P03": {-2: 45, 7: 22, 14: 9, 21: 4, 31: 2.5, 61: 2, 91: 3, 121: 28},
    "P04": {-2: 38, 7: 25, 14: 12, 21: 8, 28: 4.5, 45: 3, 75: 2.5, 110: 31},
    "P06": {-2: 62, 7: 40, 14: 20, 21: 11, 28: 7, 42: 4, 57: 3.5, 87: 2, 177: 2, 267: 3, 357: 2.5, 420: 2,
            660: 35},
    "P01": {-2: 30, 7: 18, 14: 12, 21: 9, 28: 6, 42: 4.2, 78: 2, 108: 1.5, 138: 1.5, 165: 1},
    "P10": {-2: 55, 7: 30, 14: 15, 21: 9.5, 28: 6, 42: 4, 70: 3.5, 100: 2, 130: 2, 220: 3, 310: 2.5, 435: 24},
    "P02": {-2: 48, 7: 30, 14: 45, 21: 52},
    "P07": {-2: 35, 7: 22, 14: 30, 21: 33, 28: 40},
    "P09": {-2: 60, 7: 41, 14: 58, 21: 66, 28: 70},
    "P12": {-2: 70, 7: 50, 14: 64, 21: 75},
    "P05": {-2: 40, 7: 41, 14: 40, 21: 39, 28: 41},
    "P13": {-2: 55, 7: 55, 14: 54, 21: 55, 28: 56},
    "P08": {-2: 30, 7: 42, 14: 55},
    "P11": {-2: 25, 7: 38, 14: 47},
}
CR_DAY = {"P03": 31, "P04": 45, "P06": 57, "P01": 78, "P10": 100}
# (ANC x10^9/L, platelets x10^9/L, hemoglobin g/dL) at the marrow days of CR patients; weekly
# counts in between are interpolated from these anchors by `counts()` below.
COUNT_ANCHORS = {
    "P03": {-2: (0.9, 40, 7.8), 7: (0.4, 25, 7.1), 14: (0.2, 18, 6.8), 21: (0.3, 35, 7.6), 28: (0.8, 70, 8.4),
            31: (1.6, 120, 9.2)},
    "P04": {-2: (1.1, 55, 8.5), 7: (0.6, 30, 7.9), 14: (0.3, 22, 7.2), 21: (0.4, 28, 7.5), 28: (0.6, 60, 8.0),
            35: (0.8, 80, 8.6), 42: (0.95, 96, 9.0), 45: (1.4, 105, 9.4)},
    "P06": {-2: (0.7, 30, 7.0), 7: (0.3, 18, 6.5), 14: (0.15, 12, 6.2), 21: (0.2, 15, 6.9), 28: (0.4, 30, 7.4),
            35: (0.6, 45, 7.9), 42: (0.8, 60, 8.3), 49: (0.9, 85, 8.8), 57: (1.3, 115, 9.6)},
    "P01": {-2: (1.2, 60, 8.8), 7: (0.7, 40, 8.0), 14: (0.4, 25, 7.4), 21: (0.3, 20, 7.0), 28: (0.45, 30, 7.3),
            35: (0.5, 38, 7.6), 42: (0.7, 55, 8.0), 56: (0.9, 75, 8.6), 70: (1.0, 92, 9.0), 78: (2.1, 150, 10.2)},
    "P10": {-2: (0.8, 35, 7.5), 7: (0.4, 20, 7.0), 14: (0.2, 14, 6.6), 21: (0.2, 16, 6.9), 28: (0.3, 22, 7.2),
            42: (0.4, 30, 7.6), 56: (0.7, 60, 8.2), 70: (1.0, 100, 8.9), 84: (1.0, 104, 9.1), 100: (1.2, 110, 9.8)},
}
NONCR_COUNTS = {  # baseline (ANC, platelets, Hb), roughly flat then falling with disease
    "P02": (0.6, 28, 7.2), "P07": (0.5, 22, 6.9), "P09": (0.4, 18, 6.5), "P12": (0.7, 30, 7.4),
    "P05": (0.8, 35, 7.8), "P13": (0.5, 20, 6.8), "P08": (0.6, 26, 7.0), "P11": (0.9, 32, 7.6),
}
# sorafenib periods: (phase, dose mg, frequency, start elapsed, end elapsed, end reason)
SORAFENIB = {
    "P03": [("induction", 400, "bid", 0, 30, "planned_end"), ("maintenance", 400, "bid", 31, 121, "relapse")],
    "P04": [("induction", 400, "bid", 0, 44, "planned_end"), ("maintenance", 400, "bid", 45, 60, "interruption"),
            ("maintenance", 200, "bid", 68, 69, "toxicity")],
    "P06": [("induction", 400, "bid", 0, 56, "planned_end"),
            ("maintenance", 400, "bid", 57, 422, "patient_decision")],
    "P01": [("induction", 400, "bid", 0, 25, "interruption"), ("induction", 400, "bid", 31, 77, "planned_end"),
            ("maintenance", 400, "bid", 78, 168, "hsct")],
    "P10": [("induction", 400, "bid", 0, 20, "dose_reduction"), ("induction", 200, "bid", 21, 99, "planned_end"),
            ("maintenance", 200, "bid", 100, 435, "relapse")],
    "P02": [("induction", 400, "bid", 0, 21, "stopping_rule")],
    "P07": [("induction", 400, "bid", 0, 28, "no_response")],
    "P09": [("induction", 400, "bid", 0, 34, "no_response")],
    "P12": [("induction", 400, "bid", 0, 21, "stopping_rule")],
    "P05": [("induction", 400, "bid", 0, 28, "no_response")],
    "P13": [("induction", 400, "bid", 0, 28, "no_response")],
    "P08": [("induction", 400, "bid", 0, 14, "stopping_rule")],
    "P11": [("induction", 400, "bid", 0, 14, "stopping_rule")],
}
LDAC_DAYS = {"P03": 14, "P04": 10, "P06": 12, "P10": 14, "P02": 10}  # 25 mg/m2 SC bid from day 1
# after-sorafenib course: relapse day, HSCT (day, donor), death (day, cause), last contact day
OUTCOME = {
    "P03": dict(relapse=121, death=(250, "infection")),
    "P04": dict(relapse=110, death=(130, "leukemia")),
    "P06": dict(relapse=660, death=(696, "leukemia")),
    "P01": dict(hsct=(169, "haploidentical"), last_contact=1215),
    "P10": dict(relapse=435, death=(520, "hemorrhage")),
    "P11": dict(death=(62, "leukemia")),
    "P13": dict(death=(95, "infection")),
    "P12": dict(death=(150, "leukemia")),
    "P08": dict(death=(330, "leukemia")),
    "P05": dict(death=(358, "leukemia")),
    "P02": dict(death=(455, "infection")),
    "P09": dict(death=(610, "leukemia")),
    "P07": dict(hsct=(92, "haploidentical"), last_contact=413),
}
# adverse events: (term, onset, worst, resolution, grade, action sorafenib, outcome, description)
AES = {
    "P06": [("Alanine aminotransferase increased", 7, 7, 21, 1, "none", "recovered",
             "Mild ALT elevation in the first week (grade 1).")],
    "P04": [("Palmar-plantar erythrodysesthesia syndrome", 54, 61, 67, 3, "interrupted", "recovered",
             "Hand-foot skin reaction from day 54, grade 3 within a week (peeling, pain limiting self-care); "
             "keratolytics, emollients, pyridoxine and celecoxib ineffective; sorafenib interrupted, "
             "tapered within 1 week."),
            ("Palmar-plantar erythrodysesthesia syndrome", 69, 69, 76, 2, "withdrawn", "recovered",
             "Recurred on re-administration at half dose; sorafenib withdrawn.")],
    "P01": [("Rash maculo-papular", 20, 24, 30, 2, "interrupted", "recovered",
             "Dermal lesion; resolved after temporary stop of sorafenib.")],
    "P10": [("Rash maculo-papular", 18, 20, 28, 2, "dose_reduced", "recovered",
             "Dermal lesion; resolved after dose reduction to 200 mg twice daily.")],
}
NEUTROPENIA = {"P03": (7, 27), "P04": (7, 44), "P06": (0, 56), "P01": (14, 77), "P10": (7, 99)}


def counts(pid: str, elapsed: int) -> tuple[float, float, float]:
    if pid in COUNT_ANCHORS:
        anchors = COUNT_ANCHORS[pid]
        keys = sorted(anchors)
        if elapsed in anchors:
            return anchors[elapsed]
        if elapsed > keys[-1]:
            return (2.4, 180, 11.5)  # recovered counts in remission
        lo = max(k for k in keys if k < elapsed)
        return anchors[lo]
    anc, plt, hb = NONCR_COUNTS[pid]
    f = max(0.5, 1 - elapsed / 60)
    return (round(anc * f, 2), round(plt * f), round(hb - elapsed / 30, 1))


def write(name: str, header: list[str], rows: list[list[object]]) -> None:
    with (OUT / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])


def main() -> None:  # a recipe, read top to bottom
    OUT.mkdir(parents=True, exist_ok=True)
    first = {pid: D(c[1]) for pid, c in COURSE.items()}

    write("patients", ["patient_id", "sex", "age_at_onset", "diagnosis_date", "who2008_category",
                       "diagnosis_text", "karyotype", "ecog_ps", "comorbidities", "study_arm",
                       "risk_group_reported", "disease_status_reported", "height_cm", "weight_kg"],
          [[pid, sex, age, COURSE[pid][2], who, text, kar, COURSE[pid][3], COURSE[pid][4] or None,
            COURSE[pid][0], risk, COURSE[pid][7], COURSE[pid][5], COURSE[pid][6]]
           for pid, sex, age, who, text, kar, risk in PATIENTS])

    mut_rows = []
    for pid, *_ in PATIENTS:
        mut_rows.append([pid, "FLT3-ITD", "wild_type", None, None, None])
        for gene in ("NPM1", "RUNX1", "TP53"):
            mut_rows.append([pid, gene, "wild_type", None, None, None])
        mut_rows.append([pid, "ASXL1", "mutated" if pid in ASXL1 else "wild_type", None, None, None])
        if pid == "P03":
            mut_rows.append([pid, "CEBPA", "mutated", "biallelic", "true", None])
        else:
            mut_rows.append([pid, "CEBPA", "wild_type", None, None, None])
    write("mutations", ["patient_id", "gene", "result", "variant", "cebpa_biallelic", "cebpa_bzip_inframe"],
          mut_rows)

    write("prior_therapies", ["patient_id", "line", "regimen", "agents", "therapy_type", "cycles", "start_date",
                              "end_date", "response", "cr_date", "relapsed", "relapse_date",
                              "relapse_interval_months", "hsct_donor"],
          [[pid, i, reg, agents, kind, cyc, s, e, resp, cr, "true" if rel else ("false" if resp == "cr" else None),
            rel, months, donor]
           for pid, lines in PRIOR.items()
           for i, (reg, agents, kind, cyc, s, e, resp, cr, rel, months, donor) in enumerate(lines, start=1)])

    ex_rows = []
    for pid, periods in SORAFENIB.items():
        for phase, dose, freq, s, e, why in periods:
            ex_rows.append([pid, "sorafenib", phase, dose, "mg", freq, "oral", day(first[pid], s),
                            day(first[pid], e), why])
        if pid in LDAC_DAYS:
            ex_rows.append([pid, "cytarabine", "induction", 25, "mg/m2", "bid", "sc", day(first[pid], 0),
                            day(first[pid], LDAC_DAYS[pid] - 1), "planned_end"])
    write("exposures", ["patient_id", "drug", "phase", "dose", "dose_unit", "frequency", "route", "start_date",
                        "end_date", "end_reason"], sorted(ex_rows))

    as_rows = []
    for pid in first:
        last = max(MARROW[pid])
        induction_end = min(last, CR_DAY.get(pid, last))
        weekly = set(range(0, induction_end + 1, 7))
        # after CR: blood counts every 30 days until relapse or HSCT (section 2.1 follow-up)
        follow_end = OUTCOME[pid].get("relapse", OUTCOME[pid].get("hsct", (0,))[0] if "hsct" in OUTCOME[pid] else 0)
        monthly = set(range(CR_DAY[pid] + 30, follow_end, 30)) if pid in CR_DAY else set()
        days = sorted(set(MARROW[pid]) | weekly | monthly)
        for d in days:
            blasts = MARROW[pid].get(d)
            anc, plt, hb = counts(pid, d)
            chem = d % 14 == 0 and d <= induction_end  # liver, kidney, electrolytes every other week
            alt = 62 if (pid == "P06" and d == 7) else 28
            as_rows.append([
                pid, day(first[pid], d), blasts, "true" if blasts is not None else None,
                "false" if blasts is not None else None, anc, plt, round(anc * 1.8 + 0.6, 1), hb,
                None if blasts is None else (0 if blasts < 5 else round(blasts / 3)),
                alt if chem or alt != 28 else None, 40 if chem or alt != 28 else None,
                24 if chem else None, 40 if chem else None, 12.0 if chem else None, 21.0 if chem else None,
                62 if chem else None, 97 if chem else None, 3.8 if chem else None, 3.5 if chem else None,
                138 if chem else None, 135 if chem else None, 2.25 if chem else None, 2.1 if chem else None])
    write("assessments", ["patient_id", "assessment_date", "marrow_blasts_pct", "marrow_spicules",
                          "extramedullary_disease", "anc", "platelets", "wbc", "hemoglobin",
                          "peripheral_blasts_pct", "alt", "alt_uln", "ast", "ast_uln", "bilirubin",
                          "bilirubin_uln", "creatinine", "creatinine_uln", "potassium", "potassium_lln",
                          "sodium", "sodium_lln", "calcium", "calcium_lln"], as_rows)

    tx_rows = []
    for pid in first:
        for r in as_rows:
            if r[0] != pid:
                continue
            d = (D(r[1]) - first[pid]).days
            for product, low in (("rbc", r[8] is not None and r[8] <= 6.0),
                                 ("platelets", r[6] is not None and r[6] < 20)):
                if low:  # section 2.1 thresholds: Hb <= 6 g/dL, platelets < 20 x10^9/L
                    tx_rows.append([pid, r[1], product, 2 if product == "rbc" else 1])
                    assert d < CR_DAY.get(pid, 10**6) - 7, (pid, d)
    write("transfusions", ["patient_id", "transfusion_date", "product", "units_given"], tx_rows)

    # G-CSF and antifungal prophylaxis while ANC < 1.0 x10^9/L during induction (section 2.1):
    # from the first low count on or after the first dose to the day before counts recover.
    sc_rows = []
    for pid in first:
        induction = [r for r in as_rows if r[0] == pid and r[5] is not None
                     and 0 <= (D(r[1]) - first[pid]).days <= max(CR_DAY.get(pid, 0), SORAFENIB[pid][0][4])]
        low = [r for r in induction if r[5] < 1.0]
        if not low:
            continue
        start = D(low[0][1])
        recovered = [r for r in induction if D(r[1]) > start and r[5] >= 1.0]
        end = (D(recovered[0][1]) - dt.timedelta(days=1)) if recovered else first[pid] + dt.timedelta(
            days=SORAFENIB[pid][0][4])
        antifungal = "posaconazole" if pid in CR_DAY else "voriconazole"
        sc_rows.append([pid, "g_csf", "filgrastim", start.isoformat(), end.isoformat()])
        sc_rows.append([pid, "antifungal_prophylaxis", antifungal, start.isoformat(), end.isoformat()])
    write("supportive_care", ["patient_id", "category", "agent", "start_date", "end_date"], sorted(sc_rows))

    ae_rows = []
    for pid, events in AES.items():
        for term, on, worst, res, grade, act, outcome, desc in events:
            ae_rows.append([pid, term, day(first[pid], on), day(first[pid], worst), day(first[pid], res), grade,
                            "4.0", act, "" if act == "none" else "sorafenib", outcome, desc])
    for pid, (s, e) in NEUTROPENIA.items():
        ae_rows.append([pid, "Neutrophil count decreased", day(first[pid], s), day(first[pid], s + 7),
                        day(first[pid], e + 1), 4 if pid in ("P06", "P10") else 3, "4.0", "none", "", "recovered",
                        "Neutropenia lasting more than 7 days during induction; no fatal infection."])
    write("adverse_events", ["patient_id", "term", "onset_date", "worst_grade_date", "resolution_date", "grade",
                             "ctcae_version", "action_taken", "action_drug", "outcome", "description"],
          sorted(ae_rows))

    ev_rows = []
    for pid, o in OUTCOME.items():
        f = first[pid]
        if pid in CR_DAY:
            ev_rows.append([pid, "cr_reported", day(f, CR_DAY[pid]), None, None, "CR as reported by the centre"])
        if "relapse" in o:
            ev_rows.append([pid, "relapse", day(f, o["relapse"]), None, None, "hematologic relapse"])
        if "hsct" in o:
            ev_rows.append([pid, "hsct", day(f, o["hsct"][0]), o["hsct"][1], None, "allogeneic HSCT"])
        if "death" in o:
            ev_rows.append([pid, "death", day(f, o["death"][0]), None, o["death"][1], None])
        if "last_contact" in o:
            ev_rows.append([pid, "last_contact", day(f, o["last_contact"]), None, None, "alive"])
    write("events", ["patient_id", "event_type", "event_date", "hsct_donor", "death_cause", "description"],
          sorted(ev_rows))


if __name__ == "__main__":
    main()
