"""amlcohort synth: valid for any seed, seeded to the byte, consistent with the derivations, labelled.

The generator's events are checked against the response derivation (criteria/response.py, the
study's rule file), an implementation it does not share: every ``cr_reported`` event must fall on
the first assessment the rules call CR, every ``relapse`` on the first the rules call relapse.
"""

from __future__ import annotations

import csv
import datetime as dt

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from amlcohort import synth
from amlcohort.io.cohort import validate_bundle
from amlcohort.schema import TABLES
from amlcohort.synth import write_synthetic_bundle


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_thousand_patients_validate_without_error(tmp_path, seed):
    rows = write_synthetic_bundle(tmp_path / "b", 1000, seed=seed)
    report, cohort = validate_bundle(tmp_path / "b")
    assert report.ok, report.errors[:3]
    assert cohort is not None
    # the one warning: supportive care is not generated (absent = unknown, not "none given")
    assert {p.code for p in report.warnings} <= {"table.absent"}
    assert cohort.table("patients").count().to_pyarrow().as_py() == 1000 == rows["patients"]
    # about 40 assessments per patient (every 1-4 weeks until death or the cut-off)
    assert 30 <= rows["assessments"] / 1000 <= 55
    assert rows["mutations"] == 6000  # six genes per patient
    assert min(rows["exposures"], rows["transfusions"], rows["adverse_events"], rows["events"]) > 1000


def _q(folder, sql: str):
    con = duckdb.connect()
    for t in TABLES:
        path = folder / f"{t.name}.parquet"
        if path.exists():
            con.execute(f"CREATE VIEW {t.name} AS SELECT * FROM read_parquet('{path}')")
    return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "b"
    write_synthetic_bundle(out, 400, seed=11)
    return out


def test_allowed_values_and_limits_of_the_data_dictionary_hold(bundle):
    checked = 0
    for t in TABLES:
        if not (bundle / f"{t.name}.parquet").exists():
            continue
        present = set(pq.read_schema(bundle / f"{t.name}.parquet").names)
        for c in t.columns:
            if c.name not in present:
                continue
            checked += 1
            if c.allowed:
                listed = ", ".join(f"'{v}'" for v in c.allowed)
                bad = _q(bundle, f"SELECT count(*) FROM {t.name} WHERE {c.name} NOT IN ({listed})")
                assert bad == [(0,)], (t.name, c.name)
            for bound, op in ((c.hard_min, "<"), (c.hard_max, ">"), (c.soft_min, "<"), (c.soft_max, ">")):
                if bound is not None:
                    bad = _q(bundle, f"SELECT count(*) FROM {t.name} WHERE {c.name} {op} {bound}")
                    assert bad == [(0,)], (t.name, c.name, op, bound)
            if c.required:
                assert _q(bundle, f"SELECT count(*) FROM {t.name} WHERE {c.name} IS NULL") == [(0,)]
    assert checked >= 80  # every generated column of every table


def test_dates_in_clinical_order(bundle):
    cutoff = yaml.safe_load((bundle / "metadata.yaml").read_text())["cutoff_date"]
    assert cutoff == dt.date(2025, 6, 30)
    key = _q(
        bundle,
        """
        WITH d AS (SELECT p.patient_id, p.diagnosis_date AS dx,
                     (SELECT min(start_date) FROM exposures e WHERE e.patient_id = p.patient_id
                        AND e.drug = 'sorafenib') AS day1,
                     (SELECT min(event_date) FROM events v WHERE v.patient_id = p.patient_id
                        AND event_type = 'cr_reported') AS cr,
                     (SELECT min(event_date) FROM events v WHERE v.patient_id = p.patient_id
                        AND event_type = 'relapse') AS rel,
                     (SELECT min(event_date) FROM events v WHERE v.patient_id = p.patient_id
                        AND event_type = 'death') AS death,
                     (SELECT max(assessment_date) FROM assessments a
                        WHERE a.patient_id = p.patient_id) AS last_a,
                     (SELECT min(assessment_date) FROM assessments a
                        WHERE a.patient_id = p.patient_id) AS first_a,
                     (SELECT max(coalesce(end_date, start_date)) FROM exposures e
                        WHERE e.patient_id = p.patient_id) AS last_dose
                   FROM patients p)
        SELECT count(*) FILTER (WHERE day1 IS NULL OR dx >= day1),
               count(*) FILTER (WHERE first_a >= day1 OR first_a < dx),
               count(*) FILTER (WHERE cr <= day1 OR rel <= cr OR (rel IS NOT NULL AND cr IS NULL)),
               count(*) FILTER (WHERE death <= last_a OR death <= rel OR death < last_dose),
               count(*) FILTER (WHERE greatest(last_a, death, last_dose) > DATE '2025-06-30'),
               count(*) FILTER (WHERE death IS NOT NULL),
               count(*) FILTER (WHERE cr IS NOT NULL),
               count(*)
        FROM d
        """,
    )
    day1, baseline, cr_relapse, after_death, after_cutoff, deaths, crs, n = key[0]
    assert (day1, baseline, cr_relapse, after_death, after_cutoff) == (0, 0, 0, 0, 0)
    assert n == 400 and 0.3 * n < crs < 0.8 * n and 0.4 * n < deaths < n
    # every alive patient has a last contact, no dead one has
    assert _q(
        bundle, "SELECT count(DISTINCT patient_id) FROM events WHERE event_type IN ('death', 'last_contact')"
    ) == [(400,)]
    rows = _q(
        bundle,
        "SELECT count(*) FROM adverse_events WHERE resolution_date < onset_date "
        "OR worst_grade_date < onset_date",
    )
    assert rows == [(0,)]
    # no transfusion in the 7 days before a remission marrow (transfusion independence for CR)
    bad = _q(
        bundle,
        """SELECT count(*) FROM events v JOIN transfusions t USING (patient_id)
           WHERE v.event_type = 'cr_reported'
             AND t.transfusion_date BETWEEN v.event_date - 7 AND v.event_date""",
    )
    assert bad == [(0,)]


