"""Reading the study definition (``study.yaml``) of a bundle, or deriving one from its data.

Every problem is a :class:`~amlcohort.problems.Problem` on table ``study.yaml`` whose column is
the key path (``arms[2].regimen[0].dose``), like every other finding of validation. Files the
definition names (population rules, protocol, claims) must lie inside the bundle folder.

>>> from amlcohort import load_cohort
>>> load_cohort().study.index_drug
'sorafenib'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import yaml

from amlcohort.io.metadata import MAX_METADATA_BYTES, safe_yaml
from amlcohort.io.readers import did_you_mean
from amlcohort.problems import InputError, Problem
from amlcohort.schema import TABLES_BY_NAME
from amlcohort.schema.study import (
    CRITERIA_SETS,
    CTCAE_VERSIONS,
    DEFAULT_CRITERIA,
    DEFAULT_CTCAE_VERSION,
    STUDY_FILE,
    STUDY_KEYS,
    Arm,
    RegimenDrug,
    StudyDefinition,
)

MAX_STUDY_BYTES = MAX_METADATA_BYTES  # a study definition is as small as the metadata
_TOP_KEYS = {k.split(".")[0] for k, _, _ in STUDY_KEYS}
_RESPONSE_KEYS = {k.split(".")[1] for k, _, _ in STUDY_KEYS if k.startswith("response.")}
_REGIMEN_KEYS = ("drug", "dose", "unit", "route", "schedule")


def ctcae_version_of(version: str) -> str:
    """The rule-file version that grades a reported CTCAE version (4.0 is graded by 4.03)."""
    return "4.03" if version in ("4.0", "4", "4.03") else version


class _Checker:
    """Collects problems about ``study.yaml`` keys."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def bad(self, key: str, reason: str, value: object = None) -> None:
        self.problems.append(Problem("error", STUDY_FILE, reason, None, key, value, "study"))

    def text(self, d: dict, key: str, where: str, *, required: bool = False) -> str | None:
        v = d.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            if required:
                self.bad(where, "required key is missing")
            return None
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            self.bad(where, "must be text", v)
            return None
        return str(v).strip()

    def number(self, d: dict, key: str, where: str, *, integer: bool = False) -> float | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or (integer and not isinstance(v, int)):
            self.bad(where, "must be a whole number" if integer else "must be a number", v)
            return None
        if v < 0:
            self.bad(where, "must not be negative", v)
            return None
        return float(v)

    def choice(self, d: dict, key: str, where: str, choices: Iterable[str]) -> str | None:
        v = self.text(d, key, where)
        choices = tuple(choices)
        if v is not None and v not in choices:
            self.bad(where, f"not one of {list(choices)}", v)
            return None
        return v

    def unknown(self, d: dict, known: Iterable[str], where: str) -> None:
        """An unknown key is ignored with a warning, unless it looks like a misspelt known key
        (``respones:``): then it is an error, since ignoring it would silently change the analysis."""
        known = tuple(known)
        for k in sorted(set(map(str, d)) - set(known)):
            hint = did_you_mean(k, known)
            if hint:
                self.problems.append(Problem("error", STUDY_FILE, f"unknown key{hint}", None, f"{where}{k}",
                                             None, "study"))
            else:
                why = f"unknown key; ignored (known: {list(known)})"
                self.problems.append(Problem("warning", STUDY_FILE, why, None, f"{where}{k}", None, "study"))

    def inside(self, folder: Path, d: dict, key: str) -> Path | None:
        v = self.text(d, key, key)
        if v is None:
            return None
        root = folder.resolve()
        path = (folder / v).resolve()
        if not path.is_relative_to(root):
            self.bad(key, "must be a file inside the bundle folder", v)
            return None
        if not path.is_file():
            self.bad(key, "no such file in the bundle", v)
            return None
        return path


def _version_text(v: object) -> object:
    """YAML reads ``ctcae_version: 5.0`` as the number 5.0: keep what the user wrote."""
    return repr(v) if isinstance(v, float) else v


