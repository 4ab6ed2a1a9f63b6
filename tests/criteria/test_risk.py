"""ELN 2017 / ELN 2022 genetic risk: every rule on both sides, the ISCN counting, the study's patients.

Sources of the cases:
* T5 -- Döhner H et al. Diagnosis and management of AML in adults: 2017 ELN recommendations.
  Blood 2017;129:424, Table 5 (rows and footnotes).
* T6 -- Döhner H et al. Diagnosis and management of AML in adults: 2022 recommendations from
  an international expert panel on behalf of the ELN. Blood 2022;140:1345, Table 6.
* Study -- Xu J et al. Int J Clin Exp Med Sci 2019;5:92, section 2.1 and Table 1.

Most cases run in ONE ``derive_risk`` query (module fixture); ``classify_risk`` (the one-row API)
is checked against it on the study's patients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ibis
import pytest

from amlcohort.criteria.engine import evaluate, ruleset
from amlcohort.criteria.risk import (
    classify_risk,
    derive_risk,
    eln_rules,
    karyotype_table,
    lesions,
    risk_discordance,
)

T5 = "ELN 2017 Table 5"
T6 = "ELN 2022 Table 6"
STUDY6 = ("FLT3-ITD", "NPM1", "CEBPA", "RUNX1", "ASXL1", "TP53")  # the study's panel (section 2.1)
MR_ONLY_2022 = ("BCOR", "EZH2", "SF3B1", "SRSF2", "STAG2", "U2AF1", "ZRSR2")
WT = {g: "wild_type" for g in (*STUDY6, *MR_ONLY_2022)}  # full ELN 2022 panel, all wild type
NK = "46,XX[20]"
MUTATION_SCHEMA = ibis.schema({
    "patient_id": "string", "gene": "string", "result": "string", "allelic_ratio": "float64",
    "vaf_percent": "float64", "cebpa_biallelic": "boolean", "cebpa_bzip_inframe": "boolean",
})


def mut(**kw: Any) -> dict[str, Any]:
    return {"result": "mutated", **kw}


def itd(ratio: float | None) -> dict[str, Any]:
    return mut(allelic_ratio=ratio)


def tp53(vaf: float | None) -> dict[str, Any]:
    return mut(vaf_percent=vaf)


@dataclass(frozen=True)
class Case:
    cid: str
    karyotype: str | None
    mutations: dict[str, Any]
    eln2017: str | None  # expected category; None = not checked for this version
    eln2022: str | None
    source: str
    rule2017: str | None = None
    rule2022: str | None = None
    missing: tuple[str, ...] = field(default=())  # expected missing inputs (for not_evaluable)


C: list[Case] = []


def case(*args: Any, **kw: Any) -> None:
    C.append(Case(f"c{len(C):03d}", *args, **kw))


# ---- cytogenetic rows (both tables) -------------------------------------------------------------
case("46,XY,t(8;21)(q22;q22.1)[20]", WT, "favorable", "favorable", f"{T5}/{T6} favorable: t(8;21)",
     "eln2017.favorable.cbf", "eln2022.favorable.cbf")
case("46,XX,inv(16)(p13.1q22)[20]", WT, "favorable", "favorable", f"{T5}/{T6} favorable: inv(16)")
case("46,XX,t(16;16)(p13.1;q22)[20]", WT, "favorable", "favorable", f"{T5}/{T6} favorable: t(16;16)")
case("46,XY,t(8;21)(q22;q22)[20]", {**WT, "ASXL1": mut()}, "favorable", "favorable",
     f"{T5} footnote / {T6} footnote: ASXL1 not adverse with a favorable-risk subtype")
case("46,XY,t(8;21)(q22;q22)[20]", {**WT, "RUNX1": mut()}, "favorable", "favorable",
     f"{T5} footnote / {T6} footnote: RUNX1 not adverse with a favorable-risk subtype")
case("45,XY,t(8;21)(q22;q22),-13[20]", WT, "favorable", "favorable",
     f"{T5}/{T6} monosomal-karyotype footnote: excluding core-binding-factor AML")
case("46,XX,t(9;11)(p21.3;q23.3)[20]", WT, "intermediate", "intermediate",
     f"{T5}/{T6} intermediate: t(9;11)", "eln2017.intermediate.t_9_11", "eln2022.intermediate.t_9_11")
case("46,XX,t(9;11)(p22;q23)[20]", {**WT, "ASXL1": mut(), "TP53": tp53(40)}, "intermediate", "intermediate",
     f"{T5}/{T6} footnote: t(9;11) takes precedence over concurrent adverse-risk gene mutations")
case("46,XY,t(6;9)(p23;q34.1)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: t(6;9)",
     "eln2017.adverse.rearrangement", "eln2022.adverse.rearrangement")
case("46,XY,t(6;11)(q27;q23.3)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: t(v;11q23.3)")
case("46,XY,t(11;19)(q23;p13.1)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: t(v;11q23.3)")
case("46,XY,t(9;22)(q34.1;q11.2)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: t(9;22)")
case("46,XY,inv(3)(q21.3q26.2)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: inv(3)")
case("46,XY,t(3;3)(q21.3;q26.2)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: t(3;3)")
case("46,XY,t(8;16)(p11.2;p13.3)[20]", WT, "intermediate", "adverse",
     f"{T6} adverse: t(8;16) (new in 2022; not classified in {T5})")
case("46,XY,t(3;21)(q26.2;q22.1)[20]", WT, "intermediate", "adverse",
     f"{T6} adverse: t(3q26.2;v) (new in 2022; not classified in {T5})")
case("45,XY,-5[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: -5")
case("46,XY,del(5)(q13q33)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: del(5q)")
case("45,XY,-7[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: -7", "eln2017.adverse.cytogenetic",
     "eln2022.adverse.cytogenetic")
case("45,XY,-17[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: -17")
case("46,XY,del(17)(p11.2)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: abn(17p)")
case("46,XY,i(17)(q10)[20]", WT, "adverse", "adverse", f"{T5}/{T6} adverse: abn(17p) (i(17q) loses 17p)")
case("46,XY,del(9)(q13q22)[20]", WT, "intermediate", "intermediate",
     f"{T5}/{T6} intermediate: cytogenetic abnormality not classified as favorable or adverse")
# complex karyotype: exactly 2 vs 3 abnormalities
case("48,XY,+8,+10[20]", WT, "intermediate", "intermediate",
     f"{T5}/{T6} complex: 2 abnormalities is not complex")
case("47,XY,+8,del(9)(q13q22),t(1;3)(p36;q21)[20]", WT, "adverse", "adverse",
     f"{T5}/{T6} complex karyotype: 3 unrelated abnormalities")
case("49,XX,+8,+10,+21[20]", WT, "adverse", "intermediate",
     f"{T6} complex footnote: hyperdiploid with >=3 trisomies and no structural abnormality excluded "
     f"(still complex in {T5})", "eln2017.adverse.cytogenetic", "eln2022.intermediate.other")
case("49,XX,+8,+10,+21,del(9)(q13q22)[20]", WT, "adverse", "adverse",
     f"{T6} complex footnote: the exclusion needs no structural abnormality")
case("47,XY,-13,+8,+10[20]", WT, "adverse", "adverse",
     f"{T6} complex footnote: 2 gains + 1 monosomy is not the hyperdiploid exclusion")
# monosomal karyotype
case("44,XY,-13,-20[20]", WT, "adverse", "adverse", f"{T5}/{T6} monosomal karyotype: 2 autosomal monosomies")
case("45,XY,-13,del(9)(q13q22)[20]", WT, "adverse", "adverse",
     f"{T5}/{T6} monosomal karyotype: 1 monosomy + 1 structural abnormality")
case("45,XY,-13[20]", WT, "intermediate", "intermediate",
     f"{T5}/{T6} monosomal karyotype: 1 monosomy alone is not")
case("45,X,-Y,del(9)(q13q22)[20]", WT, "intermediate", "intermediate",
     f"{T5}/{T6} monosomal karyotype: loss of X or Y excluded")

# ---- molecular rows -----------------------------------------------------------------------------
case(NK, {**WT, "NPM1": mut()}, "favorable", "favorable",
     f"{T5}/{T6} favorable: mutated NPM1 without FLT3-ITD",
     "eln2017.favorable.molecular", "eln2022.favorable.molecular")
case(NK, {**WT, "NPM1": mut(), "FLT3-ITD": itd(0.49)}, "favorable", "intermediate",
     f"{T5} favorable: NPM1 with FLT3-ITD low (<0.5); {T6} intermediate: NPM1 with FLT3-ITD",
     "eln2017.favorable.molecular", "eln2022.intermediate.flt3_itd")
case(NK, {**WT, "NPM1": mut(), "FLT3-ITD": itd(0.5)}, "intermediate", "intermediate",
     f"{T5} intermediate: NPM1 with FLT3-ITD high (>=0.5)", "eln2017.intermediate.npm1_flt3_itd_high")
case(NK, {**WT, "FLT3-ITD": itd(0.5)}, "adverse", "intermediate",
     f"{T5} adverse: wild-type NPM1 and FLT3-ITD high; {T6} intermediate: FLT3-ITD regardless of ratio",
     "eln2017.adverse.molecular", "eln2022.intermediate.flt3_itd")
case(NK, {**WT, "FLT3-ITD": itd(0.49)}, "intermediate", "intermediate",
     f"{T5} intermediate: wild-type NPM1 with FLT3-ITD low")
case(NK, {**WT, "CEBPA": mut(cebpa_biallelic=True, cebpa_bzip_inframe=False)}, "favorable", "intermediate",
     f"{T5} favorable: biallelic CEBPA; {T6}: only bZIP in-frame CEBPA is favorable")
case(NK, {**WT, "CEBPA": mut(cebpa_biallelic=False, cebpa_bzip_inframe=True)}, "intermediate", "favorable",
     f"{T5}: single CEBPA mutation not favorable; {T6} favorable: bZIP in-frame CEBPA, mono- or biallelic")
case(NK, {**WT, "CEBPA": mut(cebpa_biallelic=True, cebpa_bzip_inframe=True)}, "favorable", "favorable",
     f"{T5}/{T6} favorable: biallelic CEBPA with bZIP in-frame mutation")
# CEBPA + FLT3-ITD: one documented precedence per version (rules/README.md, "CEBPA and FLT3-ITD")
case(NK, {**WT, "CEBPA": mut(cebpa_biallelic=True, cebpa_bzip_inframe=True), "FLT3-ITD": itd(0.8)}, "adverse",
     "favorable", f"{T5}: 'wild-type NPM1 and FLT3-ITD high' is adverse with no CEBPA exception; "
     f"{T6}: bZIP in-frame CEBPA favorable, FLT3-ITD not a modifier", "eln2017.adverse.molecular",
     "eln2022.favorable.molecular")
case(NK, {**WT, "CEBPA": mut(cebpa_biallelic=True, cebpa_bzip_inframe=True), "FLT3-ITD": itd(0.3)},
     "favorable", "favorable", f"{T5}: biallelic CEBPA with FLT3-ITD low stays favorable; {T6}: favorable",
     "eln2017.favorable.molecular", "eln2022.favorable.molecular")
case(NK, {**WT, "RUNX1": mut()}, "adverse", "adverse", f"{T5}/{T6} adverse: mutated RUNX1")
case(NK, {**WT, "ASXL1": mut()}, "adverse", "adverse", f"{T5}/{T6} adverse: mutated ASXL1")
case(NK, {**WT, "ASXL1": mut(), "NPM1": mut()}, "favorable", "favorable",
     f"{T5}/{T6} footnote: ASXL1 not adverse with NPM1 (favorable-risk subtype)")
case(NK, {**WT, "ASXL1": mut(), "CEBPA": mut(cebpa_biallelic=True, cebpa_bzip_inframe=True)}, "favorable",
     "favorable", f"{T5}/{T6} footnote: ASXL1 not adverse with favorable CEBPA")
case(NK, {**WT, "ASXL1": mut(), "NPM1": mut(), "FLT3-ITD": itd(0.8)}, "adverse", "adverse",
     f"{T5}/{T6}: NPM1 with FLT3-ITD (high) is not a favorable subtype, so ASXL1 stays adverse")
case(NK, {**WT, "TP53": tp53(5.0)}, "adverse", "intermediate",
     f"{T5} adverse: mutated TP53 (any VAF); {T6}: TP53 adverse only at VAF >=10%")
case(NK, {**WT, "TP53": tp53(9.9)}, "adverse", "intermediate", f"{T6} footnote: TP53 VAF 9.9% < 10%")
case(NK, {**WT, "TP53": tp53(10.0)}, "adverse", "adverse", f"{T6} footnote: TP53 VAF 10% (at least 10%)",
     "eln2017.adverse.molecular", "eln2022.adverse.molecular")
case(NK, {**WT, "TP53": tp53(40.0), "NPM1": mut()}, "adverse", "adverse",
     f"{T5}/{T6}: TP53 has no favorable-subtype exception")
for gene in MR_ONLY_2022:
    case(NK, {**WT, gene: mut()}, "intermediate", "adverse",
         f"{T6} adverse: mutated {gene} (myelodysplasia-related; not in {T5})")
case(NK, {**WT, "SRSF2": mut(), "NPM1": mut()}, "favorable", "favorable",
     f"{T6} footnote: myelodysplasia-related gene not adverse with NPM1")
case("45,XX,-7[20]", {**WT, "NPM1": mut()}, "adverse", "adverse",
     f"{T6} footnote: NPM1 with adverse-risk cytogenetics is adverse (applied to 2017 too, see README)")
case("47,XX,+8,del(9)(q13q22),t(1;3)(p36;q21)[20]", {**WT, "NPM1": mut()}, "adverse", "adverse",
     f"{T6} footnote: NPM1 with a complex karyotype is adverse")
case(NK, WT, "intermediate", "intermediate",
     f"{T5}: wild-type NPM1 without FLT3-ITD, no adverse lesion; {T6}: not classified as favorable/adverse",
     "eln2017.intermediate.other", "eln2022.intermediate.other")

# ---- missing genetics: decided only when the available data decide ------------------------------
no_npm1 = {g: r for g, r in WT.items() if g != "NPM1"}
case(NK, no_npm1, "not_evaluable", "not_evaluable", "NPM1 untested: could be favorable", missing=("npm1",))
case("45,XY,-7[20]", {}, "adverse", "adverse", "-7 decides adverse with no gene tested")
case("46,XY,inv(3)(q21q26.2)[20]", {}, "adverse", "adverse", "inv(3) decides adverse with no gene tested")
case("46,XY,t(8;21)(q22;q22)[20]", {}, "favorable", "favorable", "t(8;21) decides with no gene tested")
case(NK, {**{g: r for g, r in WT.items() if g != "TP53"}, "ASXL1": mut()}, "adverse", "adverse",
     "TP53 untested but ASXL1 mutated and no favorable subtype: adverse either way")
case(NK, {**{g: r for g, r in WT.items() if g != "TP53"}, "NPM1": mut()}, "not_evaluable", "not_evaluable",
     "NPM1 mutated, TP53 untested: a TP53 mutation would make it adverse", missing=("tp53",))
case(NK, {**WT, "NPM1": mut(), "FLT3-ITD": itd(None)}, "not_evaluable", "intermediate",
     f"{T5} needs the FLT3-ITD allelic ratio; {T6} does not", missing=("flt3_itd_allelic_ratio",))
case(NK, {**WT, "TP53": tp53(None)}, "adverse", "not_evaluable", f"{T6} needs the TP53 VAF",
     missing=("tp53_vaf_percent",))
case(NK, {**WT, "CEBPA": mut()}, "not_evaluable", "not_evaluable", "CEBPA mutated, allelic status unknown",
     missing=("cebpa",))
case(None, WT, "not_evaluable", "not_evaluable", "no karyotype", missing=("karyotype",))
case("culture failed", WT, "not_evaluable", "not_evaluable", "unreadable karyotype", missing=("karyotype",))
case(NK, {g: "wild_type" for g in STUDY6}, "intermediate", "not_evaluable",
     f"{T6} needs the myelodysplasia-related genes the study did not test",
     missing=tuple(g.lower() for g in MR_ONLY_2022))

# ---- the study (Table 1). Panel of section 2.1 tested in everyone; FLT3-ITD negative in all (3.1);
# genes not named in Table 1 are wild type. CEBPA bZIP status is not reported (patient 3).
S6 = {g: "wild_type" for g in STUDY6}
STUDY = [
    # no, karyotype as entered, mutations, reported, ELN 2017, ELN 2022
    (1, "46,XX[20]", {**S6, "ASXL1": mut()}, "adverse", "adverse", "adverse"),
    (2, "46,XX[20]", {**S6, "ASXL1": mut()}, "adverse", "adverse", "adverse"),
    (3, "46,XX[20]", {**S6, "CEBPA": mut(cebpa_biallelic=True)}, "favorable", "favorable", "not_evaluable"),
    (4, "46,XY,inv(3)(q21q26.2)[20]", S6, "adverse", "adverse", "adverse"),
    (5, "46,XY,t(8;21)(q22;q22)[20]", S6, "favorable", "favorable", "favorable"),
    (6, "46,XX[20]", S6, "intermediate", "intermediate", "not_evaluable"),
    (7, "46,XX[20]", S6, "intermediate", "intermediate", "not_evaluable"),
    (8, "47,XX,+8[20]", S6, "intermediate", "intermediate", "not_evaluable"),
    (9, "46,XY[20]", S6, "intermediate", "intermediate", "not_evaluable"),
    (10, "46,XY[20]", S6, "intermediate", "intermediate", "not_evaluable"),
    (11, "46,XY[20]", {**S6, "ASXL1": mut()}, "adverse", "adverse", "adverse"),
    (12, "46,XY[20]", {**S6, "ASXL1": mut()}, "adverse", "adverse", "adverse"),
    (13, "47,XY,-7,+8,+8[15]/46,XY[5]", S6, "adverse", "adverse", "adverse"),
]
for no, kary, muts, _reported, e17, e22 in STUDY:
    case(kary, muts, e17, e22, f"Study Table 1, patient {no}")


# ---- helpers ------------------------------------------------------------------------------------

def tables(items: list[tuple[str, str | None, dict[str, Any], str | None]]) -> tuple[ibis.Table, ibis.Table]:
    """(patient_id, karyotype, mutations, reported) -> patients and long mutations memtables."""
    patients = ibis.memtable(
        {"patient_id": [i[0] for i in items], "karyotype": [i[1] for i in items],
         "risk_group_reported": [i[3] for i in items]},
        schema=ibis.schema({"patient_id": "string", "karyotype": "string", "risk_group_reported": "string"}))
    rows = []
    for pid, _, muts, _ in items:
        for gene, value in muts.items():
            row = dict.fromkeys(MUTATION_SCHEMA.names)
            row.update(patient_id=pid, gene=gene, **(value if isinstance(value, dict) else {"result": value}))
            rows.append(row)
    mutations = ibis.memtable({c: [r[c] for r in rows] for c in MUTATION_SCHEMA.names},
                              schema=MUTATION_SCHEMA)
    return patients, mutations


def records(con: ibis.BaseBackend, expr: ibis.Table) -> list[dict[str, Any]]:
    return sorted(con.to_pyarrow(expr).to_pylist(), key=lambda r: r["patient_id"])


@pytest.fixture(scope="module")
def derived() -> dict[str, dict[str, Any]]:
    patients, mutations = tables([(c.cid, c.karyotype, c.mutations, None) for c in C])
    return {r["patient_id"]: r for r in records(ibis.duckdb.connect(), derive_risk(patients, mutations))}


# ---- rule cases ---------------------------------------------------------------------------------

@pytest.mark.parametrize("c", [pytest.param(c, id=f"{c.cid}-{c.source[:60]}") for c in C])
def test_eln_rule(c: Case, derived: dict[str, dict[str, Any]]) -> None:
    row = derived[c.cid]
    for version, expected, rule in (("eln2017", c.eln2017, c.rule2017), ("eln2022", c.eln2022, c.rule2022)):
        if expected is None:
            continue
        assert row[version] == expected, f"{version} [{c.source}]: {row[f'{version}_reasons']}"
        if rule:
            assert row[f"{version}_rule"] == rule
        if expected == "not_evaluable":
            assert row[f"{version}_reasons"].startswith("not evaluable: missing")
            if c.missing:  # each expected name starts the listed input (tp53 -> tp53_vaf_percent)
                got = row[f"{version}_missing"].split(";")
                assert len(got) == len(c.missing), c.source
                assert all(g.startswith(m) for g, m in zip(got, c.missing, strict=True)), (got, c.source)
        else:
            assert row[f"{version}_missing"] is None
            assert row[f"{version}_reasons"].startswith(row[f"{version}_rule"] + ": ")


def test_reasons_name_lesions_and_mutations(derived: dict[str, dict[str, Any]]) -> None:
    by_source = {c.source: derived[c.cid] for c in C}
    p13 = by_source["Study Table 1, patient 13"]
    assert p13["eln2017_reasons"] == "eln2017.adverse.cytogenetic: -7; complex karyotype (>=3 abnormalities)"
    assert p13["karyotype_lesions"] == "-7; +8" and p13["n_abnormalities"] == 3
    p8 = by_source["Study Table 1, patient 8"]
    assert p8["karyotype_lesions"] == "+8"
    assert p8["eln2017_reasons"] == "eln2017.intermediate.other: no favorable- or adverse-risk lesion"
    p1 = by_source["Study Table 1, patient 1"]
    assert p1["eln2017_reasons"] == "eln2017.adverse.molecular: ASXL1 mutated"
    assert by_source["Study Table 1, patient 6"]["karyotype_lesions"] == "normal karyotype"
    assert by_source["Study Table 1, patient 3"]["eln2022_reasons"] == (
        "not evaluable: missing cebpa_bzip_inframe (rule eln2022.favorable.molecular)")


def test_several_reasons_are_all_listed() -> None:
    r = classify_risk(NK, {**WT, "TP53": tp53(30), "RUNX1": mut(), "ASXL1": mut()}, version="eln2022")
    assert r.category == "adverse"
    assert r.reasons == ("TP53 mutated, VAF >=10%", "ASXL1 mutated", "RUNX1 mutated")
    assert r.rule_id == "eln2022.adverse.molecular" and "Table 6" in (r.source or "")


# ---- ISCN counting ------------------------------------------------------------------------------

ISCN = [
    # karyotype, abnormalities, structural, gains, autosomal monosomies, modal number, lesions
    ("46,XX[20]", 0, 0, 0, 0, 46, set()),
    ("46,XY,inv(3)(q21q26.2)[20]", 1, 1, 0, 0, 46, {"inv3_t33", "t_3q26_v"}),
    ("46,XY,inv (3) (q22; 26)[20]", 1, 1, 0, 0, 46, {"inv3_t33", "t_3q26_v"}),  # Table 1's wording, as typed
    ("46,XY,t(8;21)(q22;q22)[20]", 1, 1, 0, 0, 46, {"t_8_21"}),
    ("47,XX,+8[20]", 1, 0, 1, 0, 47, {"plus_8"}),
    ("47,XY,-7,+8,+8[15]/46,XY[5]", 3, 0, 2, 1, 47, {"minus_7", "plus_8"}),
    ("46,XX,t(8;21)(q22;q22)[10]/47,idem,+8[10]", 2, 1, 1, 0, 46, {"t_8_21", "plus_8"}),  # idem not counted
    ("45,X,-Y[20]", 1, 0, 0, 0, 45, set()),  # loss of Y: an abnormality, not an autosomal monosomy
    ("46,XY,del(5)(q13q33),-7,+mar[20]", 3, 2, 0, 1, 46, {"del_5q", "minus_7"}),
    ("45,XY,-17[20]", 1, 0, 0, 1, 45, {"minus_17"}),  # -17 is not -7
    # t(9;11)(p21.3;q23.3) is an 11q23 rearrangement; the ELN rule excludes it from t(v;11q23.3)
    ("46,XY,t(9;11)(p21.3;q23.3)[20]", 1, 1, 0, 0, 46, {"t_9_11", "t_v_11q23"}),
    ("46,XY,t(3;3)(q21.3;q26.2)[20]", 1, 1, 0, 0, 46, {"inv3_t33", "t_3q26_v"}),
    ("69<3n>,XXY,+8[20]", 1, 0, 1, 0, 69, {"plus_8"}),
    ("46,XY[20].nuc ish(RUNX1T1,RUNX1)x2[200]", 0, 0, 0, 0, 46, set()),  # FISH part ignored
]


@pytest.fixture(scope="module")
def iscn_features() -> list[dict[str, Any]]:
    t = ibis.memtable({"i": list(range(len(ISCN))), "karyotype": [k[0] for k in ISCN]})
    out = ibis.duckdb.connect().to_pyarrow(karyotype_table(t)).to_pylist()
    return sorted(out, key=lambda r: r["i"])


@pytest.mark.parametrize("i", range(len(ISCN)), ids=[k[0] for k in ISCN])
def test_iscn_counting(i: int, iscn_features: list[dict[str, Any]]) -> None:
    _, n_abn, n_struct, n_gain, n_mono, modal, found = ISCN[i]
    row = iscn_features[i]
    got = tuple(row[k] for k in ("k_n_abnormalities", "k_n_structural", "k_n_gains",
                                 "k_n_autosomal_monosomies", "k_modal_number"))
    assert got == (n_abn, n_struct, n_gain, n_mono, modal)
    assert {le.lesion_id for le in lesions() if row[le.variable]} == found


@pytest.mark.parametrize("text", [None, "", "culture failed", "+8", "XX,46"])
def test_unreadable_karyotype_is_missing_not_normal(text: str | None) -> None:
    r = classify_risk(text, WT)
    assert r.category == "not_evaluable" and r.missing == ("karyotype",) and r.n_abnormalities is None


def test_hyperdiploid_exclusion_needs_more_than_46_chromosomes() -> None:
    """The 2022 rule on its inputs (engine.evaluate): 3 gains, no structural, modal 46 -> still complex."""
    rules = eln_rules("eln2022")
    neutral: dict[str, object] = {v: False for v in rules.variables}
    neutral.update(k_n_abnormalities=3.0, k_n_structural=0.0, k_n_gains=3.0, k_n_autosomal_monosomies=0.0,
                   tp53_vaf_percent=0.0)
    assert evaluate(rules, {**neutral, "k_modal_number": 49.0}).outcome == "intermediate"
    on_46 = evaluate(rules, {**neutral, "k_modal_number": 46.0})
    assert (on_46.outcome, on_46.rule_id) == ("adverse", "eln2022.adverse.cytogenetic")


# ---- the study ----------------------------------------------------------------------------------

def study_tables() -> tuple[ibis.Table, ibis.Table]:
    return tables([(f"P{no:02d}", k, m, rep) for no, k, m, rep, _, _ in STUDY])


@pytest.fixture(scope="module")
def study_derived() -> dict[str, dict[str, Any]]:
    patients, mutations = study_tables()
    return {r["patient_id"]: r for r in records(ibis.duckdb.connect(), derive_risk(patients, mutations))}


@pytest.mark.parametrize("no", [s[0] for s in STUDY])
def test_classify_risk_matches_derive_risk_on_study_patients(no: int, study_derived: dict) -> None:
    _, kary, muts, _, e17, e22 = STUDY[no - 1]
    row = study_derived[f"P{no:02d}"]
    for version, expected in (("eln2017", e17), ("eln2022", e22)):
        r = classify_risk(kary, muts, version=version)
        assert r.category == expected == row[version]
        assert r.rule_id == row[f"{version}_rule"] and r.text == row[f"{version}_reasons"]
        assert ";".join(r.missing) == (row[f"{version}_missing"] or "")


def test_study_2017_agrees_with_reported_groups() -> None:
    patients, mutations = study_tables()
    assert records(ibis.duckdb.connect(), risk_discordance(patients, mutations, version="eln2017")) == []


def test_study_2022_not_evaluable_listed_on_request() -> None:
    patients, mutations = study_tables()
    con = ibis.duckdb.connect()
    assert records(con, risk_discordance(patients, mutations, version="eln2022")) == []
    rows = records(con, risk_discordance(patients, mutations, version="eln2022", include_not_evaluable=True))
    assert [r["patient_id"] for r in rows] == ["P03", "P06", "P07", "P08", "P09", "P10"]
    assert {r["status"] for r in rows} == {"not_evaluable"}
    assert rows[0]["eln_missing"] == "cebpa_bzip_inframe" and rows[0]["risk_group_reported"] == "favorable"


def test_discordance_lists_both_values_and_reasons() -> None:
    patients, mutations = tables([
        ("A", NK, {**WT, "NPM1": mut()}, "intermediate"),   # ELN: favorable
        ("B", NK, {**WT, "ASXL1": mut()}, "adverse"),       # agrees
        ("C", "45,XY,-7[20]", {}, "intermediate"),          # ELN: adverse
        ("D", NK, WT, None),                                # nothing reported
    ])
    rows = records(ibis.duckdb.connect(), risk_discordance(patients, mutations))
    assert [(r["patient_id"], r["risk_group_reported"], r["eln_risk"]) for r in rows] == [
        ("A", "intermediate", "favorable"), ("C", "intermediate", "adverse")]
    assert rows[0]["eln_reasons"].startswith("eln2017.favorable.molecular: NPM1 mutated")
    assert rows[1]["eln_reasons"] == "eln2017.adverse.cytogenetic: -7" and rows[1]["eln_version"] == "eln2017"


def test_study_embedded_bundle(study) -> None:
    """The packaged study cohort (other module's data) classifies like its reported groups in 2017."""
    assert study.table("patients").count().execute() == 13
    out = risk_discordance(study.table("patients"), study.table("mutations"), version="eln2017")
    assert out.to_pyarrow().to_pylist() == []


# ---- backends -----------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite", "polars"])
def test_derive_risk_identical_on_a_second_backend(backend: str) -> None:
    patients, mutations = tables([(c.cid, c.karyotype, c.mutations, None) for c in C])
    expr = derive_risk(patients, mutations)
    assert records(getattr(ibis, backend).connect(), expr) == records(ibis.duckdb.connect(), expr)


# ---- API ----------------------------------------------------------------------------------------

def test_derive_one_version_only() -> None:
    patients, mutations = study_tables()
    cols = derive_risk(patients, mutations, version="eln2022").columns
    assert cols == ("patient_id", "karyotype_lesions", "n_abnormalities", "eln2022", "eln2022_rule",
                    "eln2022_reasons", "eln2022_missing")


def test_mutation_values_accept_bool_none_and_detail() -> None:
    assert classify_risk(NK, {**WT, "NPM1": True}).category == "favorable"
    assert classify_risk(NK, {**WT, "NPM1": None}).missing == ("npm1",)
    assert classify_risk(NK, {**WT, "NPM1": "not_tested"}).category == "not_evaluable"
    assert classify_risk(NK, {**WT, "npm1": "mutated"}).category == "favorable"  # symbol case-insensitive


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown ELN version"):
        classify_risk(NK, WT, version="eln2010")
    with pytest.raises(ValueError, match="result 'positive'"):
        classify_risk(NK, {"NPM1": "positive"})
    with pytest.raises(ValueError, match="unknown key"):
        classify_risk(NK, {"NPM1": {"result": "mutated", "vaf": 3}})


def test_rule_files_load_and_every_lesion_is_used_or_informational() -> None:
    used = {v for ver in ("2017", "2022") for v in ruleset("eln_risk.csv", "eln.genetic_risk", ver).variables}
    for le in lesions():
        assert le.variable in used or le.lesion_id == "plus_8", le.lesion_id
