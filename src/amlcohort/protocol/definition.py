"""The protocol definition file: load, validate, and the typed view the rest of the package reads.

A protocol file (YAML, e.g. ``amlcohort/data/protocol/xu2019.yaml``) declares the regimen, BSA
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
FREQUENCIES = {"qd": 1, "bid": 2, "tid": 3}
ROUTES = ("oral", "sc", "iv")
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
class Sorafenib:
    dose_mg: float
    frequency: str
    route: str
    phases: tuple[str, ...]
    dose_levels: tuple[DoseLevel, ...]
    source: str
    dose_levels_source: str

    @property
    def daily_mg(self) -> float:
        return self.dose_mg * FREQUENCIES[self.frequency]


@dataclass(frozen=True)
class Cytarabine:
    dose_mg_per_m2: float
    frequency: str
    route: str
    arms: tuple[str, ...]
    min_days: int
    max_days: int
    source: str


@dataclass(frozen=True)
class Dosing:
    bsa_formula: str
    bsa_formulas: tuple[str, ...]
    bsa_decimals: int
    dose_rounding_mg: float
    dose_tolerance_pct: float
    source: str


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
    sorafenib: Sorafenib
    cytarabine: Cytarabine
    dosing: Dosing
    dose_modification: DoseModification
    pathway: tuple[PathwayStep, ...]
    surveillance: tuple[SurveillanceItem, ...]
    audit: AuditSettings
    raw: Mapping[str, Any]

    def ruleset(self, key: str) -> RuleSet:
        return self.rules[key].rules

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
        "dosing",
        "dose_modification",
        "pathway",
        "surveillance",
        "audit",
    )
    d = c.mapping(data, "", top_keys)
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
                c.bad(f"rules.{key}", "required rule reference is missing")
                continue
            ref = _load_ruleset(c, key, r[key], default_file, base)
            if ref is not None:
                rules[key] = ref
    elif "rules" in d:
        c.bad("rules", "must be a mapping of rule references", r)

    # drugs
    drugs = c.mapping(d.get("drugs", {}), "drugs", ("sorafenib", "cytarabine"))
    s = c.mapping(
        drugs.get("sorafenib", {}),
        "drugs.sorafenib",
        ("dose_mg", "frequency", "route", "phases", "source", "dose_levels", "dose_levels_source"),
    )
    levels: list[DoseLevel] = []
    raw_levels = s.get("dose_levels")
    if not isinstance(raw_levels, list) or not raw_levels:
        c.bad("drugs.sorafenib.dose_levels", "must be a non-empty list of dose levels", raw_levels)
    else:
        for i, lv in enumerate(raw_levels):
            f = f"drugs.sorafenib.dose_levels[{i}]"
            lv = c.mapping(lv, f, ("level", "text", "daily_mg"))
            if lv:
                levels.append(
                    DoseLevel(
                        int(c.number(lv, "level", f, minimum=-10, strict=False, integer=True)),
                        c.text(lv, "text", f),
                        c.number(lv, "daily_mg", f),
                    )
                )
    sorafenib = Sorafenib(
        c.number(s, "dose_mg", "drugs.sorafenib"),
        c.text(s, "frequency", "drugs.sorafenib", choices=tuple(FREQUENCIES)),
        c.text(s, "route", "drugs.sorafenib", choices=ROUTES),
        c.texts(s, "phases", "drugs.sorafenib", choices=("induction", "maintenance")),
        tuple(levels),
        c.text(s, "source", "drugs.sorafenib"),
        c.text(s, "dose_levels_source", "drugs.sorafenib"),
    )
    if (
        levels
        and sorafenib.frequency in FREQUENCIES
        and sorafenib.dose_mg
        and not any(lv.level == 0 and lv.daily_mg == sorafenib.daily_mg for lv in levels)
    ):
        c.bad(
            "drugs.sorafenib.dose_levels",
            f"needs level 0 with daily_mg = dose x frequency = {sorafenib.daily_mg:g}",
            raw_levels,
        )
    y = c.mapping(
        drugs.get("cytarabine", {}),
        "drugs.cytarabine",
        ("dose_mg_per_m2", "frequency", "route", "arms", "duration_days", "source"),
    )
    dur = c.mapping(y.get("duration_days", {}), "drugs.cytarabine.duration_days", ("min", "max"))
    dmin = int(c.number(dur, "min", "drugs.cytarabine.duration_days", integer=True))
    dmax = int(c.number(dur, "max", "drugs.cytarabine.duration_days", integer=True))
    if dmin and dmax and dmin > dmax:
        c.bad("drugs.cytarabine.duration_days", "min must not exceed max", dur)
    cytarabine = Cytarabine(
        c.number(y, "dose_mg_per_m2", "drugs.cytarabine"),
        c.text(y, "frequency", "drugs.cytarabine", choices=tuple(FREQUENCIES)),
        c.text(y, "route", "drugs.cytarabine", choices=ROUTES),
        c.texts(y, "arms", "drugs.cytarabine", choices=model_table("patients").column("study_arm").allowed),
        dmin,
        dmax,
        c.text(y, "source", "drugs.cytarabine"),
    )

    # dosing
    g = c.mapping(
        d.get("dosing", {}),
        "dosing",
        ("bsa_formula", "bsa_formulas", "bsa_decimals", "dose_rounding_mg", "dose_tolerance_pct", "source"),
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

    # dose modification
    m = c.mapping(
        d.get("dose_modification", {}),
        "dose_modification",
        ("drug", "skin_terms", "rules", "interruption_grace_days", "source"),
    )
    dm = DoseModification(
        c.text(m, "drug", "dose_modification", choices=("sorafenib",)),
        c.texts(m, "skin_terms", "dose_modification"),
        c.text(m, "rules", "dose_modification", choices=("skin_dose_modification",)),
        int(c.number(m, "interruption_grace_days", "dose_modification", strict=False, integer=True)),
        c.text(m, "source", "dose_modification"),
    )

    # pathway
    steps: list[PathwayStep] = []
    pw = d.get("pathway")
    if not isinstance(pw, list) or not pw:
        if "pathway" in d:
            c.bad("pathway", "must be a non-empty list of steps", pw)
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
        sorafenib,
        cytarabine,
        dosing,
        dm,
        tuple(steps),
        tuple(items),
        audit,
        d,
    ), c.problems


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
    """Load and validate a protocol file (default: the study's ``xu2019.yaml``, shipped with amlcohort)."""
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
