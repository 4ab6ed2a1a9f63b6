"""Genetic risk: ELN 2017 and ELN 2022 risk groups from the karyotype and the mutations.

The clinical rules are data, read by the rule engine (:mod:`amlcohort.criteria.engine`):

* ``rules/eln_risk.csv`` -- rule set ``eln.genetic_risk``, versions ``2017`` (Döhner et al.,
  Blood 2017;129:424, Table 5) and ``2022`` (Döhner et al., Blood 2022;140:1345, Table 6). The
  ``note`` of a clause's first row is the label given in the reasons.
* ``rules/karyotype_lesions.csv`` -- cytogenetic lesions: id, label, a regular expression searched
  in the feature text the ISCN reader (:mod:`amlcohort.criteria.iscn`) makes of the karyotype,
  description and source.

This module only turns the cohort tables into the rules' inputs, with Ibis (any backend), and
gathers the reasons. Rule variables are named by what they are computed from:

* ``k_<lesion_id>`` -- the karyotype has that lesion (``karyotype_lesions.csv``);
  ``k_n_abnormalities``, ``k_n_structural``, ``k_n_gains``, ``k_n_autosomal_monosomies``,
  ``k_modal_number`` -- counts read from the ISCN text (see :func:`karyotype_table`).
* ``<gene>`` -- the gene (symbol lower-cased, ``-`` written ``_``: ``flt3_itd`` is FLT3-ITD) is
  mutated (True) or wild type (False); NULL when not tested or absent.
* ``<gene>_allelic_ratio``, ``<gene>_vaf_percent``, ``<gene>_biallelic``, ``<gene>_bzip_inframe`` --
  from the columns ``allelic_ratio``, ``vaf_percent``, ``cebpa_biallelic``, ``cebpa_bzip_inframe`` of
  the mutated row. A wild-type result has no variant: ratio 0, VAF 0, not biallelic, no bZIP
  mutation. A mutated row without the value leaves it NULL.

A gene added to the rule file needs no code: the inputs are derived from the variables the
rules use. Missing inputs are never guessed: the engine's three-valued logic gives
``not_evaluable`` and names them (any karyotype-derived input is named ``karyotype``).
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import ibis
import ibis.expr.types as ir

from amlcohort.criteria.engine import NOT_EVALUABLE, Rule, RuleSet, apply_rules, rule_holds, ruleset
from amlcohort.criteria.iscn import read_karyotype
from amlcohort.schema.model import MUTATION_RESULTS

RULE_FILE = "eln_risk.csv"
LESION_FILE = "karyotype_lesions.csv"
RULESET = "eln.genetic_risk"
VERSIONS = {"eln2017": "2017", "eln2022": "2022"}
CATEGORIES = ("favorable", "intermediate", "adverse")

# rule-variable suffix -> column of the ``mutations`` table
_ATTRIBUTES = {
    "allelic_ratio": "allelic_ratio",
    "vaf_percent": "vaf_percent",
    "biallelic": "cebpa_biallelic",
    "bzip_inframe": "cebpa_bzip_inframe",
}
_BOOL_ATTRIBUTES = {"cebpa_biallelic", "cebpa_bzip_inframe"}
KARYOTYPE_COUNTS = (
    "k_n_abnormalities", "k_n_structural", "k_n_gains", "k_n_autosomal_monosomies", "k_modal_number",
)

# ---- rule data -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Lesion:
    lesion_id: str
    label: str
    pattern: str
    description: str
    source: str

    @property
    def variable(self) -> str:
        return f"k_{self.lesion_id}"


def _read_csv(filename: str) -> list[dict[str, str]]:
    text = resources.files("amlcohort.rules").joinpath(filename).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@functools.cache
def lesions() -> tuple[Lesion, ...]:
    """The cytogenetic lesions of ``karyotype_lesions.csv``, in file order."""
    return tuple(Lesion(r["lesion_id"].strip(), r["label"], r["pattern"], r["description"], r["source"])
                 for r in _read_csv(LESION_FILE))


def _version(version: str) -> str:
    try:
        return VERSIONS[version]
    except KeyError:
        raise ValueError(f"unknown ELN version {version!r}; known: {sorted(VERSIONS)}") from None


def eln_rules(version: str = "eln2017") -> RuleSet:
    """The ELN rule set of ``version`` (``"eln2017"`` or ``"eln2022"``)."""
    return ruleset(RULE_FILE, RULESET, _version(version))


@functools.cache
def _clause_labels() -> dict[tuple[str, str, int], str]:
    """(version, rule_id, clause) -> label: the first non-empty ``note`` of the clause's rows."""
    out: dict[tuple[str, str, int], str] = {}
    for r in _read_csv(RULE_FILE):
        key = (r["version"], r["rule_id"], int(r["clause"] or 1))
        if not out.get(key) and (r["note"] or "").strip():
            out[key] = r["note"].strip()
    return out


