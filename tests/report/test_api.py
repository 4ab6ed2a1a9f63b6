"""The notebook API: the docs/notebook.md example runs, and its numbers equal the report's."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest

import amlcohort
from amlcohort import api

DOC = Path(__file__).resolve().parents[2] / "docs" / "notebook.md"


def test_notebook_example_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S).group(1)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        namespace: dict = {}
        exec(compile(code, str(DOC), "exec"), namespace)
    finally:
        os.chdir(cwd)
    assert (tmp_path / "os_by_cr.png").stat().st_size > 10_000
    assert namespace["best"].best_response.eq("cr").sum() == 5
    assert namespace["t1"].columns[0] == "Characteristic"


def test_api_equals_the_report(study):
    a = api.analysis(study)
    km = amlcohort.kaplan_meier(study, endpoint="OS", by="cr")
    s = km.summary().set_index("group")
    assert s.loc["CR", "median"] == a.figures["os.median_days.cr"] == 520
    assert s.loc["No CR", "median"] == a.figures["os.median_days.no_cr"] == 344
    # same CI transform as the report (log, R's survfit default)
    assert (s.loc["CR", "median_lower"], s.loc["CR", "median_upper"]) == tuple(
        a.figures["os.median_ci_days.by_cr"]["cr"]
    )
    lr = amlcohort.logrank(study, endpoint="OS", by="cr")
    assert lr.p_value == pytest.approx(a.figures["logrank.os_by_cr.p_value"], rel=1e-12) and lr.dof == 1
    by_arm = amlcohort.logrank(study, endpoint="OS", by="arm")
    assert by_arm.p_value == pytest.approx(a.figures["logrank.os_by_arm.p_value"], rel=1e-12)


def test_kaplan_meier_plot_has_number_at_risk(study):
    fit = amlcohort.kaplan_meier(study, endpoint="EFS", by="arm")
    fig = fit.plot()
    gids = {t.get_gid() for ax in fig.axes for t in ax.texts if t.get_gid()}
    assert any(g.startswith("risk:") for g in gids)
    # the number-at-risk times (and x ticks) by the report's rule, figures.risk_times
    from amlcohort.report.figures import risk_times
    from amlcohort.report.results import ALL

    arms = [km for g, km in fit.fits.items() if g != ALL]
    horizon = max(float(km.table.time.max()) for km in arms)
    expected = risk_times(horizon, max(km.n for km in arms))
    ax = next(a for a in fig.axes if a.get_gid() == "km_axes")
    assert list(ax.get_xticks()) == expected
    assert horizon == 1215.0 and expected[1] == 180.0  # follow-up of 720 to 1,800 days: every 180


def test_overall_fit_has_no_test(study):
    fit = amlcohort.kaplan_meier(study, endpoint="OS", by=None)
    assert list(fit.fits) == ["All patients"] and fit.logrank is None
    assert fit.fits["All patients"].n == 13


def test_bad_arguments_are_named(study):
    with pytest.raises(ValueError, match="endpoint"):
        amlcohort.kaplan_meier(study, endpoint="PFS")
    with pytest.raises(ValueError, match="by"):
        amlcohort.kaplan_meier(study, by="sex")


def test_responses_and_analysis_table(study):
    r = amlcohort.responses(study)
    assert {"patient_id", "assessment_date", "response", "rule_id"} <= set(r.columns)
    adtte = amlcohort.analysis_table(study)
    os_ = adtte[adtte.paramcd == "OS"]
    assert len(os_) == 13 and not math.isnan(os_.aval.sum())


def test_readme_notebook_example_runs():
    """The README's "In a notebook" example runs as printed and gives the report's numbers."""
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### In a notebook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["best"].best_response.eq("cr").sum() == 5
    report = api.analysis(namespace["cohort"]).figures
    assert namespace["test"].dof == 1
    assert namespace["test"].p_value == pytest.approx(report["logrank.os_by_arm.p_value"], rel=1e-12)
    assert namespace["km"].summary().set_index("group").loc["CR", "median"] == 520