def test_events_agree_with_the_response_derivation(bundle):
    from amlcohort.criteria import response as resp
    from amlcohort.io.cohort import load_cohort

    cohort = load_cohort(bundle)
    r = resp.derive(cohort, cohort.study.criteria)
    ev = cohort.table("events")
    for category, event in (("cr", "cr_reported"), ("relapse", "relapse")):
        derived = r.filter(r.response == category).group_by("patient_id").agg(d=r.assessment_date.min())
        reported = ev.filter(ev.event_type == event).select("patient_id", d2="event_date")
        a = {x["patient_id"]: x["d"] for x in derived.to_pyarrow().to_pylist()}
        b = {x["patient_id"]: x["d2"] for x in reported.to_pyarrow().to_pylist()}
        assert a == b and len(a) > 20, category
    best = resp.best_response(r).to_pyarrow().to_pylist()
    followed = _q(
        bundle,
        """SELECT count(DISTINCT a.patient_id) FROM assessments a JOIN
             (SELECT patient_id, min(start_date) AS day1 FROM exposures GROUP BY 1) USING (patient_id)
           WHERE a.assessment_date > day1""",
    )
    assert [(len(best),)] == followed == [(400,)]  # every patient has a response assessment


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    write_synthetic_bundle(tmp_path / "a", 120, seed=5)
    write_synthetic_bundle(tmp_path / "b", 120, seed=5)
    write_synthetic_bundle(tmp_path / "c", 120, seed=6)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert "study.yaml" in names and "assessments.parquet" in names
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    a, c = ((tmp_path / d / "assessments.parquet").read_bytes() for d in "ac")
    assert a != c
    meta = yaml.safe_load((tmp_path / "a" / "metadata.yaml").read_text())
    assert meta["reconstructed"] is True and "synthetic" in meta["description"]
    assert "SYNTHETIC" in yaml.safe_load((tmp_path / "a" / "study.yaml").read_text())["name"]


def test_chunks_join_seamlessly(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "CHUNK_PATIENTS", 70)
    rows = write_synthetic_bundle(tmp_path / "x", 150, seed=3)  # chunks of 70, 70, 10
    assert rows["patients"] == 150
    ids = _q(
        tmp_path / "x", "SELECT min(patient_id), max(patient_id), count(DISTINCT patient_id) FROM patients"
    )
    assert ids == [("S001", "S150", 150)]
    report, _ = validate_bundle(tmp_path / "x")
    assert report.ok, report.errors[:3]


def test_arms_parameter_and_csv(tmp_path):
    write_synthetic_bundle(tmp_path / "x", 30, seed=1, fmt="csv", arms=("sorafenib_alone",))
    text = (tmp_path / "x" / "patients.csv").read_text()
    assert text.count("sorafenib_alone") == 30 and "sorafenib_ldac" not in text
    with (tmp_path / "x" / "exposures.csv").open() as fh:
        drugs = {row["drug"] for row in csv.DictReader(fh)}
    assert drugs == {"sorafenib"}
    report, _ = validate_bundle(tmp_path / "x")
    assert report.ok, report.errors[:3]
    with pytest.raises(ValueError, match="not in the study definition"):
        write_synthetic_bundle(tmp_path / "y", 5, arms=("azacitidine_venetoclax",))


