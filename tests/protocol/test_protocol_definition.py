"""The protocol file validates; broken files fail naming the field and the reason."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from amlcohort.criteria.engine import evaluate, ruleset
from amlcohort.problems import InputError
from amlcohort.protocol import load_protocol
from amlcohort.protocol.definition import default_protocol_path, parse_protocol


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(default_protocol_path().read_text(encoding="utf-8"))


def _dump(tmp_path: Path, data: dict, name: str = "centre.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return p


def test_default_protocol_validates() -> None:
    p = load_protocol()
    assert (p.id, p.version) == ("xu2019", "2019.1")
    assert p.drug_names == ("sorafenib", "cytarabine") and p.index_drug == "sorafenib"
    sor, cy = p.drug("sorafenib"), p.drug("cytarabine")
    assert (sor.dose, sor.unit, sor.frequency, sor.per_day, sor.bsa_dosed) == (400, "mg", "bid", 800, False)
    assert [lv.daily_mg for lv in sor.dose_levels] == [800, 400, 200]
    assert "Nexavar" in sor.dose_levels_source and sor.arms == ()
    assert (cy.dose, cy.unit, cy.frequency, cy.route, cy.bsa_dosed) == (25, "mg/m2", "bid", "sc", True)
    assert (cy.min_days, cy.max_days, cy.arms) == (10, 14, ("sorafenib_ldac",))
    assert cy.dose_text == "25 mg/m² bid" and p.bsa_drugs == (cy,)
    assert p.response_criteria_source == "Xu 2019 §2.2"
    assert p.dose_modification is not None and p.dose_modification.drug == "sorafenib"
    assert (
        p.dosing.bsa_formula == "mosteller" and p.dosing.bsa_decimals == 2 and p.dosing.dose_rounding_mg == 1
    )
    assert "not a medical device" in p.disclaimer
    # every rule, step and item names its source
    for ref in p.rules.values():
        for rule in ref.rules.rules:
            assert rule.source.strip(), rule.rule_id
    assert all(it.source for it in p.surveillance)
    assert all(st.source for st in p.pathway)
    assert "Nexavar" in p.dose_modification.source and "§3.3" in p.dose_modification.source


def test_stopping_rule_is_the_shared_rule_set() -> None:
    """The protocol reuses rules/stopping_rule.csv (the one the endpoints run), not a copy."""
    assert load_protocol().ruleset("stopping_rule") is ruleset(
        "stopping_rule.csv", "protocol.stopping_rule", "2019"
    )


def test_copy_loads(tmp_path: Path, raw: dict) -> None:
    p = load_protocol(_dump(tmp_path, raw))
    assert p.label == "xu2019 v2019.1"


def _set(d: dict, path: list, value: object) -> None:
    for k in path[:-1]:
        d = d[k]
    if value is _DELETE:
        del d[path[-1]]
    else:
        d[path[-1]] = value


_DELETE = object()

BROKEN = [
    (["version"], 2019.1, "version", "quote"),
    (["format"], "other/9", "format", "must be"),
    (["surveilance"], [], "surveilance", "unknown field"),
    (["drugs", 0, "dose"], -400, "drugs[0].dose", "must be > 0"),
    (["drugs", 0, "frequency"], "thrice", "drugs[0].frequency", "must be one of"),
    (["drugs", 0, "unit"], "g", "drugs[0].unit", "must be one of"),
    (["drugs", 0, "dose"], 600, "drugs[0].dose_levels", "needs level 0"),
    (["drugs", 1, "source"], _DELETE, "drugs[1].source", "required field is missing"),
    (["drugs", 1, "name"], "sorafenib", "drugs[1].name", "duplicate drug name"),
    (
        ["drugs", 1, "dose_levels"],
        [{"level": 0, "text": "25 mg/m2", "daily_mg": 50}],
        "drugs[1].dose_levels",
        "flat (mg) doses only",
    ),
    (
        ["drugs", 1, "duration_days"],
        {"min": 14, "max": 10},
        "drugs[1].duration_days",
        "min must not exceed max",
    ),
    (["drugs"], {"sorafenib": {}}, "drugs", "non-empty list"),
    (["index_drug"], "imatinib", "index_drug", "must be one of"),
    (["dose_modification", "drug"], "cytarabine", "dose_modification.drug", "needs dose_levels"),
    (["dosing"], _DELETE, "dosing", "required field is missing"),
    (["rules", "skin_dose_modification"], _DELETE, "rules.skin_dose_modification", "required by"),
    (["rules", "counts_abnormal_post_cr"], _DELETE, "rules.counts_abnormal_post_cr", "required by"),
    (["dosing", "bsa_formula"], "haycock", "dosing.bsa_formula", "must be one of"),
    (["dosing", "bsa_decimals"], 1.5, "dosing.bsa_decimals", "whole number"),
    (["surveillance", 0, "interval"], {"weeks": 2}, "surveillance[0].interval", "exactly one of"),
    (["surveillance", 1, "interval"], {"months": 0}, "surveillance[1].interval.months", "> 0"),
    (
        ["surveillance", 2, "done_when"],
        {"all_of": ["neutrophils"]},
        "surveillance[2].done_when",
        "not a column of table assessments",
    ),
    (["surveillance", 3, "phase"], "maintenance", "surveillance[3].phase", "must be one of"),
    (["surveillance", 1, "id"], "marrow.first_month", "surveillance[1].id", "duplicate"),
    (["rules", "g_csf", "ruleset"], "protocol.gcsf", "rules.g_csf.ruleset", "no rule set"),
    (["rules", "g_csf", "version"], 2019, "rules.g_csf.version", "must be text"),
    (["rules", "file"], "nowhere.csv", "rules.rbc_transfusion.file", "not found"),
    (["pathway", 0, "when"], "always", "pathway[0].when", "must be one of"),
    (["audit", "transfusion_window_days"], -1, "audit.transfusion_window_days", ">= 0"),
]


@pytest.mark.parametrize(("path", "value", "field", "reason"), BROKEN, ids=[b[2] for b in BROKEN])
def test_broken_file_names_field_and_reason(tmp_path: Path, raw: dict, path, value, field, reason) -> None:
    data = copy.deepcopy(raw)
    _set(data, path, value)
    f = _dump(tmp_path, data)
    with pytest.raises(InputError) as e:
        load_protocol(f)
    hits = [pr for pr in e.value.errors if pr.column == field and reason in pr.reason]
    assert hits, [str(pr) for pr in e.value.errors]
    assert hits[0].table == str(f)
    assert field in str(e.value)


def test_every_problem_is_reported_at_once(tmp_path: Path, raw: dict) -> None:
    data = copy.deepcopy(raw)
    data["drugs"][0]["dose"] = "400 mg"
    data["dosing"]["bsa_formula"] = "haycock"
    data["surveillance"][0]["grace_days"] = -2
    with pytest.raises(InputError) as e:
        load_protocol(_dump(tmp_path, data))
    fields = {pr.column for pr in e.value.errors}
    assert {"drugs[0].dose", "dosing.bsa_formula", "surveillance[0].grace_days"} <= fields


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(InputError) as e:
        load_protocol(bad)
    assert e.value.errors[0].code == "protocol.yaml"
    with pytest.raises(InputError, match="file not found"):
        load_protocol(tmp_path / "absent.yaml")
    with pytest.raises(InputError, match="must be a mapping"):
        parse_protocol("- a list\n")


def test_centre_edits_thresholds_without_code(tmp_path: Path, raw: dict) -> None:
    """Another centre: its own rule file beside its protocol file (G-CSF below 0.5 instead of 1.0)."""
    src = Path(str(default_protocol_path().parent.parent.parent / "rules" / "protocol_xu2019.csv"))
    text = (
        src.read_text(encoding="utf-8").replace("anc,<,1.0", "anc,<,0.5").replace("anc,>=,1.0", "anc,>=,0.5")
    )
    (tmp_path / "centre_rules.csv").write_text(text, encoding="utf-8")
    data = copy.deepcopy(raw)
    data["id"], data["rules"]["file"] = "centre", "centre_rules.csv"
    p = load_protocol(_dump(tmp_path, data))
    assert p.rules["g_csf"].file.endswith("centre_rules.csv")
    assert evaluate(p.ruleset("g_csf"), {"anc": 0.7}).outcome == "not_indicated"
    assert evaluate(load_protocol().ruleset("g_csf"), {"anc": 0.7}).outcome == "give_g_csf"


def test_rule_file_contract_is_checked(tmp_path: Path, raw: dict) -> None:
    src = Path(str(default_protocol_path().parent.parent.parent / "rules" / "protocol_xu2019.csv"))
    text = src.read_text(encoding="utf-8").replace(
        "gcsf.neutrophils,give_g_csf,1,1,anc", "gcsf.neutrophils,give_g_csf,1,1,ferritin"
    )
    (tmp_path / "rules.csv").write_text(text, encoding="utf-8")
    data = copy.deepcopy(raw)
    data["rules"]["file"] = "rules.csv"
    with pytest.raises(InputError) as e:
        load_protocol(_dump(tmp_path, data))
    assert any(pr.column == "rules.g_csf.ruleset" and "does not supply" in pr.reason for pr in e.value.errors)


def test_optional_rule_sets_may_be_left_out(tmp_path: Path, raw: dict) -> None:
    """A protocol without a platelet-transfusion or stopping rule loads; that rule is simply absent."""
    data = copy.deepcopy(raw)
    del data["rules"]["platelet_transfusion"], data["rules"]["stopping_rule"]
    p = load_protocol(_dump(tmp_path, data))
    assert not p.has_rule("platelet_transfusion") and not p.has_rule("stopping_rule")
    assert p.has_rule("g_csf")