def _versions(version: str | Sequence[str]) -> tuple[str, ...]:
    out = (version,) if isinstance(version, str) else tuple(version)
    for v in out:
        _version(v)
    return out


# ---- karyotype -------------------------------------------------------------------------------

_LOOKUP_SCHEMA = {
    "_k_key": "string", "k_text": "string", "k_problem": "string", "k_incomplete": "boolean",
    **dict.fromkeys(KARYOTYPE_COUNTS, "int64"),
}


def karyotype_lookup(karyotypes: Iterable[str | None]) -> ir.Table:
    """One row per distinct ISCN text: what :func:`amlcohort.criteria.iscn.read_karyotype` read.

    Columns: ``_k_key`` (the text as given), ``k_text`` (feature text the lesion patterns search;
    NULL when unreadable), ``k_problem`` (why it is not evaluable), ``k_incomplete`` and the
    counts of ``KARYOTYPE_COUNTS`` (NULL when unreadable or incomplete). A small table built
    at the edge (distinct karyotypes only) and joined back in Ibis.
    """
    keys = sorted({k for k in karyotypes if k is not None})
    rows = [read_karyotype(k) for k in keys]
    data: dict[str, list[Any]] = {
        "_k_key": keys,
        "k_text": [r.feature_text for r in rows],
        "k_problem": [r.reason for r in rows],
        "k_incomplete": [r.incomplete if r.readable else None for r in rows],
        "k_n_abnormalities": [r.n_abnormalities for r in rows],
        "k_n_structural": [r.n_structural for r in rows],
        "k_n_gains": [r.n_gains for r in rows],
        "k_n_autosomal_monosomies": [r.n_autosomal_monosomies for r in rows],
        "k_modal_number": [r.modal_number if r.readable else None for r in rows],
    }
    return ibis.memtable(data, schema=ibis.schema(_LOOKUP_SCHEMA))


def karyotype_table(table: ir.Table, column: str = "karyotype", *,
                    lookup: ir.Table | None = None) -> ir.Table:
    """``table`` with every karyotype-derived rule input (``k_...``) and ``k_problem`` added.

    The distinct karyotype texts are read once, in Python, by the ISCN reader (a grammar the
    SQL engines cannot express: clones, ``idem``, constitutional ``c``, derivatives, FISH); the
    result is joined back, so the derivation stays one Ibis expression over the cohort. Lesion
    flags are the patterns of ``karyotype_lesions.csv`` searched in the feature text; in an
    incomplete karyotype (``inc``) a lesion not seen is unknown (NULL), not absent.
    Counting, documented in ``rules/README.md``: the abnormalities are the union over the clones
    (a sideline written in full counts its stemline abnormalities once), constitutional
    abnormalities (``c``) are not counted, ``+8,+8`` is two gains, ``-Y``/``-X`` count as
    abnormalities but not as autosomal monosomies, a token with ``(`` or a marker is structural.

    ``lookup``: :func:`karyotype_lookup` of (at least) the table's texts, already made (a caller
    that derives several things from one table reads and parses the texts once; with it, building
    the expression runs no query).
    """
    text = table[column].cast("string")
    if lookup is None:
        lookup = karyotype_lookup(karyotype_texts(table, column))
    joined = table.left_join(lookup, text == lookup._k_key)
    joined = joined.drop("_k_key")
    k_text = joined.k_text
    problem = ibis.cases((joined[column].isnull(), ibis.literal("no karyotype")),
                         else_=joined.k_problem)
    flags: dict[str, ir.Value] = {}
    for lesion in lesions():
        found = k_text.re_search(lesion.pattern)
        flags[lesion.variable] = ibis.ifelse(joined.k_incomplete.fill_null(False) & ~found.fill_null(False),
                                             ibis.null("boolean"), found)
    return joined.mutate(k_problem=problem, **flags)


def karyotype_texts(table: ir.Table, column: str = "karyotype") -> list[str | None]:
    """The distinct karyotype texts of ``table`` (one query)."""
    text = table[column].cast("string")
    return table.select(_k=text).distinct().to_pyarrow().column("_k").to_pylist()


