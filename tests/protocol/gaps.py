"""Edits of the embedded bundle that open the protocol gaps the audit and schedule must find.

The embedded cohort follows the surveillance and supportive-care protocol (only P09's stopping
rule is a deviation), so tests of missed assessments and thresholds remove records from a copy.
"""

from __future__ import annotations

import csv
from pathlib import Path

CHEMISTRY = (
    "alt",
    "alt_uln",
    "ast",
    "ast_uln",
    "bilirubin",
    "bilirubin_uln",
    "creatinine",
    "creatinine_uln",
    "potassium",
    "potassium_lln",
    "sodium",
    "sodium_lln",
    "calcium",
    "calcium_lln",
)
# (patient, date) -> what to do with the assessment row
ASSESSMENT_EDITS = {
    ("P01", "2016-08-01"): "blank_chemistry",
    ("P10", "2017-11-20"): "blank_chemistry",
    ("P06", "2017-07-01"): "drop",
    ("P06", "2017-07-31"): "drop",
}


def _edit(path: Path, keep) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header, rows = list(reader.fieldnames or []), list(reader)
    rows = [r for r in (keep(r) for r in rows) if r is not None]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, header, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def open_gaps(bundle: Path) -> Path:
    """Missed chemistry (P01 2016-08-01, P10 2017-11-20), two missed monthly counts after CR
    (P06 2017-07-01 and 07-31), and P09 without platelet transfusions or G-CSF."""

    def assessment(r):
        action = ASSESSMENT_EDITS.get((r["patient_id"], r["assessment_date"]))
        if action == "drop":
            return None
        if action == "blank_chemistry":
            r.update(dict.fromkeys(CHEMISTRY, ""))
        return r

    _edit(bundle / "assessments.csv", assessment)
    _edit(
        bundle / "transfusions.csv",
        lambda r: None if (r["patient_id"], r["product"]) == ("P09", "platelets") else r,
    )
    _edit(
        bundle / "supportive_care.csv",
        lambda r: None if (r["patient_id"], r["category"]) == ("P09", "g_csf") else r,
    )
    return bundle
