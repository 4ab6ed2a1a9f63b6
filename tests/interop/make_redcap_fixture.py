"""Write the REDCap export of the embedded study used by tests/interop (run from the repository root):

    .venv/bin/python tests/interop/make_redcap_fixture.py

It lays the embedded bundle out as a longitudinal REDCap project would export it:

* events ``screening_arm_1`` (patients; mutations, prior therapies and pre-dose assessments as
  repeating instruments), ``treatment_arm_1`` (exposures, post-dose assessments, transfusions,
  supportive care, adverse events: repeating) and ``follow_up_arm_1`` (clinical events: repeating);
* the data dictionary is amlcohort's own (``model_dictionary``), except that comorbidities are a
  checkbox field (``pt_comorbidities___1`` ...) with one option per comorbidity in the data;
* ``records.csv`` holds raw codes, ``records_labels.csv`` the same export with labels
  (dropdown labels, Yes/No, Checked/Unchecked); ``mapping.yaml`` is ``model_mapping`` with the
  checkbox and the embedded metadata; ``instrument_designations.csv`` maps instruments to events.

The files are committed; ``test_redcap.py`` checks this script still writes them.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from amlcohort import load_cohort
from amlcohort.interop.redcap import (
    DICTIONARY_HEADER,
    RECORD_ID,
    field_name,
    model_dictionary,
    model_mapping,
    write_csv,
)
from amlcohort.io.cohort import embedded_study_path
from amlcohort.schema import TABLES

HERE = Path(__file__).parent / "fixtures" / "redcap_study"
SCREENING, TREATMENT, FOLLOW_UP = "screening_arm_1", "treatment_arm_1", "follow_up_arm_1"
EVENT_OF = {
    "patients": SCREENING,
    "mutations": SCREENING,
    "prior_therapies": SCREENING,
    "exposures": TREATMENT,
    "transfusions": TREATMENT,
    "supportive_care": TREATMENT,
    "adverse_events": TREATMENT,
    "events": FOLLOW_UP,
}
COMORBIDITY = "pt_comorbidities"


def _read(name: str) -> list[dict[str, str]]:
    path = embedded_study_path() / f"{name}.csv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _first_doses() -> dict[str, str]:
    """Study day 1 per patient, as the embedded cohort defines it (pre-dose assessments go to screening)."""
    rows = load_cohort().first_dose().to_pyarrow().to_pylist()
    return {r["patient_id"]: r["first_dose"].isoformat() for r in rows if r["first_dose"] is not None}


def _study() -> dict[str, Any] | None:
    """The embedded study definition (study.yaml) without the files an import does not carry."""
    path = embedded_study_path() / "study.yaml"
    if not path.exists():
        return None
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {k: v for k, v in doc.items() if k not in ("protocol", "claims", "population")}


def build() -> dict[str, Any]:
    data = {t.name: _read(t.name) for t in TABLES}
    items: list[str] = []
    for p in data["patients"]:
        for item in (p.get("comorbidities") or "").split(";"):
            if item.strip() and item.strip() not in items:
                items.append(item.strip())
    dictionary = model_dictionary()
    for row in dictionary:
        if row["Variable / Field Name"] == COMORBIDITY:
            row["Field Type"] = "checkbox"
            row["Choices, Calculations, OR Slider Labels"] = " | ".join(
                f"{i}, {v}" for i, v in enumerate(items, start=1)
            )
    fields = {r["Variable / Field Name"]: r for r in dictionary}
    first = _first_doses()

    header = [RECORD_ID, "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance"]
    for r in dictionary:
        name = r["Variable / Field Name"]
        if name == COMORBIDITY:
            header += [f"{name}___{i}" for i in range(1, len(items) + 1)]
        elif name != RECORD_ID:
            header.append(name)
    header += [f"{t.name}_complete" for t in TABLES]

    raw_rows: list[dict[str, str]] = []
    label_rows: list[dict[str, str]] = []

    def add(table: str, source: dict[str, str], event: str, instance: int | None) -> None:
        raw = {
            RECORD_ID: source["patient_id"],
            "redcap_event_name": event,
            "redcap_repeat_instrument": "" if instance is None else table,
            "redcap_repeat_instance": "" if instance is None else str(instance),
            f"{table}_complete": "2",
        }
        lab = dict(raw)
        model = next(t for t in TABLES if t.name == table)
        for col in model.columns:
            if col.name == "patient_id":
                continue
            name = field_name(table, col.name)
            value = source.get(col.name, "") or ""
            if name == COMORBIDITY:
                checked = {v.strip() for v in value.split(";") if v.strip()}
                for i, item in enumerate(items, start=1):
                    raw[f"{name}___{i}"] = "1" if item in checked else "0"
                    lab[f"{name}___{i}"] = "Checked" if item in checked else "Unchecked"
                continue
            f = fields[name]
            if f["Field Type"] == "dropdown" and value:
                codes = {
                    label: code
                    for code, _, label in (
                        c.strip().partition(", ")
                        for c in f["Choices, Calculations, OR Slider Labels"].split(" | ")
                    )
                }
                raw[name], lab[name] = codes[value], value
            elif f["Field Type"] == "yesno" and value:
                raw[name] = "1" if value.lower() == "true" else "0"
                lab[name] = "Yes" if value.lower() == "true" else "No"
            else:
                raw[name] = lab[name] = value
        raw_rows.append(raw)
        label_rows.append(lab)

    for p in data["patients"]:
        pid = p["patient_id"]
        add("patients", p, SCREENING, None)
        counters: dict[tuple[str, str], int] = {}
        for table in (
            "mutations",
            "prior_therapies",
            "assessments",
            "exposures",
            "transfusions",
            "supportive_care",
            "adverse_events",
            "events",
        ):
            for r in data[table]:
                if r["patient_id"] != pid:
                    continue
                if table == "assessments":
                    event = SCREENING if r["assessment_date"] <= first.get(pid, "9999") else TREATMENT
                else:
                    event = EVENT_OF[table]
                counters[(table, event)] = counters.get((table, event), 0) + 1
                add(table, r, event, counters[(table, event)])

    meta = yaml.safe_load((embedded_study_path() / "metadata.yaml").read_text(encoding="utf-8"))
    meta = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in meta.items()}
    mapping = model_mapping(meta)
    mapping["tables"]["patients"]["events"] = [SCREENING]
    mapping["tables"]["patients"]["columns"]["comorbidities"] = {"checkbox": COMORBIDITY}
    study = _study()
    if study:
        mapping["study"] = study
    designations = [
        {"arm_num": "1", "unique_event_name": event, "form": table}
        for table, event in [*EVENT_OF.items(), ("assessments", SCREENING), ("assessments", TREATMENT)]
    ]
    return {
        "dictionary": dictionary,
        "header": header,
        "raw": raw_rows,
        "labels": label_rows,
        "mapping": mapping,
        "designations": designations,
    }


def write(dest: Path = HERE) -> list[Path]:
    b = build()
    dest.mkdir(parents=True, exist_ok=True)
    out = [
        write_csv(b["dictionary"], dest / "dictionary.csv", DICTIONARY_HEADER),
        write_csv(
            [{k: r.get(k, "") for k in b["header"]} for r in b["raw"]], dest / "records.csv", b["header"]
        ),
        write_csv(
            [{k: r.get(k, "") for k in b["header"]} for r in b["labels"]],
            dest / "records_labels.csv",
            b["header"],
        ),
        write_csv(b["designations"], dest / "instrument_designations.csv"),
    ]
    mapping = dest / "mapping.yaml"
    mapping.write_text(
        "# Mapping of the embedded study's REDCap export (tests/interop/make_redcap_fixture.py)\n"
        + yaml.safe_dump(b["mapping"], sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    return [*out, mapping]


if __name__ == "__main__":
    for p in write():
        print(p)