def karyotype_features(table: ir.Table, column: str = "karyotype") -> dict[str, ir.Value]:
    """The ``k_...`` rule inputs of :func:`karyotype_table`, as a name -> column mapping."""
    t = karyotype_table(table, column)
    return {name: t[name] for name in t.columns if name.startswith("k_") and name != "k_text"}


def _lesion_list(features: Mapping[str, ir.Value]) -> ir.StringValue:
    """``"-7; +8"``: labels of the lesions found ("normal karyotype" when none and no abnormality)."""
    text: ir.StringValue = ibis.literal("")
    for lesion in lesions():
        flag = features[lesion.variable].fill_null(False)
        text = text.concat(ibis.ifelse(flag, ibis.literal(lesion.label + "; "), ibis.literal("")))
    text = ibis.ifelse(((features["k_n_abnormalities"] == 0) & (text == "")).fill_null(False),
                       ibis.literal("normal karyotype; "), text)
    text = text.re_replace("; $", "")
    return ibis.ifelse(features["k_n_abnormalities"].isnull(), ibis.null("string"), text)


# ---- mutations -------------------------------------------------------------------------------

def _gene_input(variable: str) -> tuple[str, str | None]:
    """Rule variable -> (gene symbol, mutations column or None for the mutated flag)."""
    for suffix, column in _ATTRIBUTES.items():
        if variable.endswith("_" + suffix):
            return variable[: -len(suffix) - 1].upper().replace("_", "-"), column
    return variable.upper().replace("_", "-"), None


def mutation_inputs(mutations: ir.Table, variables: Sequence[str]) -> ir.Table:
    """Pivot the long ``mutations`` table to one row per patient with the gene inputs ``variables``.

    A ``group_by``/``aggregate`` over conditional expressions (no pandas): ``mutated`` -> True
    (or the row's value), ``wild_type`` -> False (or 0), ``not_tested``/no row -> NULL.
    """
    gene = mutations.gene.strip().upper()
    result = mutations.result.strip().lower()
    aggs: dict[str, ir.Value] = {}
    for var in variables:
        symbol, column = _gene_input(var)
        mutated = (gene == symbol) & (result == "mutated")
        wild = (gene == symbol) & (result == "wild_type")
        if column is None:
            value: ir.Value = ibis.literal(1, "int64")
            wild_value: ir.Value = ibis.literal(0, "int64")
        elif column in _BOOL_ATTRIBUTES:
            # not CAST(boolean AS BIGINT), which PostgreSQL refuses
            value = (ibis.cases((mutations[column], 1), (~mutations[column], 0), else_=ibis.null("int64"))
                     if column in mutations.columns else ibis.null("int64"))
            wild_value = ibis.literal(0, "int64")
        else:
            value = (mutations[column].cast("float64") if column in mutations.columns
                     else ibis.null("float64"))
            wild_value = ibis.literal(0.0, "float64")
        dtype = "float64" if column is not None and column not in _BOOL_ATTRIBUTES else "int64"
        aggs[var] = ibis.cases((mutated, value), (wild, wild_value), else_=ibis.null(dtype)).max()
    wide = mutations.group_by("patient_id").aggregate(**aggs)
    booleans = {v: wide[v] == 1 for v in variables
                if _gene_input(v)[1] is None or _gene_input(v)[1] in _BOOL_ATTRIBUTES}
    return wide.mutate(**booleans) if booleans else wide


# ---- derivation ------------------------------------------------------------------------------

def _inputs(patients: ir.Table, mutations: ir.Table, variables: Sequence[str],
            lookup: ir.Table | None = None) -> ir.Table:
    karyo = {v for v in variables if v.startswith("k_")}
    genes = [v for v in variables if v not in karyo]
    t = karyotype_table(patients.select("patient_id", "karyotype"), lookup=lookup)
    features = {n: t[n] for n in t.columns if n.startswith("k_") and n not in ("k_text", "k_incomplete")}
    base = t.select(
        "patient_id",
        karyotype_lesions=_lesion_list(features),
        n_abnormalities=features["k_n_abnormalities"],
        **features,
    )
    if not genes:
        return base
    wide = mutation_inputs(mutations, genes).rename(_mutations_patient_id="patient_id")
    joined = base.left_join(wide, base.patient_id == wide._mutations_patient_id)
    return joined.drop("_mutations_patient_id")


