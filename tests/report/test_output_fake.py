"""A small, fast stand-in for an assembled report (no cohort, no derivations) for the output tests.

It has what ``write_report`` reads: ``analysis`` (``cohort.metadata``, ``cohort.study``, ``criteria``,
``results_json()``), ``tables``, ``figures`` (real matplotlib figures), ``verdicts`` and ``protocol``.
Text fields carry the payloads the tests need (formulas, HTML/JS, mathtext, Typst markup).
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pandas as pd

from amlcohort.report import figures as fig
from amlcohort.report.build import Report
from amlcohort.schema.study import Arm, StudyDefinition

FORMULA = '=HYPERLINK("http://x.invalid","y")'
HTML_TERM = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
HTML_ID = '"><svg onload=alert(2)><b>P'
MATH_ID = r"$\alpha$-02"
TYPST_TEXT = '#panic("typst code ran") *bold* $x^2$ <label> @ref [link]'
STUDY_NAME = "Invented cohort: azacitidine + venetoclax vs 7+3"


def make_report(
    *,
    tag: str = "run A",
    long_text: int = 0,
    extra_table: bool = False,
    missing_figure: bool = False,
    rows: int = 4,
) -> Report:
    metadata = SimpleNamespace(
        study_name=STUDY_NAME, cutoff_date=dt.date(2024, 6, 30), reconstructed=False, source=""
    )
    study = StudyDefinition(
        name=STUDY_NAME,
        arms=(Arm("aza_ven", "Azacitidine + venetoclax"), Arm("ida_ara", "7+3")),
        criteria="eln2022",
        ctcae_version="5.0",
    )
    cohort = SimpleNamespace(metadata=metadata, study=study)
    figures_json = {
        "cohort.n_patients": 4,
        "cr.by_arm": {"aza_ven": {"cr": 1, "n": 2}, "ida_ara": {"cr": 0, "n": 2}},
        "fisher.p_value": 1.0,
        "days_to_cr.median": 30,
        "days_to_cr.range": [30, 30],
        "os.median_days.by_cr": {"cr": None, "no_cr": 100},
        "logrank.os_by_cr.p_value": None,
        "followup.median_days": 200,
        "ae.terms": [FORMULA, HTML_TERM],
    }
    results = {
        "study": STUDY_NAME,
        "cutoff_date": "2024-06-30",
        "reconstructed": False,
        "criteria": "eln2022",
        "tag": tag,
        "figures": figures_json,
        "notes": {"logrank.os_by_cr.p_value": "no events in one group"},
    }
    analysis = SimpleNamespace(cohort=cohort, criteria="eln2022", results_json=lambda: dict(results))
    ids = ["P01", MATH_ID, HTML_ID, "P04"]
    terms = [FORMULA, HTML_TERM, "$$ rash", TYPST_TEXT]
    n = max(rows, 4)
    table = pd.DataFrame(
        {
            "Patient": [ids[i % 4] for i in range(n)],
            "Term": [terms[i % 4] for i in range(n)],
            "Grade": [(i % 5) + 1 for i in range(n)],
            "Change": [-1.5, 2.0, float("nan"), -3.0] * (n // 4) + [0.0] * (n % 4),
            "Run": [tag] * n,
        }
    )
    if long_text:
        table.loc[0, "Term"] = "x" * long_text
    tables = {
        "adverse_events": table,
        "table1_baseline": pd.DataFrame({"Characteristic": ["Female"], "All (n=4)": ["2 (50%)"]}),
    }
    if extra_table:
        tables["extra_only_in_this_run"] = pd.DataFrame({"a": [1]})
    blasts = pd.DataFrame(
        {
            "patient_id": [i for i in ids for _ in range(3)],
            "study_day": [-1, 15, 29] * 4,
            "marrow_blasts_pct": [40, 20, 4, 50, 30, 20, 60, 50, 45, 30, 10, 3],
        }
    )
    ae = pd.DataFrame({"term": terms, "grade": [1, 2, 3, 4], "n_patients": [1, 2, 1, 1]})
    figures = {
        "figure1_blasts_cr": fig.blast_trajectories(blasts, title="Marrow blasts"),
        "figure6_adverse_events": None if missing_figure else fig.bar_by_grade(ae, n_total=4),
    }
    return Report(analysis, tables, figures, [], None)  # type: ignore[arg-type]
