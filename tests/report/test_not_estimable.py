"""Every figure that is null in results.json has its reason in ``not_estimable`` (the documented rule),
in particular the log-rank figures of a test that is undefined on the data (zero variance, zero df)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from amlcohort import load_cohort
from amlcohort.report.results import analyse, fit_km
from amlcohort.report.tables import survival_table

LOGRANK_TESTS = ("os_by_cr", "os_by_arm", "efs_by_cr", "efs_by_arm")
LOGRANK_PARTS = ("p_value", "statistic", "dof")


def unexplained_nulls(a) -> list[str]:
    """Figures that are null (in the JSON written) but have no specific not-estimable reason (none,
    or only the guard's fallback)."""
    from amlcohort.report.results import UNEXPLAINED

    figures = a.results_json()["figures"]
    return sorted(
        n for n, v in figures.items() if v is None and a.not_estimable.get(n) in (None, "", UNEXPLAINED)
    )


@pytest.fixture(scope="module")
def landmark1(tmp_path_factory) -> Path:
    """The embedded study with ``landmark_days: 1``: no response assessment counts (those on day 1
    are baseline), so nobody is in CR, every EFS is an event on day 1 (induction failure), and the
    log-rank test of EFS by arm has variance 0 and no degrees of freedom."""
    import shutil

    from amlcohort.io.cohort import embedded_study_path

    dest = tmp_path_factory.mktemp("landmark1") / "bundle"
    shutil.copytree(embedded_study_path(), dest, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    path = dest / "study.yaml"
    text = path.read_text()
    assert "landmark_days: null" in text
    path.write_text(text.replace("landmark_days: null", "landmark_days: 1", 1))
    assert yaml.safe_load(path.read_text())  # still valid YAML
    return dest


@pytest.fixture(scope="module")
def degenerate(landmark1):
    return analyse(load_cohort(landmark1))


def test_every_null_figure_has_a_reason_on_the_embedded_study(study):
    a = analyse(study)
    assert unexplained_nulls(a) == []


def test_every_null_figure_has_a_reason_when_the_logrank_test_is_undefined(degenerate):
    a = degenerate
    assert set(a.patients.efs_days.dropna()) == {0.0}  # every EFS event on study day 1
    assert unexplained_nulls(a) == []


def test_every_logrank_figure_is_a_number_or_has_a_specific_reason(degenerate):
    a = degenerate
    for test in LOGRANK_TESTS:
        values = {part: a.figures.get(f"logrank.{test}.{part}") for part in LOGRANK_PARTS}
        if values["p_value"] is None:
            # a test that is not estimable has no statistic and no df either, each with the reason
            for part in LOGRANK_PARTS:
                name = f"logrank.{test}.{part}"
                assert a.figures.get(name, "missing") is None, name
                assert a.reason(name), name
                assert a.reason(name) != "not estimable", name  # a reason, not a restatement
            assert a.logrank[test] is None
        else:
            assert values["dof"] >= 1 and values["statistic"] is not None
            assert all(a.reason(f"logrank.{test}.{part}") is None for part in LOGRANK_PARTS)


def test_zero_variance_logrank_reason_is_specific(degenerate):
    a = degenerate
    why = a.reason("logrank.efs_by_arm.p_value")
    assert why is not None
    assert "variance" in why and "0" in why
    assert "day 1" in why  # says where the events are
    assert a.reason("logrank.efs_by_arm.statistic") == why == a.reason("logrank.efs_by_arm.dof")


def test_survival_table_says_why_the_logrank_test_is_not_estimable(degenerate):
    a = degenerate
    t = survival_table(a)
    cells = t[t.Endpoint == "Event-free survival by arm"]["Log-rank p"]
    assert len(cells)
    for cell in cells:
        assert "df = 0" not in cell
        assert cell == f"not estimable: {a.reason('logrank.efs_by_arm.p_value')}"


def test_the_guard_gives_every_null_figure_a_reason(degenerate):
    from amlcohort.report.results import UNEXPLAINED, explain_nulls

    a = degenerate
    a.figures["x.made_up"] = None
    a.figures["x.nan"] = float("nan")
    try:
        assert explain_nulls(a) == ["x.made_up", "x.nan"]
        assert a.not_estimable["x.made_up"] == a.not_estimable["x.nan"] == UNEXPLAINED
        assert explain_nulls(a) == []
    finally:
        for n in ("x.made_up", "x.nan"):
            a.figures.pop(n, None)
            a.not_estimable.pop(n, None)


# ---- fit_km on small frames: the reason names what makes the test undefined ------------------------


def frame(days, events, groups) -> tuple[pd.DataFrame, pd.Series]:
    p = pd.DataFrame({"os_days": days, "os_event": events, "arm": groups}, dtype=object)
    p = p.astype({"os_days": float, "os_event": float})
    return p, p.arm


def test_fit_km_same_day_events_give_a_zero_variance_reason():
    p, g = frame([0, 0, 0, 0], [1, 1, 1, 1], ["a", "a", "b", "b"])
    _fits, lr, reasons = fit_km(p, "OS", g)
    assert lr is None
    assert "variance" in reasons["logrank"] and "same" in reasons["logrank"]
    assert "4 deaths" in reasons["logrank"]


def test_fit_km_events_only_where_one_group_is_at_risk_give_a_zero_df_reason():
    # b is censored on day 3; a's deaths on days 5 and 8: b never has an expected death
    p, g = frame([5, 8, 3], [1, 1, 0], ["a", "a", "b"])
    _fits, lr, reasons = fit_km(p, "OS", g)
    assert lr is None
    assert "0 degrees of freedom" in reasons["logrank"]
    assert "only one group" in reasons["logrank"]


def test_fit_km_estimable_test_has_no_reason():
    p, g = frame([5, 8, 9, 12, 13, 20], [1, 1, 1, 1, 0, 1], list("aababb"))
    _fits, lr, reasons = fit_km(p, "OS", g)
    assert lr is not None and lr.dof == 1 and "logrank" not in reasons
