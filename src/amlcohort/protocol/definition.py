"""The protocol definition file: load, validate, and the typed view the rest of the package reads.

A protocol file (YAML, e.g. ``amlcohort/data/study/protocol.yaml``) declares the regimen, BSA
dosing, the dose-modification rules, the treatment pathway, the surveillance schedule and the
audit windows; its threshold rules live in a rule-engine CSV that the file names. Loading
validates everything and raises :class:`~amlcohort.problems.InputError` listing every problem,
each naming the file, the field (a dotted path such as ``surveillance[2].interval``), the
offending value and the reason.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from amlcohort.criteria.engine import RuleSet, load_rules, parse_rules
from amlcohort.problems import InputError, Problem
from amlcohort.schema import table as model_table

FORMAT = "amlcohort.protocol/1"
DEFAULT_PROTOCOL = "protocol.yaml"  # the embedded study's protocol (data/study/)
# Administrations per day of the model's frequencies that repeat daily or less often.
FREQUENCIES: dict[str, float] = {"qd": 1, "bid": 2, "tid": 3, "qid": 4, "q48h": 0.5, "weekly": 1 / 7}
ROUTES = ("oral", "sc", "iv", "im", "intrathecal", "inhaled", "topical")
DOSE_UNITS = ("mg", "mg/m2")
PHASES = ("induction", "post_cr")
BSA_FORMULAS = ("mosteller", "dubois")
PATHWAY_WHEN = ("cr", "failure")

# Rule sets the code feeds: key -> (variables the code supplies, outcomes the code acts on).
RULE_CONTRACTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "rbc_transfusion": (frozenset({"hemoglobin", "symptomatic_anemia"}), frozenset({"transfuse_rbc"})),
    "platelet_transfusion": (frozenset({"platelets", "bleeding"}), frozenset({"transfuse_platelets"})),
    "g_csf": (frozenset({"anc"}), frozenset({"give_g_csf"})),
    "antifungal_prophylaxis": (frozenset({"anc"}), frozenset({"give_antifungal_prophylaxis"})),
    "counts_abnormal_post_cr": (
        frozenset({"anc", "platelets", "peripheral_blasts_pct", "hemoglobin", "wbc"}),
        frozenset({"marrow_due"}),
    ),
    "skin_dose_modification": (
        frozenset({"skin_grade", "occurrence", "days_unresolved"}),
        frozenset({"interrupt_then_reduce", "discontinue"}),
    ),
    "stopping_rule": (
        frozenset({"weeks_2_3_max_blasts_pct", "baseline_marrow_blasts_pct"}),
        frozenset({"stop"}),
    ),
}
# Outcomes that ask for an action (anything else: no action).
ACTION_OUTCOMES = frozenset().union(*(o for _, o in RULE_CONTRACTS.values())) | {"continue_topical"}


# ---- the typed protocol ---------------------------------------------------------------------


@dataclass(frozen=True)
class RuleRef:
    key: str
    file: str
    ruleset: str
    version: str
    rules: RuleSet

    @property
    def label(self) -> str:
        return f"{self.ruleset} v{self.version} ({self.file})"


@dataclass(frozen=True)
class DoseLevel:
    level: int
    text: str
    daily_mg: float


@dataclass(frozen=True)
class Drug:
    """One drug of the regimen, as the protocol file declares it (``drugs[i]``).

    ``unit`` is ``mg`` (a flat dose) or ``mg/m2`` (dosed by body-surface area, see ``dosing``);
    ``arms`` empty = every arm; ``min_days``/``max_days`` (optional) bound the days the drug is
    given per patient; ``dose_levels`` (flat doses only) are the allowed total daily doses, level 0
    the full dose, used by the dose audit and the dose-modification rule.
    """

    name: str
    dose: float
    unit: str
    frequency: str
    route: str
    phases: tuple[str, ...]
    arms: tuple[str, ...]
    min_days: int | None
    max_days: int | None
    dose_levels: tuple[DoseLevel, ...]
    source: str
    dose_levels_source: str = ""

    @property
    def per_day(self) -> float:
        return self.dose * FREQUENCIES.get(self.frequency, 0)

    @property
    def bsa_dosed(self) -> bool:
        return self.unit == "mg/m2"

    @property
    def unit_text(self) -> str:
        return "mg/m²" if self.bsa_dosed else self.unit

    @property
    def dose_text(self) -> str:
        return f"{self.dose:g} {self.unit_text} {self.frequency}"

    @property
    def duration_text(self) -> str:
        if self.min_days is None and self.max_days is None:
            return ""
        return f"{self.min_days or 1}-{self.max_days if self.max_days is not None else '...'} days"

    def in_arm(self, arm: str) -> bool:
        return not self.arms or arm in self.arms


@dataclass(frozen=True)
class Dosing:
    bsa_formula: str
    bsa_formulas: tuple[str, ...]
    bsa_decimals: int
    dose_rounding_mg: float
    dose_tolerance_pct: float
    source: str


DEFAULT_DOSING = Dosing("mosteller", BSA_FORMULAS, 2, 1, 5, "")


@dataclass(frozen=True)
class DoseModification:
    drug: str
    skin_terms: tuple[str, ...]
    rules: str
    interruption_grace_days: int
    source: str


@dataclass(frozen=True)
class PathwayStep:
    id: str
    when: str
    text: str
    source: str


@dataclass(frozen=True)
class SurveillanceItem:
    """One rolling surveillance schedule (see the protocol file's comments for the semantics)."""

    id: str
    what: str
    phase: str
    interval_days: int | None
    interval_months: int | None
    window_opens: int
    grace_days: int
    any_of: tuple[str, ...]
    all_of: tuple[str, ...]
    source: str
    anchor_study_day_min: int | None = None
    anchor_study_day_max: int | None = None
    trigger: str | None = None
    response_assessment: bool = False

    @property
    def interval_text(self) -> str:
        if self.interval_months is not None:
            n = self.interval_months
            return f"{n} calendar month{'s' if n != 1 else ''}"
        return f"{self.interval_days} days"

    @property
    def series(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """Items of one series (same phase and evidence) hand over to each other by anchor day."""
        return (self.phase, self.any_of, self.all_of)


@dataclass(frozen=True)
class AuditSettings:
    transfusion_window_days: int
    supportive_care_window_days: int
    stopping_rule_grace_days: int


@dataclass(frozen=True)
class Protocol:
    id: str
    version: str
    title: str
    source: str
    disclaimer: str
    path: str
    rules: Mapping[str, RuleRef]
    drugs: tuple[Drug, ...]
    index_drug: str | None
    dosing: Dosing
    dose_modification: DoseModification | None
    pathway: tuple[PathwayStep, ...]
    surveillance: tuple[SurveillanceItem, ...]
    audit: AuditSettings
    raw: Mapping[str, Any]
    response_criteria_source: str = ""

    def ruleset(self, key: str) -> RuleSet:
        return self.rules[key].rules

    def has_rule(self, key: str) -> bool:
        return key in self.rules

    def drug(self, name: str) -> Drug:
        for d in self.drugs:
            if d.name == name:
                return d
        raise KeyError(f"protocol {self.id} has no drug {name!r}; drugs: {', '.join(self.drug_names)}")

    @property
    def drug_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.drugs)

    @property
    def bsa_drugs(self) -> tuple[Drug, ...]:
        return tuple(d for d in self.drugs if d.bsa_dosed)

    def item(self, item_id: str) -> SurveillanceItem:
        for it in self.surveillance:
            if it.id == item_id:
                return it
        raise KeyError(f"protocol {self.id} has no surveillance item {item_id!r}")

    @property
    def label(self) -> str:
        return f"{self.id} v{self.version}"


# ---- validation -----------------------------------------------------------------------------


class _Checker:
    """Collects problems while reading fields; every getter returns a usable default on error."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.problems: list[Problem] = []

    def bad(self, field: str, reason: str, value: object = None) -> None:
        self.problems.append(Problem("error", self.origin, reason, None, field, value, "protocol.field"))

    def mapping(self, m: Any, field: str, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
        if not isinstance(m, dict):
            self.bad(field, "must be a mapping (key: value)", m)
            return {}
        for k in keys:
            if k not in m:
                self.bad(f"{field}.{k}" if field else k, "required field is missing")
        for k in m:
            if k not in keys and k not in optional:
                self.bad(
                    f"{field}.{k}" if field else str(k),
                    f"unknown field; allowed: {', '.join((*keys, *optional))}",
                    m[k],
                )
        return m

    def text(self, m: dict, key: str, field: str, *, choices: tuple[str, ...] | None = None) -> str:
        v = m.get(key)
        f = f"{field}.{key}" if field else key
        if key not in m:
            return ""
        if not isinstance(v, str) or not v.strip():
            self.bad(f, "must be non-empty text (quote numbers such as versions)", v)
            return ""
        if choices is not None and v not in choices:
            self.bad(f, f"must be one of {', '.join(choices)}", v)
        return v.strip()

    def number(
        self, m: dict, key: str, field: str, *, minimum: float = 0, strict: bool = True, integer: bool = False
    ) -> float:
        v = m.get(key)
        f = f"{field}.{key}" if field else key
        if key not in m:
            return 0
        ok_type = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not ok_type:
            self.bad(f, "must be a whole number" if integer else "must be a number", v)
            return 0
        if v < minimum or (strict and v == minimum):
            self.bad(f, f"must be {'>' if strict else '>='} {minimum:g}", v)
        return v

    def texts(
        self, m: dict, key: str, field: str, *, choices: tuple[str, ...] | None = None
    ) -> tuple[str, ...]:
        v = m.get(key)
        f = f"{field}.{key}" if field else key
        if key not in m:
            return ()
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x.strip() for x in v):
            self.bad(f, "must be a non-empty list of text", v)
            return ()
        if choices is not None:
            for x in v:
                if x not in choices:
                    self.bad(f, f"{x!r} is not one of {', '.join(choices)}", v)
        return tuple(x.strip() for x in v)


def _rule_text(name: str, base: Path | None) -> tuple[str, str] | None:
    if base is not None and (base / name).is_file():
        return (base / name).read_text(encoding="utf-8"), str(base / name)
    res = resources.files("amlcohort.rules").joinpath(name)
    if res.is_file():
        return None, name  # type: ignore[return-value]
    return None


def _load_ruleset(c: _Checker, key: str, spec: Any, default_file: str, base: Path | None) -> RuleRef | None:
    field = f"rules.{key}"
    spec = c.mapping(spec, field, ("ruleset", "version"), ("file",))
    if not spec:
        return None
    name = c.text(spec, "ruleset", field)
    version = spec.get("version")
    if not isinstance(version, str) or not version:
        c.bad(f"{field}.version", 'must be text (quote it, e.g. "2019")', version)
        return None
    fname = spec.get("file", default_file)
    found = _rule_text(str(fname), base)
    if found is None:
        c.bad(
            f"{field}.file", "rule file not found beside the protocol file nor among amlcohort's rules", fname
        )
        return None
    text, origin = found
    try:
        book = parse_rules(text, origin) if text is not None else load_rules(str(fname))
    except InputError as e:
        c.bad(f"{field}.file", f"rule file is invalid: {e}", fname)
        return None
    rs = book.get((name, version))
    if rs is None:
        known = ", ".join(sorted(f"{n} v{v}" for n, v in book))
        c.bad(f"{field}.ruleset", f"no rule set {name} v{version} in {fname}; it has {known}", name)
        return None
    supplied, needed = RULE_CONTRACTS[key]
    extra = [v for v in rs.variables if v not in supplied]
    if extra:
        c.bad(
            f"{field}.ruleset",
            f"rule set uses input(s) {extra} the protocol code does not supply "
            f"(available: {sorted(supplied)})",
            name,
        )
    outcomes = {r.outcome for r in rs.rules}
    if not outcomes & needed:
        c.bad(f"{field}.ruleset", f"rule set has no rule with outcome {sorted(needed)}", name)
    return RuleRef(key, origin, name, version, rs)


def validate_protocol(
    data: Any, origin: str, base: Path | None = None
) -> tuple[Protocol | None, list[Problem]]:
    """Validate parsed protocol data; returns the protocol (None on error) and every problem."""
    c = _Checker(origin)
    top_keys = (
        "format",
        "id",
        "version",
        "title",
        "source",
        "disclaimer",
        "rules",
        "drugs",
        "surveillance",
        "audit",
    )
    optional_keys = ("index_drug", "response_criteria_source", "dosing", "dose_modification", "pathway")
    d = c.mapping(data, "", top_keys, optional_keys)
    if not d:
        return None, c.problems
    if d.get("format") != FORMAT and "format" in d:
        c.bad("format", f"must be {FORMAT!r}", d.get("format"))
    pid, title, source = c.text(d, "id", ""), c.text(d, "title", ""), c.text(d, "source", "")
    disclaimer = c.text(d, "disclaimer", "")
    if "version" in d and not isinstance(d["version"], str):
        c.bad("version", 'must be text: quote it ("2019.1"), YAML reads 2019.1 as a number', d["version"])
    version = str(d.get("version", ""))

    # rules
    r = d.get("rules")
    rules: dict[str, RuleRef] = {}
    if isinstance(r, dict):
        default_file = r.get("file")
        if not isinstance(default_file, str) or not default_file:
            c.bad("rules.file", "must name the rule file (CSV) of the protocol's thresholds", default_file)
            default_file = ""
        for k in r:
            if k != "file" and k not in RULE_CONTRACTS:
                c.bad(f"rules.{k}", f"unknown rule key; known: {', '.join(RULE_CONTRACTS)}", r[k])
        for key in RULE_CONTRACTS:
            if key not in r:
                continue  # optional: what needs it says so below
            ref = _load_ruleset(c, key, r[key], default_file, base)
            if ref is not None:
                rules[key] = ref
    elif "rules" in d:
        c.bad("rules", "must be a mapping of rule references", r)

    # drugs
    drugs = _drugs(c, d.get("drugs"), "drugs" in d)
    names = tuple(x.name for x in drugs)
    index_drug = None
    if "index_drug" in d:
        index_drug = c.text(d, "index_drug", "", choices=names or None)
    response_criteria_source = c.text(d, "response_criteria_source", "")

    # dosing (required when a drug is dosed by body-surface area)
    dosing = DEFAULT_DOSING
    if "dosing" in d:
        g = c.mapping(
            d.get("dosing", {}),
            "dosing",
            (
                "bsa_formula",
                "bsa_formulas",
                "bsa_decimals",
                "dose_rounding_mg",
                "dose_tolerance_pct",
                "source",
            ),
        )
        formulas = c.texts(g, "bsa_formulas", "dosing", choices=BSA_FORMULAS)
        dosing = Dosing(
            c.text(g, "bsa_formula", "dosing", choices=formulas or BSA_FORMULAS),
            formulas,
            int(c.number(g, "bsa_decimals", "dosing", strict=False, integer=True)),
            c.number(g, "dose_rounding_mg", "dosing"),
            c.number(g, "dose_tolerance_pct", "dosing", strict=False),
            c.text(g, "source", "dosing"),
        )
        if dosing.bsa_decimals > 4:
            c.bad("dosing.bsa_decimals", "must be between 0 and 4", dosing.bsa_decimals)
    elif any(x.bsa_dosed for x in drugs):
        c.bad("dosing", "required field is missing (a drug is dosed in mg/m2: BSA formula and rounding)")

    # dose modification (optional)
    dm = None
    if "dose_modification" in d:
        m = c.mapping(
            d.get("dose_modification", {}),
            "dose_modification",
            ("drug", "skin_terms", "rules", "interruption_grace_days", "source"),
        )
        dm = DoseModification(
            c.text(m, "drug", "dose_modification", choices=names or None),
            c.texts(m, "skin_terms", "dose_modification"),
            c.text(m, "rules", "dose_modification", choices=("skin_dose_modification",)),
            int(c.number(m, "interruption_grace_days", "dose_modification", strict=False, integer=True)),
            c.text(m, "source", "dose_modification"),
        )
        if dm.drug in names and not next(x for x in drugs if x.name == dm.drug).dose_levels:
            c.bad("dose_modification.drug", "the drug needs dose_levels to be reduced one level", dm.drug)
        if isinstance(r, dict) and "skin_dose_modification" not in r:
            c.bad("rules.skin_dose_modification", "required by dose_modification: rule reference is missing")

    # pathway
    steps: list[PathwayStep] = []
    pw = d.get("pathway")
    if not isinstance(pw, list):
        if "pathway" in d:
            c.bad("pathway", "must be a list of steps", pw)
    else:
        for i, st in enumerate(pw):
            f = f"pathway[{i}]"
            st = c.mapping(st, f, ("id", "when", "text", "source"))
            if st:
                steps.append(
                    PathwayStep(
                        c.text(st, "id", f),
                        c.text(st, "when", f, choices=PATHWAY_WHEN),
                        c.text(st, "text", f),
                        c.text(st, "source", f),
                    )
                )

    # surveillance
    items: list[SurveillanceItem] = []
    sv = d.get("surveillance")
    columns = model_table("assessments").column_names
    if not isinstance(sv, list) or not sv:
        if "surveillance" in d:
            c.bad("surveillance", "must be a non-empty list of items", sv)
    else:
        seen: set[str] = set()
        for i, it in enumerate(sv):
            items_i = _surveillance_item(c, it, f"surveillance[{i}]", columns, seen)
            if items_i is not None:
                items.append(items_i)
                if items_i.trigger and isinstance(r, dict) and items_i.trigger not in r:
                    c.bad(
                        f"rules.{items_i.trigger}",
                        f"required by surveillance[{i}].trigger: rule reference is missing",
                    )

    a = c.mapping(
        d.get("audit", {}),
        "audit",
        ("transfusion_window_days", "supportive_care_window_days", "stopping_rule_grace_days"),
    )
    audit = AuditSettings(
        *(
            int(c.number(a, k, "audit", strict=False, integer=True))
            for k in ("transfusion_window_days", "supportive_care_window_days", "stopping_rule_grace_days")
        )
    )

    if c.problems:
        return None, c.problems
    return Protocol(
        pid,
        version,
        title,
        source,
        disclaimer,
        origin,
        rules,
        drugs,
        index_drug or None,
        dosing,
        dm,
        tuple(steps),
        tuple(items),
        audit,
        d,
        response_criteria_source,
    ), c.problems


def _drugs(c: _Checker, raw: Any, present: bool) -> tuple[Drug, ...]:
    if not isinstance(raw, list) or not raw:
        if present:
            c.bad("drugs", "must be a non-empty list of drugs (name, dose, unit, frequency, route, ...)", raw)
        return ()
    out: list[Drug] = []
    for i, x in enumerate(raw):
        f = f"drugs[{i}]"
        x = c.mapping(
            x,
            f,
            ("name", "dose", "unit", "frequency", "route", "source"),
            ("phases", "arms", "duration_days", "dose_levels", "dose_levels_source"),
        )
        if not x:
            continue
        name = c.text(x, "name", f).lower()
        if name and name in {y.name for y in out}:
            c.bad(f"{f}.name", "duplicate drug name", name)
        unit = c.text(x, "unit", f, choices=(*DOSE_UNITS, "mg/m²"))
        unit = "mg/m2" if unit == "mg/m²" else unit
        dmin = dmax = None
        if "duration_days" in x:
            dur = c.mapping(x.get("duration_days"), f"{f}.duration_days", (), ("min", "max"))
            if "min" in dur:
                dmin = int(c.number(dur, "min", f"{f}.duration_days", integer=True))
            if "max" in dur:
                dmax = int(c.number(dur, "max", f"{f}.duration_days", integer=True))
            if dmin and dmax and dmin > dmax:
                c.bad(f"{f}.duration_days", "min must not exceed max", dur)
        levels: list[DoseLevel] = []
        raw_levels = x.get("dose_levels")
        if "dose_levels" in x:
            if not isinstance(raw_levels, list) or not raw_levels:
                c.bad(f"{f}.dose_levels", "must be a non-empty list", raw_levels)
            else:
                for j, lv in enumerate(raw_levels):
                    g = f"{f}.dose_levels[{j}]"
                    lv = c.mapping(lv, g, ("level", "text", "daily_mg"))
                    if lv:
                        levels.append(
                            DoseLevel(
                                int(c.number(lv, "level", g, minimum=-10, strict=False, integer=True)),
                                c.text(lv, "text", g),
                                c.number(lv, "daily_mg", g),
                            )
                        )
            if "dose_levels_source" not in x:
                c.bad(f"{f}.dose_levels_source", "required with dose_levels: where the levels come from")
        drug = Drug(
            name,
            c.number(x, "dose", f),
            unit,
            c.text(x, "frequency", f, choices=tuple(FREQUENCIES)),
            c.text(x, "route", f, choices=ROUTES),
            c.texts(x, "phases", f),
            c.texts(x, "arms", f),
            dmin,
            dmax,
            tuple(levels),
            c.text(x, "source", f),
            c.text(x, "dose_levels_source", f),
        )
        if levels and drug.bsa_dosed:
            c.bad(f"{f}.dose_levels", "dose levels are supported for flat (mg) doses only", raw_levels)
        elif (
            levels
            and drug.frequency in FREQUENCIES
            and drug.dose
            and not any(lv.level == 0 and lv.daily_mg == drug.per_day for lv in levels)
        ):
            c.bad(
                f"{f}.dose_levels",
                f"needs level 0 with daily_mg = dose x frequency = {drug.per_day:g}",
                raw_levels,
            )
        out.append(drug)
    return tuple(out)


def _surveillance_item(
    c: _Checker, it: Any, f: str, columns: tuple[str, ...], seen: set[str]
) -> SurveillanceItem | None:
    it = c.mapping(
        it,
        f,
        ("id", "what", "phase", "interval", "window_opens", "grace_days", "done_when", "source"),
        ("anchor_study_day_min", "anchor_study_day_max", "trigger", "response_assessment"),
    )
    if not it:
        return None
    iid = c.text(it, "id", f)
    if iid in seen:
        c.bad(f"{f}.id", "duplicate item id", iid)
    seen.add(iid)
    iv = it.get("interval")
    days = months = None
    if not isinstance(iv, dict) or len(iv) != 1 or next(iter(iv)) not in ("days", "months"):
        c.bad(f"{f}.interval", "must be exactly one of {days: N} or {months: N}", iv)
    else:
        ((unit, n),) = iv.items()
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            c.bad(f"{f}.interval.{unit}", "must be a whole number > 0", n)
        elif unit == "days":
            days = n
        else:
            months = n
    dw = it.get("done_when")
    any_of: tuple[str, ...] = ()
    all_of: tuple[str, ...] = ()
    if not isinstance(dw, dict) or len(dw) != 1 or next(iter(dw)) not in ("any_of", "all_of"):
        c.bad(f"{f}.done_when", "must be exactly one of {any_of: [columns]} or {all_of: [columns]}", dw)
    else:
        cols = c.texts(dw, next(iter(dw)), f"{f}.done_when")
        for col in cols:
            if col not in columns:
                c.bad(f"{f}.done_when", f"{col!r} is not a column of table assessments", col)
        any_of, all_of = (cols, ()) if "any_of" in dw else ((), cols)
    bounds = {}
    for k in ("anchor_study_day_min", "anchor_study_day_max"):
        if k in it:
            bounds[k] = int(c.number(it, k, f, minimum=1, strict=False, integer=True))
    trigger = it.get("trigger")
    if trigger is not None and trigger != "counts_abnormal_post_cr":
        c.bad(
            f"{f}.trigger",
            "must be counts_abnormal_post_cr (a rule key whose outcome marrow_due triggers the item)",
            trigger,
        )
    ra = it.get("response_assessment", False)
    if not isinstance(ra, bool):
        c.bad(f"{f}.response_assessment", "must be true or false", ra)
    return SurveillanceItem(
        iid,
        c.text(it, "what", f),
        c.text(it, "phase", f, choices=PHASES),
        days,
        months,
        int(c.number(it, "window_opens", f, strict=False, integer=True)),
        int(c.number(it, "grace_days", f, strict=False, integer=True)),
        any_of,
        all_of,
        c.text(it, "source", f),
        bounds.get("anchor_study_day_min"),
        bounds.get("anchor_study_day_max"),
        trigger,
        bool(ra),
    )


# ---- loading --------------------------------------------------------------------------------


def parse_protocol(text: str, origin: str = "<protocol>", base: Path | None = None) -> Protocol:
    """Parse and validate protocol YAML text; raises :class:`InputError` naming field and reason."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        row = mark.line + 1 if mark is not None else None
        raise InputError(
            f"protocol file {origin}",
            [
                Problem(
                    "error",
                    origin,
                    f"not valid YAML: {getattr(e, 'problem', e)}",
                    row,
                    None,
                    None,
                    "protocol.yaml",
                )
            ],
        ) from None
    protocol, problems = validate_protocol(data, origin, base)
    if protocol is None:
        raise InputError(f"protocol file {origin}", problems)
    return protocol


def load_protocol(path: str | Path | None = None) -> Protocol:
    """Load and validate a protocol file (default: the embedded study's ``data/study/protocol.yaml``)."""
    if path is None:
        return _default_protocol()
    p = Path(path)
    if not p.is_file():
        raise InputError(
            f"protocol file {p}", [Problem("error", str(p), "file not found", code="protocol.file")]
        )
    return parse_protocol(p.read_text(encoding="utf-8"), str(p), p.parent)


@functools.cache
def _default_protocol() -> Protocol:
    res = resources.files("amlcohort.data").joinpath("study", DEFAULT_PROTOCOL)
    return parse_protocol(res.read_text(encoding="utf-8"), DEFAULT_PROTOCOL, None)


def default_protocol_path() -> Path:
    return Path(str(resources.files("amlcohort.data").joinpath("study", DEFAULT_PROTOCOL)))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def resolve_protocol_path(path: str | Path, bundle: str | Path | None = None) -> Path:
    """Where a study definition's ``protocol`` file is: as given if absolute (the study loader
    resolves it inside the bundle), else inside the bundle folder, else beside the embedded
    study's protocol."""
    p = Path(path)
    if p.is_absolute():
        return p
    candidates = []
    if bundle is not None:
        b = Path(bundle)
        candidates.append((b if b.is_dir() else b.parent) / p)
    candidates.append(default_protocol_path().parent / p.name)
    return next((c for c in candidates if c.is_file()), candidates[0])


def study_protocol(cohort: Any) -> Protocol | None:
    """The protocol of the cohort's study definition (``cohort.study.protocol``), loaded and validated;
    None when the study declares no protocol. A cohort without a study definition (a bundle read
    before study definitions existed) gets the embedded study's protocol."""
    base = getattr(cohort, "cohort", cohort)  # an as-of view asks the cohort it wraps
    study = getattr(base, "study", None)
    if study is None:
        return _default_protocol()
    declared = getattr(study, "protocol", None)
    if declared is None:
        return None
    report = getattr(base, "report", None)
    path = resolve_protocol_path(declared, getattr(report, "path", None))
    if _same_file(path, default_protocol_path()):
        return _default_protocol()
    return load_protocol(path)


def cohort_protocol(cohort: Any, protocol: Protocol | None = None) -> Protocol:
    """``protocol`` if given, else the study definition's; a study without one is an error here
    (per-patient schedules and rules need a protocol)."""
    if protocol is not None:
        return protocol
    p = study_protocol(cohort)
    if p is None:
        study = getattr(getattr(cohort, "cohort", cohort), "study", None)
        raise ValueError(f"the study {getattr(study, 'name', '')!r} declares no protocol; pass one")
    return p