def test_arms_and_regimens_come_from_the_study_definition(tmp_path):
    study = tmp_path / "def"
    study.mkdir()
    (study / "study.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "Aza-Ven",
                "index_drug": "azacitidine",
                "arms": [
                    {
                        "code": "aza_ven",
                        "label": "Azacitidine + venetoclax",
                        "regimen": [
                            {
                                "drug": "azacitidine",
                                "dose": 75,
                                "unit": "mg/m2",
                                "route": "sc",
                                "schedule": "qd, 7 days",
                            },
                            {
                                "drug": "venetoclax",
                                "dose": 400,
                                "unit": "mg",
                                "route": "oral",
                                "schedule": "qd, continuous",
                            },
                        ],
                    },
                    {
                        "code": "aza",
                        "label": "Azacitidine",
                        "regimen": [
                            {
                                "drug": "azacitidine",
                                "dose": 75,
                                "unit": "mg/m2",
                                "route": "sc",
                                "schedule": "qd, 7 days",
                            }
                        ],
                    },
                ],
            }
        )
    )
    write_synthetic_bundle(tmp_path / "b", 200, seed=4, source=study)
    lengths = _q(
        tmp_path / "b",
        """SELECT p.study_arm, e.drug, e.dose, e.dose_unit, e.route, e.frequency,
                  max(e.end_date - e.start_date + 1)
           FROM exposures e JOIN patients p USING (patient_id) GROUP BY ALL ORDER BY ALL""",
    )
    assert lengths == [
        ("aza", "azacitidine", 75.0, "mg/m2", "sc", "qd", 7),
        ("aza_ven", "azacitidine", 75.0, "mg/m2", "sc", "qd", 7),
        ("aza_ven", "venetoclax", 400.0, "mg", "oral", "qd", 28),
    ]
    report, cohort = validate_bundle(tmp_path / "b")
    assert report.ok, report.errors[:3]
    assert cohort is not None and cohort.study.index_drug == "azacitidine"
    assert set(cohort.study.arm_codes) == {"aza", "aza_ven"}


def test_command_line_writes_and_refuses_unknown_arms_clearly(tmp_path):
    from typer.testing import CliRunner

    from amlcohort.synth import synth_app

    ok = CliRunner().invoke(synth_app, ["--patients", "12", "--out", str(tmp_path / "ok"), "--seed", "3"])
    assert ok.exit_code == 0, ok.output
    assert "patients 12," in ok.output and (tmp_path / "ok" / "assessments.parquet").exists()
    bad = CliRunner().invoke(synth_app, ["--patients", "5", "--out", str(tmp_path / "no"), "--arms", "nope"])
    assert bad.exit_code == 2 and "not in the study definition" in bad.output
    assert not (tmp_path / "no").exists()  # nothing written


def test_command_line_never_overwrites_what_it_did_not_write(tmp_path):
    """--out that is a file, or a folder with other files, is refused (one line, exit 2, nothing
    touched); a folder holding an earlier synthetic bundle is replaced whole, so another format
    leaves no tables of the first behind; an --arms with no code is refused."""
    from typer.testing import CliRunner

    from amlcohort import load_cohort
    from amlcohort.synth import synth_app

    def run(*args: str):  # wide enough that the error box does not wrap the message
        return CliRunner().invoke(synth_app, ["--patients", "4", *args], env={"COLUMNS": "400"})

    (tmp_path / "f.txt").write_text("mine")
    r = run("--out", str(tmp_path / "f.txt"))
    assert r.exit_code == 2 and "is a file" in r.output and (tmp_path / "f.txt").read_text() == "mine"
    user = tmp_path / "user"
    user.mkdir()
    (user / "patients.csv").write_text("keep")
    r = run("--out", str(user), "--format", "csv")
    assert r.exit_code == 2 and "not empty" in r.output
    assert [p.name for p in user.iterdir()] == ["patients.csv"]
    assert (user / "patients.csv").read_text() == "keep"
    again = tmp_path / "again"
    assert run("--out", str(again)).exit_code == 0
    assert run("--out", str(again), "--format", "csv").exit_code == 0
    assert not list(again.glob("*.parquet")) and (again / "patients.csv").exists()
    assert load_cohort(again).report.ok
    r = run("--out", str(tmp_path / "arms"), "--arms", ",")
    assert r.exit_code == 2 and "no arm code" in r.output and not (tmp_path / "arms").exists()