def _reasons(rules: RuleSet, table: ir.Table, rule_id: ir.StringValue) -> ir.StringValue:
    """``"<rule_id>: <label>; <label>"`` -- the clauses of the deciding rule that hold."""
    labels = _clause_labels()
    cases = []
    for rule in rules.rules:
        text: ir.StringValue = ibis.literal("")
        for i, clause in enumerate(rule.clauses, start=1):
            held = rule_holds(Rule(rule.rule_id, "held", 1, (clause,), rule.source), table).fill_null(False)
            label = labels.get((rules.version, rule.rule_id, i)) or f"clause {i}"
            text = text.concat(ibis.ifelse(held, ibis.literal(label + "; "), ibis.literal("")))
        cases.append((rule_id == rule.rule_id, ibis.literal(rule.rule_id + ": ").concat(text)))
    return ibis.cases(*cases, else_=ibis.null("string")).re_replace("; $", "")


def _missing(missing: ir.StringValue) -> ir.StringValue:
    """Engine ``missing`` with every karyotype-derived input (``k_...``) named ``karyotype`` once."""
    has_k = missing.re_search(r"(^|;)k_").fill_null(False)
    genes = missing.re_replace(r"(^|;)k_[a-z0-9_]+", "").re_replace(r"^;", "")
    with_k = ibis.ifelse(genes == "", ibis.literal("karyotype"),
                         ibis.literal("karyotype;").concat(genes))
    return ibis.ifelse(has_k, with_k, genes)


def derive_risk(patients: ir.Table, mutations: ir.Table, *,
                version: str | Sequence[str] = ("eln2017", "eln2022"),
                karyotypes: ir.Table | None = None) -> ir.Table:
    """ELN genetic risk, one row per patient of ``patients`` (Ibis; any backend with regex).

    Columns: ``patient_id``, ``karyotype_lesions`` (labels of the lesions found),
    ``n_abnormalities``, and per version ``v`` (``eln2017``, ``eln2022``): ``v`` (favorable,
    intermediate, adverse or not_evaluable), ``v_rule`` (deciding rule id), ``v_reasons``
    (``"<rule_id>: <lesions/mutations>"``, or why it is not evaluable) and ``v_missing``
    (``;``-separated inputs that left it undecided: ``karyotype`` or gene inputs such as ``npm1``).
    ``karyotypes``: the :func:`karyotype_lookup` of the patients' texts, when already made.
    """
    versions = _versions(version)
    sets = [eln_rules(v) for v in versions]
    variables = list(dict.fromkeys(var for rs in sets for var in rs.variables))
    table = _inputs(patients, mutations, variables, karyotypes)
    # each version's rule set once per row, as columns; the reasons read the decided columns
    for v, rs in zip(versions, sets, strict=True):
        table = apply_rules(rs, table, outcome=v, rule_id=f"{v}_rule", missing=f"{v}_missing")
    table = table.mutate(**{f"{v}_missing": _missing(table[f"{v}_missing"]) for v in versions})
    out: dict[str, ir.Value] = {}
    for v, rs in zip(versions, sets, strict=True):
        missing, rule_id = table[f"{v}_missing"], table[f"{v}_rule"]
        problem = table.k_problem
        why = ibis.ifelse(missing.re_search("karyotype").fill_null(False) & problem.notnull(),
                          ibis.literal(" [").concat(problem.fill_null("")).concat("]"), ibis.literal(""))
        not_evaluable = (ibis.literal("not evaluable: missing ").concat(missing.re_replace(";", ", "))
                         .concat(why).concat(" (rule ").concat(rule_id).concat(")"))
        out[v] = table[v]
        out[f"{v}_rule"] = rule_id
        out[f"{v}_reasons"] = ibis.ifelse(table[v] == NOT_EVALUABLE, not_evaluable,
                                          _reasons(rs, table, rule_id))
        out[f"{v}_missing"] = missing
    return table.select("patient_id", "karyotype_lesions", "n_abnormalities", **out)


