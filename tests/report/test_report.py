"""The study report on the embedded cohort: results.json, the audit, the files, HTML in a browser, PDF."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from amlcohort.problems import InputError
from amlcohort.report.audit import Claim, audit, contradictions, judge, load_claims
from amlcohort.report.build import build_report
from amlcohort.report.html import CAPTIONS, TABLE_TITLES

# R 4.2.2: fisher.test(matrix(c(4, 1, 1, 7), 2))$p.value
R_FISHER_P = 0.03185703185703188


@pytest.fixture(scope="module")
def out(study, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report")
    build_report(study, d, pdf=True, png=True)
    return d


@pytest.fixture(scope="module")
def results(out) -> dict:
    return json.loads((out / "results.json").read_text())


def test_results_json_reproduces_the_paper(results):
    f = results["figures"]
    assert {a: (v["cr"], v["n"]) for a, v in f["cr.by_arm"].items()} == {
        "sorafenib_ldac": (4, 5),
        "sorafenib_alone": (1, 8),
    }
    assert f["fisher.p_value"] == pytest.approx(R_FISHER_P, rel=1e-9)
    assert f["os.median_days.by_cr"]["cr"] == 520 and f["os.median_days.by_cr"]["no_cr"] == 344
    assert f["logrank.os_by_cr.p_value"] > 0.05
    assert f["days_to_cr.median"] == 57
    assert f["followup.median_days"] > 11 * 30.4375
    assert results["reconstructed"] is True and results["cutoff_date"] == "2019-09-30"


def test_exact_intervals_and_chi_square_warning(results):
    f = results["figures"]
    # R: binom.test(4, 5)$conf.int = 0.2835821 0.9949492; binom.test(1, 8)$conf.int = 0.003159724 0.5265097
    assert f["cr.by_arm"]["sorafenib_ldac"]["ci95_exact"] == pytest.approx([0.2835821, 0.9949492], abs=1e-7)
    assert f["cr.by_arm"]["sorafenib_alone"]["ci95_exact"] == pytest.approx(
        [0.003159724, 0.5265097], abs=1e-7
    )
    # R: chisq.test(matrix(c(4,1,1,7),2))$p.value = 0.06462476; correct=FALSE: 0.01494343
    assert f["chisq.yates.p_value"] == pytest.approx(0.06462476, abs=1e-8)
    assert f["chisq.p_value"] == pytest.approx(0.01494343, abs=1e-8)
    assert any("expected counts are below 5" in w for w in f["chisq.warnings"])


def test_audit_finds_the_papers_discrepancies_by_computing(results):
    status = {k: v["status"] for k, v in results["audit"].items()}
    discrepant = {k for k, s in status.items() if s == "discrepant"}
    assert discrepant == {
        "baseline.female.n",  # "Seven ... female"; Table 1 lists six
        "prior.relapsed.n",  # "Four patients experienced relapses"; Table 1: five
        "prior.relapse_interval_months.range",  # "1 to 18 months"; Table 1: 2 to 18
        "prior.hsct.n",  # "Two patients had undergone SCT"; Table 1: three
        "efs_after_cr_months.range.results",  # results "3 to 25" vs abstract "2 to 20"
        "cr.patients_3_4.aged_over_70.n",  # patient 3 was 24 at onset
    }
    assert status["efs_after_cr_months.range"] == "reproduced"
    assert ["efs_after_cr_months.range", "efs_after_cr_months.range.results"] in results[
        "audit_contradictions"
    ]
    assert "not computed" not in status.values()
    assert sum(s == "not auditable" for s in status.values()) == 11


def test_every_output_is_written(out):
    for name in CAPTIONS:
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    for name in ("table1_baseline", "response_by_arm", "survival", "claims_audit", "protocol_deviations"):
        assert (out / "tables" / f"{name}.csv").stat().st_size > 0
    import openpyxl

    sheets = openpyxl.load_workbook(out / "tables.xlsx", read_only=True).sheetnames
    assert {"table1_baseline", "claims_audit", "adverse_events"} <= set(sheets)


def test_html_is_self_contained_with_every_figure_and_table(out):
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html and "<script" not in html
    for name in CAPTIONS:
        assert f'<figure id="{name}"><img src="data:image/svg+xml;base64,' in html
    for name in TABLE_TITLES:
        assert f'id="{name}"' in html
    assert "Reconstructed data" in html and "not a medical device" in html
    # the figures by CR status say what grouping by a later event does to the curves
    assert html.count("immortal-time bias") >= 2  # in both captions (and their alt text)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_renders_in_headless_chromium(out, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "SKIPPED: no Chromium found (.ci/run installs Debian's chromium); the HTML was not rendered"
        )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = (out / "report.html").resolve().as_uri()
    # Decoded images report their natural size in the live DOM: every figure must have loaded.
    probe = tmp_path / "probe.html"
    probe.write_text(
        (out / "report.html")
        .read_text()
        .replace("Content-Security-Policy", "x-csp-off")  # the report's CSP forbids this probe script
        .replace(
            "</body>",
            "<script>window.onload=()=>{document.title=[...document.images].map(i=>i.naturalWidth>0)"
            ".join(',')}</script></body>",
        )
    )
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", "--virtual-time-budget=5000", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    loaded = dom.split("<title>")[1].split("</title>")[0].split(",")
    n_figures = len(list((out / "figures").glob("*.svg")))
    assert n_figures == 8  # blasts x2, OS/EFS by CR, swimmer, AEs, OS/EFS by arm
    assert loaded == ["true"] * n_figures
    for name in (*CAPTIONS, *TABLE_TITLES):
        assert f'id="{name}"' in dom
    shot = tmp_path / "page.png"
    subprocess.run(
        [browser, *flags, "--window-size=1200,3000", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 50_000


def test_pdf_pages_read_back(out):
    from pypdf import PdfReader

    reader = PdfReader(out / "report.pdf")
    assert len(reader.pages) >= 8  # typeset A4: summary, tables, full-width figures
    first = reader.pages[0].extract_text()
    assert "not a medical device" in first and "RECONSTRUCTED" in first
    assert "Fisher" in first


@pytest.mark.parametrize(
    ("claim", "computed", "status"),
    [
        (Claim("x", "1", "s", 57, "equal"), 57.0, "reproduced"),
        (Claim("x", "1", "s", 57, "equal"), 58.0, "discrepant"),
        (Claim("x", "1", "s", 0.03, "equal"), 0.0319, "reproduced"),  # at the stated precision
        (Claim("x", "1", "s", 0.03, "equal"), 0.0351, "discrepant"),
        (Claim("x", "1", "s", 0.8, "equal", tolerance=0.0005), 0.8, "reproduced"),
        (Claim("x", "1", "s", [2, 20], "range"), [2.14, 19.8], "reproduced"),
        (Claim("x", "1", "s", [3, 25], "range"), [2.14, 19.8], "discrepant"),
        (
            Claim("x", "1", "s", ["2015-05-01", "2018-12-31"], "within"),
            ["2015-05-12", "2018-08-13"],
            "reproduced",
        ),
        (
            Claim("x", "1", "s", ["2015-05-01", "2018-12-31"], "within"),
            ["2015-04-30", "2018-08-13"],
            "discrepant",
        ),
        (Claim("x", "1", "s", 0.05, "gt"), 0.21, "reproduced"),
        (Claim("x", "1", "s", 0.05, "gt"), 0.05, "discrepant"),
        (Claim("x", "1", "s", 0.05, "lt"), 0.0319, "reproduced"),
        (Claim("x", "1", "s", 51, "literature"), None, "not auditable"),
        (Claim("x", "1", "s", 5, "equal"), None, "not computed"),
    ],
)
def test_judge(claim, computed, status):
    assert judge(claim, computed).status == status


def test_contradictions_are_pairs_about_one_figure():
    a = Claim("a", "Abstract", "s", [2, 20], "range", figure="f")
    b = Claim("b", "3.2", "s", [3, 25], "range", figure="f")
    verdicts = audit({"f": [2.1, 19.8]}, [a, b])
    assert [(x.claim.name, y.claim.name) for x, y in contradictions(verdicts)] == [("a", "b")]


def test_claims_file_errors_name_the_claim_and_field(tmp_path):
    p = tmp_path / "claims.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "claims": [
                    {"name": "a", "section": "1", "sentence": "s", "value": 1, "relation": "about"},
                    {"name": "b", "section": "1", "sentence": "s", "relation": "equal"},
                ]
            }
        )
    )
    with pytest.raises(InputError) as info:
        load_claims(p)
    got = {(e.row, e.column) for e in info.value.errors}
    assert got == {(1, "relation"), (2, "value")}


@pytest.mark.parametrize(
    ("fields", "column", "reason"),
    [
        ({"value": "40%", "relation": "equal"}, "value", "without the % sign"),
        ({"value": 0.05, "relation": "lt", "tolerance": -1}, "tolerance", "0 or more"),
        ({"value": 1, "relation": "equal", "tolerance": "small"}, "tolerance", "0 or more"),
        ({"value": "0.05", "relation": "lt"}, "value", "needs a number"),
        ({"value": True, "relation": "gt"}, "value", "needs a number"),
    ],
)
def test_claims_with_values_that_cannot_be_compared_are_refused(tmp_path, fields, column, reason):
    """A stated value written as text with a % sign, or a negative tolerance, would be compared
    as written and come out "discrepant" (or always "reproduced"): refused, naming the field."""
    p = tmp_path / "claims.yaml"
    p.write_text(yaml.safe_dump({"claims": [{"name": "cr.rate", "section": "3", "sentence": "s", **fields}]}))
    with pytest.raises(InputError) as info:
        load_claims(p)
    [e] = info.value.errors
    assert (e.row, e.column) == (1, column) and reason in e.reason
    ok = {"name": "cr.rate", "section": "3", "sentence": "s", "value": 0.4, "relation": "equal",
          "tolerance": 0}
    p.write_text(yaml.safe_dump({"claims": [ok]}))
    assert load_claims(p)[0].tolerance == 0


def test_the_study_claims_file_loads_and_names_are_unique():
    claims = load_claims()
    assert len(claims) >= 70
    assert len({c.name for c in claims}) == len(claims)


def test_generic_figures_carry_the_papers_specifics(results):
    """Paper-specific statements are audited through generic figures (per term, drug, patient)."""
    f = results["figures"]
    ppe = "ae.term.palmar_plantar_erythrodysesthesia_syndrome"
    assert f[f"{ppe}.first_onset_day"] == 54 and f[f"{ppe}.worst_grade"] == 3
    assert f[f"{ppe}.first.days_to_worst_grade"] == 7
    assert f[f"{ppe}.first.rechallenge_dose_fraction.sorafenib"] == 0.5
    assert f["exposure.sorafenib.starting_dose"] == 400 and f["exposure.cytarabine.starting_dose"] == 25
    ages = [f[f"patient.{p}.age_at_first_dose_lower_bound"] for p in ("P03", "P04")]
    assert ages[0] < 70 < ages[1]
    # the per-patient figures' note is written once, not once per patient
    per_patient = [k for k in results["notes"] if k.startswith("patient.")]
    assert per_patient == ["patient.<id>.age_at_first_dose_lower_bound"]
    assert sum(k.startswith("patient.") for k in f) == 13
    assert f["cr.neutropenia_days.min"] > 7
    assert f["protocol.rule.rbc_transfusion.transfuse_rbc.hemoglobin"] == 6
    assert results["not_estimable"] == {k: v for k, v in results["not_estimable"].items() if v}
    # 2 arms: the odds ratio and the one-sided test exist; the log-rank tests have 1 df
    assert f["fisher.odds_ratio"] is not None and f["logrank.os_by_arm.dof"] == 1


def test_claims_with_a_list_of_figures():
    c = Claim("x", "4", "s", 70, "gt", figure=["a", "b"])
    assert audit({"a": 71.0, "b": 72.0}, [c])[0].status == "reproduced"
    assert audit({"a": 24.6, "b": 72.0}, [c])[0].status == "discrepant"
    v = audit({"a": 71.0}, [c], {"b": "onset age missing"})[0]
    assert v.status == "not computed" and "onset age missing" in v.detail
