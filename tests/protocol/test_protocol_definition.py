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
    assert p.sorafenib.dose_mg == 400 and p.sorafenib.frequency == "bid" and p.sorafenib.daily_mg == 800
    assert [lv.daily_mg for lv in p.sorafenib.dose_levels] == [800, 400, 200]
    assert "Nexavar" in p.sorafenib.dose_levels_source
    assert (p.cytarabine.dose_mg_per_m2, p.cytarabine.frequency, p.cytarabine.route) == (25, "bid", "sc")
    assert (p.cytarabine.min_days, p.cytarabine.max_days) == (10, 14)
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
    (["drugs", "sorafenib", "dose_mg"], -400, "drugs.sorafenib.dose_mg", "must be > 0"),
    (["drugs", "sorafenib", "frequency"], "thrice", "drugs.sorafenib.frequency", "must be one of"),
    (["drugs", "cytarabine", "source"], _DELETE, "drugs.cytarabine.source", "required field is missing"),
    (
        ["drugs", "cytarabine", "duration_days"],
        {"min": 14, "max": 10},
        "drugs.cytarabine.duration_days",
        "min must not exceed max",
    ),
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
    (["rules", "platelet_transfusion"], _DELETE, "rules.platelet_transfusion", "missing"),
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
    data["drugs"]["sorafenib"]["dose_mg"] = "400 mg"
    data["dosing"]["bsa_formula"] = "haycock"
    data["surveillance"][0]["grace_days"] = -2
    with pytest.raises(InputError) as e:
        load_protocol(_dump(tmp_path, data))
    fields = {pr.column for pr in e.value.errors}
    assert {"drugs.sorafenib.dose_mg", "dosing.bsa_formula", "surveillance[0].grace_days"} <= fields


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