def _regimen(c: _Checker, items: object, where: str) -> tuple[RegimenDrug, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        c.bad(where, "must be a list of drugs", items)
        return ()
    units = TABLES_BY_NAME["exposures"].column("dose_unit").allowed or ()
    routes = TABLES_BY_NAME["exposures"].column("route").allowed or ()
    out = []
    for i, d in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(d, dict):
            c.bad(w, "must be a mapping with at least `drug`", d)
            continue
        c.unknown(d, _REGIMEN_KEYS, f"{w}.")
        drug = c.text(d, "drug", f"{w}.drug", required=True)
        if drug is None:
            continue
        out.append(
            RegimenDrug(
                drug.lower(),
                c.number(d, "dose", f"{w}.dose"),
                c.choice(d, "unit", f"{w}.unit", units),
                c.choice(d, "route", f"{w}.route", routes),
                c.text(d, "schedule", f"{w}.schedule") or "",
            )
        )
    return tuple(out)


def _arms(c: _Checker, items: object) -> tuple[Arm, ...]:
    if items is None:
        return ()
    if not isinstance(items, list) or not items:
        c.bad("arms", "must be a non-empty list of arms (code, label, regimen)", items)
        return ()
    out: list[Arm] = []
    for i, a in enumerate(items):
        w = f"arms[{i}]"
        if not isinstance(a, dict):
            c.bad(w, "must be a mapping with `code`, `label` and `regimen`", a)
            continue
        c.unknown(a, ("code", "label", "regimen"), f"{w}.")
        code = c.text(a, "code", f"{w}.code", required=True)
        if code is None:
            continue
        if any(x.code == code for x in out):
            c.bad(f"{w}.code", "arm code declared twice", code)
            continue
        out.append(
            Arm(code, c.text(a, "label", f"{w}.label") or code, _regimen(c, a.get("regimen"), f"{w}.regimen"))
        )
    return tuple(out)


def parse_study(raw: object, folder: Path) -> tuple[StudyDefinition | None, list[Problem]]:
    """Check a parsed ``study.yaml`` document; the definition, or None with the problems."""
    c = _Checker()
    if not isinstance(raw, dict):
        c.bad("", "must be a mapping of keys to values", type(raw).__name__)
        return None, c.problems
    c.unknown(raw, _TOP_KEYS, "")
    name = c.text(raw, "name", "name", required=True)
    response = raw.get("response") or {}
    if not isinstance(response, dict):
        c.bad("response", "must be a mapping with `criteria` and `landmark_days`", response)
        response = {}
    c.unknown(response, _RESPONSE_KEYS, "response.")
    criteria = c.choice(response, "criteria", "response.criteria", CRITERIA_SETS) or DEFAULT_CRITERIA
    landmark = c.number(response, "landmark_days", "response.landmark_days", integer=True)
    if landmark == 0:  # day 1 is the first dose and there is no day 0: no assessment would count
        c.bad("response.landmark_days", "must be 1 or more (day 1 is the first dose; there is no day 0)", 0)
        landmark = None
    ctcae = c.choice({"v": _version_text(raw.get("ctcae_version"))}, "v", "ctcae_version", CTCAE_VERSIONS)
    index = c.text(raw, "index_drug", "index_drug")
    study = StudyDefinition(
        name=name or "",
        arms=_arms(c, raw.get("arms")),
        index_drug=index.lower() if index else None,
        criteria=criteria,
        response_landmark_days=int(landmark) if landmark is not None else None,
        ctcae_version=ctcae or DEFAULT_CTCAE_VERSION,
        citation=c.text(raw, "citation", "citation"),
        description=c.text(raw, "description", "description") or "",
        population=c.inside(folder, raw, "population"),
        protocol=c.inside(folder, raw, "protocol"),
        claims=c.inside(folder, raw, "claims"),
        declared=True,
    )
    if study.population is not None:
        _check_population(c, study.population)
    errors = [p for p in c.problems if p.severity == "error"]
    return (None if errors else study), c.problems


def _check_population(c: _Checker, path: Path) -> None:
    """The population file must hold the two rule sets the population derivation compiles."""
    from amlcohort.criteria.population import population_rules_file

    try:
        population_rules_file(path)
    except InputError as exc:
        for p in exc.errors:
            c.bad("population", f"{p.table}: {p.reason}" + (f" (row {p.row})" if p.row else ""), p.value)


def read_study(folder: Path) -> tuple[StudyDefinition | None, list[Problem], bool]:
    """Read ``folder/study.yaml``: (definition or None, problems, whether the file exists)."""
    path = folder / STUDY_FILE
    if not path.exists() and not path.is_symlink():
        return None, [], False

    def err(reason: str, value: object = None) -> Problem:
        return Problem("error", STUDY_FILE, reason, None, None, value, "study")

    if path.is_symlink() or not path.is_file():
        return None, [err("must be a regular file inside the bundle (not a link or a folder)")], True
    if path.stat().st_size > MAX_STUDY_BYTES:
        return (
            None,
            [err(f"larger than {MAX_STUDY_BYTES // 1024} KiB; a study definition is a small file")],
            True,
        )
    try:
        raw = safe_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        return None, [err(f"not UTF-8 text: {exc}")], True
    except yaml.YAMLError as exc:
        return None, [err(f"not valid YAML: {exc}")], True
    study, problems = parse_study(raw, folder)
    return study, problems, True


def derive_study(
    name: str,
    arm_codes: Iterable[str],
    ctcae_versions: Iterable[str] = (),
    declared: StudyDefinition | None = None,
) -> StudyDefinition:
    """The definition of a bundle: ``declared`` (from ``study.yaml``) completed from the data.

    Without a declaration: arms are the distinct ``study_arm`` values (label = code), day 1 the
    first dose of any drug, criteria ELN 2022, CTCAE version the one the adverse events were graded
    with when they agree on one, else 5.0. A declaration without arms gets the data's arms.
    """
    arms = tuple(Arm(a, a) for a in sorted({a for a in arm_codes if a is not None}))
    if declared is not None:
        return declared if declared.arms else replace(declared, arms=arms)
    versions = {ctcae_version_of(v) for v in ctcae_versions if v}
    ctcae = versions.pop() if len(versions) == 1 else DEFAULT_CTCAE_VERSION
    return StudyDefinition(name=name, arms=arms, ctcae_version=ctcae, declared=False)


__all__ = ["ctcae_version_of", "derive_study", "parse_study", "read_study"]