def risk_discordance(patients: ir.Table, mutations: ir.Table, *, version: str = "eln2017",
                     include_not_evaluable: bool = False) -> ir.Table:
    """Patients whose ELN category differs from ``risk_group_reported``.

    Columns: ``patient_id``, ``risk_group_reported``, ``eln_version``, ``eln_risk``, ``eln_rule``,
    ``eln_reasons``, ``eln_missing``, ``status`` (``discordant``, or ``not_evaluable`` -- listed only
    with ``include_not_evaluable``). A patient without a reported group is not listed.
    """
    _version(version)
    risk = derive_risk(patients, mutations, version=version)
    reported = patients.select(_rp_id=patients.patient_id, risk_group_reported=patients.risk_group_reported)
    joined = risk.join(reported, risk.patient_id == reported._rp_id)
    status = ibis.ifelse(joined[version] == NOT_EVALUABLE, ibis.literal("not_evaluable"),
                         ibis.literal("discordant"))
    out = joined.select(
        "patient_id", "risk_group_reported",
        eln_version=ibis.literal(version), eln_risk=joined[version], eln_rule=joined[f"{version}_rule"],
        eln_reasons=joined[f"{version}_reasons"], eln_missing=joined[f"{version}_missing"], status=status,
    )
    differs = out.risk_group_reported.notnull() & (out.eln_risk != out.risk_group_reported).fill_null(True)
    if not include_not_evaluable:
        differs = differs & (out.status == "discordant")
    return out.filter(differs)


# ---- one patient -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RiskResult:
    """The ELN risk of one patient, with what decided it."""

    version: str
    category: str | None
    rule_id: str | None
    reasons: tuple[str, ...]
    missing: tuple[str, ...]
    lesions: tuple[str, ...]
    n_abnormalities: int | None
    source: str | None
    text: str | None

    @property
    def evaluable(self) -> bool:
        return self.category not in (None, NOT_EVALUABLE)


_MUTATION_SCHEMA = ibis.schema({
    "patient_id": "string", "gene": "string", "result": "string", "allelic_ratio": "float64",
    "vaf_percent": "float64", "cebpa_biallelic": "boolean", "cebpa_bzip_inframe": "boolean",
})
_DETAIL_KEYS = ("result", "allelic_ratio", "vaf_percent", "cebpa_biallelic", "cebpa_bzip_inframe")


def _mutation_row(gene: str, value: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_MUTATION_SCHEMA.names)
    row.update(patient_id="p", gene=gene)
    if isinstance(value, Mapping):
        unknown = set(value) - set(_DETAIL_KEYS)
        if unknown:
            raise ValueError(f"mutation {gene}: unknown key(s) {sorted(unknown)}; allowed {_DETAIL_KEYS}")
        row.update(value)
    elif isinstance(value, bool):
        row["result"] = "mutated" if value else "wild_type"
    else:
        row["result"] = "not_tested" if value is None else value
    if row["result"] not in MUTATION_RESULTS:
        raise ValueError(f"mutation {gene}: result {row['result']!r} not in {MUTATION_RESULTS}")
    return row


@functools.cache
def _duckdb() -> ibis.BaseBackend:
    return ibis.duckdb.connect()


def classify_risk(karyotype: str | None, mutations: Mapping[str, Any], *,
                  version: str = "eln2017") -> RiskResult:
    """ELN risk of one patient, computed by the same compiled rules as :func:`derive_risk`.

    ``mutations`` maps a gene (``"NPM1"``, ``"FLT3-ITD"``, ...) to ``"mutated"``/``"wild_type"``/
    ``"not_tested"``, True/False, None (not tested), or a mapping with ``result`` and any of
    ``allelic_ratio``, ``vaf_percent``, ``cebpa_biallelic``, ``cebpa_bzip_inframe``. A gene not
    given is not tested.
    """
    _version(version)
    patients = ibis.memtable({"patient_id": ["p"], "karyotype": [karyotype]},
                             schema=ibis.schema({"patient_id": "string", "karyotype": "string"}))
    rows = [_mutation_row(g, v) for g, v in mutations.items()]
    muts = ibis.memtable({c: [r[c] for r in rows] for c in _MUTATION_SCHEMA.names}, schema=_MUTATION_SCHEMA)
    row = _duckdb().to_pyarrow(derive_risk(patients, muts, version=version)).to_pylist()[0]
    category, rule_id = row[version], row[f"{version}_rule"]
    text = row[f"{version}_reasons"]
    reasons: tuple[str, ...] = ()
    if category not in (None, NOT_EVALUABLE) and text:
        reasons = tuple(x for x in text.split(": ", 1)[1].split("; ") if x)
    rule = eln_rules(version).rule(rule_id) if rule_id else None
    return RiskResult(
        version=version, category=category, rule_id=rule_id, reasons=reasons,
        missing=tuple(m for m in (row[f"{version}_missing"] or "").split(";") if m),
        lesions=tuple(x for x in (row["karyotype_lesions"] or "").split("; ") if x),
        n_abnormalities=row["n_abnormalities"], source=rule.source if rule else None, text=text,
    )
