"""Karyotype (ISCN) reading for ELN risk: each case cites the table row or ISCN rule it comes from.

Sources (cited per case):
* T5 -- Döhner H et al. Blood 2017;129:424, Table 5 (rows and footnotes).
* T6 -- Döhner H et al. Blood 2022;140:1345, Table 6 (rows and footnotes).
* ISCN -- ISCN 2020 (McGowan-Jordan, Hastings, Moore, eds.; Karger) / ISCN 2024: clonal evolution
  (``idem``, sidelines in full), constitutional ``c``, whole-arm translocations (``p10;q10``),
  insertions, ``nuc ish`` with ``con``; and issue 10 (the cases it names).

All genes are wild type (full ELN 2022 panel), so the karyotype alone decides. All cases run in
one ``derive_risk`` query. A case expecting ``not_evaluable`` must say so with the reason: the
reader never guesses.
"""

from __future__ import annotations

from typing import Any

import ibis
import pytest

from amlcohort.criteria.iscn import normalize, read_karyotype
from amlcohort.criteria.risk import derive_risk

T5, T6 = "ELN 2017 Table 5", "ELN 2022 Table 6"
GENES = ("FLT3-ITD", "NPM1", "CEBPA", "RUNX1", "ASXL1", "TP53", "BCOR", "EZH2", "SF3B1", "SRSF2", "STAG2",
         "U2AF1", "ZRSR2")
F, I, A, NE = "favorable", "intermediate", "adverse", "not_evaluable"  # noqa: E741

# karyotype, ELN 2017, ELN 2022, source (row)
CASES: list[tuple[str, str, str, str]] = [
    # ---- issue 10: the confident wrong answers -------------------------------------------------
    ("46,XY,del(9)(q13q22)[5]/47,XY,+8,del(9)(q13q22)[10]/46,XY[5]", I, I,
     "ISCN sideline written in full (del(9) counted once: 2 abnormalities); T5/T6 complex needs >=3"),
    ("47,XY,inv(9)(p12q13)c,+8,del(20)(q11.2q13.3)[20]", I, I,
     "ISCN constitutional c not counted; T5/T6 complex karyotype row"),
    ("45,XY,inv(9)(p12q13)c,-18[20]", I, I, "ISCN constitutional c; T5/T6 monosomal karyotype footnote"),
    ("46,XY,t(9;11)(q34;q23)[20]", A, A, "T5/T6 adverse t(v;11q23.3): 9q34 is not MLLT3"),
    ("45,XY,der(5;17)(p10;q10)[20]", A, A,
     "ISCN whole-arm der: loss of 5q and 17p; T5/T6 adverse del(5q), abn(17p)"),
    ("46,XY,ins(10;11)(p12;q23q13)[20]", A, A, "T5/T6 adverse t(v;11q23.3): KMT2A::MLLT10 by insertion"),
    ("46,XY,ins(21;8)(q22;q21q22)[20]", F, F, "T5/T6 favorable t(8;21): RUNX1::RUNX1T1 by insertion"),
    ("46,XY[20].nuc ish(RUNX1T1,RUNX1)x3(RUNX1T1 con RUNX1x2)[180/200]", F, F,
     "T5/T6 favorable RUNX1::RUNX1T1; ISCN nuc ish con (cryptic fusion)"),
    ("45,XY,\u22127[20]", A, A, "T5/T6 adverse -7, Unicode minus U+2212"),
    # ---- favorable rows --------------------------------------------------------------------------
    ("46,XY,t(8;21)(q22;q22.1)[20]", F, F, "T5/T6 favorable t(8;21)(q22;q22.1)"),
    ("46,XY,t(8;21)(q21.3;q22.1)[20]", F, F, "T5/T6 favorable t(8;21); ISCN 2020 band 8q21.3 (RUNX1T1)"),
    ("46,XX,t(8;21)(q22;q22)[20]", F, F, "T5/T6 favorable t(8;21), older band names"),
    ("46,XY,t(8;21)[20]", F, F, "T5/T6 favorable t(8;21) written without breakpoints (unambiguous)"),
    ("45,X,-Y,t(8;21)(q22;q22)[20]", F, F, "T5/T6 favorable t(8;21) with loss of Y"),
    ("45,X,-X,t(8;21)(q22;q22)[20]", F, F, "T5/T6 favorable t(8;21) with loss of X"),
    ("46,XY,t(8;21)(q22;q22),del(9)(q13q22)[20]", F, F, "T5/T6 favorable t(8;21) with del(9q)"),
    ("47,XY,+8,t(8;21)(q22;q22),del(9)(q13q22),+4[20]", F, F,
     "T5/T6 CBF-AML excluded from complex karyotype"),
    ("45,XY,t(8;21)(q22;q22),-13,-20[20]", F, F, "T5/T6 monosomal karyotype footnote: CBF excluded"),
    ("46,XY,t(8;21)(q22;q22)[10]/47,idem,+8[10]", F, F, "T5/T6 favorable t(8;21); ISCN idem sideline"),
    ("46,XX,inv(16)(p13.1q22)[20]", F, F, "T5/T6 favorable inv(16)(p13.1q22)"),
    ("46,XX,inv(16)(p13q22)[20]", F, F, "T5/T6 favorable inv(16), older band names"),
    ("46,XX,inv(16)[20]", F, F, "T5/T6 favorable inv(16) without breakpoints (unambiguous)"),
    ("46,XX,t(16;16)(p13.1;q22)[20]", F, F, "T5/T6 favorable t(16;16)(p13.1;q22)"),
    ("47,XX,inv(16)(p13.1q22),+22[20]", F, F, "T5/T6 favorable inv(16) with +22"),
    ("47,XX,inv(16)(p13.1q22),+8,+22,-7[20]", F, F, "T5/T6 inv(16) with a complex karyotype stays favorable"),
    ("46,XY[20].nuc ish(CBFB,MYH11)x3(CBFB con MYH11x2)[150/200]", F, F,
     "T5/T6 favorable CBFB::MYH11; ISCN nuc ish con"),
    ("46,XY,ins(8;21)(q22;q22q22)[20]", F, F, "T5/T6 favorable t(8;21): insertion written recipient 8"),
    # ---- t(9;11) and 11q23 -----------------------------------------------------------------------
    ("46,XX,t(9;11)(p21.3;q23.3)[20]", I, I, "T5/T6 intermediate t(9;11)(p21.3;q23.3)"),
    ("46,XX,t(9;11)(p22;q23)[20]", I, I, "T5/T6 intermediate t(9;11), older band names p22;q23"),
    ("47,XX,t(9;11)(p22;q23),+8[20]", I, I, "T5/T6 intermediate t(9;11) with +8"),
    ("46,XX,t(9;11)(p21.3;q23.3),del(9)(q13q22),+8[20]", I, I,
     "T5/T6 complex-karyotype footnote: >=3 abnormalities in the absence of a WHO recurring "
     "translocation such as t(9;11): intermediate"),
    ("46,XX,t(9;11)[20]", NE, NE, "T5/T6 t(9;11) vs t(v;11q23.3) depends on the breakpoints: none given"),
    ("46,XY,t(6;11)(q27;q23)[20]", A, A, "T5/T6 adverse t(v;11q23.3): KMT2A::AFDN"),
    ("46,XY,t(11;19)(q23;p13.1)[20]", A, A, "T5/T6 adverse t(v;11q23.3): KMT2A::ELL"),
    ("46,XY,t(11;19)(q23.3;p13.3)[20]", A, A, "T5/T6 adverse t(v;11q23.3): KMT2A::MLLT1"),
    ("46,XY,t(10;11)(p12;q23)[20]", A, A, "T5/T6 adverse t(v;11q23.3): KMT2A::MLLT10"),
    ("46,XY,t(4;11)(q21;q23)[20]", A, A, "T5/T6 adverse t(v;11q23.3): KMT2A::AFF1"),
    ("46,XY,t(11;17)(q23;q21)[20]", A, A, "T5/T6 adverse t(v;11q23.3): KMT2A::MLLT6"),
    ("46,XY,t(1;11)(q21;q23)[20]", A, A, "T5/T6 adverse t(v;11q23.3): KMT2A::MLLT11"),
    ("46,XY,t(9;11)(p13;q23)[20]", A, A, "T5/T6 adverse t(v;11q23.3): 9p13 is not MLLT3"),
    ("46,XY,ins(11;9)(q23;p22p23)[20]", I, I, "T5/T6 intermediate: KMT2A::MLLT3 by insertion"),
    ("46,XY,t(11;12)(p15;q13)[20]", I, I, "T5/T6 intermediate: 11p15 (NUP98) is not 11q23"),
    ("46,XY,del(11)(q23)[20]", I, I, "T5/T6 intermediate: a deletion is not a KMT2A rearrangement"),
    # ---- other adverse rearrangements ----------------------------------------------------------------
    ("46,XY,t(6;9)(p23;q34.1)[20]", A, A, "T5/T6 adverse t(6;9)(p23;q34.1)"),
    ("46,XY,t(6;9)(p22;q34)[20]", A, A, "T5/T6 adverse t(6;9), DEK at 6p22.3"),
    ("46,XY,t(9;22)(q34.1;q11.2)[20]", A, A, "T5/T6 adverse t(9;22)(q34.1;q11.2)"),
    ("47,XY,+8,der(22)t(9;22)(q34;q11)[20]", A, A, "T5/T6 adverse t(9;22) as der(22) (Philadelphia)"),
    ("46,XY[20].nuc ish(ABL1,BCR)x3(ABL1 con BCRx2)[100/200]", A, A, "T5/T6 adverse BCR::ABL1 by FISH"),
    ("46,XY,inv(3)(q21.3q26.2)[20]", A, A, "T5/T6 adverse inv(3)(q21.3q26.2)"),
    ("46,XY,inv(3)(q21q26.2)[20]", A, A, "T5/T6 adverse inv(3), older band q21"),
    ("46,XY,inv (3) (q22; 26)[20]", A, A, "T5/T6 adverse inv(3) as written in the study's Table 1"),
    ("46,XY,t(3;3)(q21.3;q26.2)[20]", A, A, "T5/T6 adverse t(3;3)(q21.3;q26.2)"),
    ("45,XY,inv(3)(q21q26.2),-7[20]", A, A, "T5/T6 adverse inv(3) with -7"),
    ("46,XY,t(8;16)(p11.2;p13.3)[20]", I, A, "T6 adverse t(8;16) (not in T5)"),
    ("46,XY,t(3;21)(q26.2;q22.1)[20]", I, A, "T6 adverse t(3q26.2;v) (not in T5)"),
    ("46,XY,t(2;3)(p21;q26)[20]", I, A, "T6 adverse t(3q26.2;v): MECOM (not in T5)"),
    ("46,XY,t(3;12)(q26;p13)[20]", I, A, "T6 adverse t(3q26.2;v): MECOM::ETV6 (not in T5)"),
    # ---- -5 / del(5q) / -7 / -17 / abn(17p) ------------------------------------------------------
    ("45,XY,-5[20]", A, A, "T5/T6 adverse -5"),
    ("46,XY,del(5)(q13q33)[20]", A, A, "T5/T6 adverse del(5q)"),
    ("46,XY,del(5)(q31)[20]", A, A, "T5/T6 adverse del(5q), terminal"),
    ("46,XY,del(5q)[20]", A, A, "T5/T6 adverse del(5q), short form"),
    ("46,XY,5q-[20]", A, A, "T5/T6 adverse del(5q), pre-1995 notation 5q-"),
    ("46,XY,del(5)(p13)[20]", I, I, "T5/T6: del(5p) is not del(5q)"),
    ("46,XY,der(5)t(5;11)(q13;p15)[20]", A, A, "T5/T6 adverse: unbalanced der(5) loses 5q distal to q13"),
    ("45,XY,-7[20]", A, A, "T5/T6 adverse -7"),
    ("45,XY,\u22127[18]/46,XY[2]", A, A, "T5/T6 adverse -7, Unicode minus, with a normal clone"),
    ("45,XY,\u20137[20]", A, A, "T5/T6 adverse -7, en dash"),
    ("45,XY,\uff0d7[20]", A, A, "T5/T6 adverse -7, full-width hyphen-minus"),
    ("46,XY,del(7)(q22q36)[20]", I, I, "T5/T6: del(7q) is not -7 (not listed)"),
    ("45,XY,-17[20]", A, A, "T5/T6 adverse -17"),
    ("46,XY,del(17)(p11.2)[20]", A, A, "T5/T6 adverse abn(17p): del(17p)"),
    ("46,XY,i(17)(q10)[20]", A, A, "T5/T6 adverse abn(17p): i(17q)"),
    ("46,XY,i(17q)[20]", A, A, "T5/T6 adverse abn(17p): i(17q) short form"),
    ("46,XY,idic(17)(p11.2)[20]", A, A, "T5/T6 adverse abn(17p): idic(17)(p11.2)"),
    ("46,XY,add(17)(p13)[20]", A, A, "T5/T6 adverse abn(17p): add(17)(p13)"),
    ("46,XY,t(5;17)(q33;p13)[20]", A, A, "T5/T6 adverse abn(17p): translocation at 17p13"),
    ("46,XY[20].nuc ish(TP53x1,D17Z1x2)[140/200]", A, A, "T5/T6 adverse abn(17p): TP53 loss by FISH"),
    ("45,XY,der(5;17)(p10;q10)[15]/46,XY[5]", A, A, "T5/T6 adverse; ISCN whole-arm der with a normal clone"),
    ("45,XY,dic(5;17)(q11;p11)[20]", A, A, "T5/T6 adverse abn(17p): dic(5;17) with a 17p breakpoint"),
    # ---- complex and monosomal karyotypes -----------------------------------------------------------
    ("48,XY,+8,+10[20]", I, I, "T5/T6 complex: 2 abnormalities are not complex"),
    ("47,XY,+8,del(9)(q13q22),t(1;3)(p36;q21)[20]", A, A, "T5/T6 complex karyotype: 3 abnormalities"),
    ("46,XY,t(1;3)(p36;q21)[10]/47,idem,+8[5]/48,idem,+8,+11[5]", A, A,
     "T5/T6 complex: 3 abnormalities over idem sidelines"),
    ("46,XY,t(1;3)(p36;q21)[10]/47,XY,t(1;3)(p36;q21),+8[5]/48,XY,t(1;3)(p36;q21),+8,+11[5]", A, A,
     "T5/T6 complex: the same clones with sidelines written in full (3 abnormalities, not 6)"),
    ("46,XY,t(1;3)(p36;q21)[10]/47,XY,t(1;3)(p36;q21),+8[10]", I, I,
     "ISCN sideline in full: 2 abnormalities, not 3"),
    ("46,XY,t(1;3)(p36;q21)[10]/47,sl,+8[10]", I, I, "ISCN sl (stemline) sideline: 2 abnormalities"),
    ("46,XY,t(1;3)(p36;q21)[10]/47,sl,+8[5]/48,sdl1,+11[5]", A, A, "ISCN sdl1 sideline: 3 abnormalities"),
    ("49,XX,+8,+10,+21[20]", A, I, "T6 complex footnote: hyperdiploid with 3 trisomies excluded (not in T5)"),
    ("49,XX,+8,+10,+21,del(9)(q13q22)[20]", A, A, "T6 complex footnote: a structural abnormality counts"),
    ("47,XY,-13,+8,+10[20]", A, A, "T6 complex footnote: gains + monosomy is not the exclusion"),
    ("44,XY,-13,-20[20]", A, A, "T5/T6 monosomal karyotype: 2 autosomal monosomies"),
    ("45,XY,-13,del(9)(q13q22)[20]", A, A, "T5/T6 monosomal: 1 monosomy + 1 structural abnormality"),
    ("45,XY,-13[20]", I, I, "T5/T6 monosomal: 1 monosomy alone is not"),
    ("45,X,-Y,del(9)(q13q22)[20]", I, I, "T5/T6 monosomal: loss of Y excluded"),
    ("45,X,-X[20]", I, I, "T5/T6: loss of X alone is intermediate"),
    ("47,XY,+21c,+8[20]", I, I, "ISCN constitutional +21c (Down syndrome) not counted"),
    ("48,XY,+21c,+8,+10[20]", I, I, "ISCN +21c not counted: 2 acquired gains are not complex"),
    ("47,XY,+21c,+8,+10,+13[20]", A, I,
     "ISCN +21c not counted; T5 complex (3 trisomies); "
     "T6 footnote: hyperdiploid, 3 trisomies only, excluded"),
    ("46,XY,t(1;3)(p36;q21)c,del(9)(q13q22),+8,-7[20]", A, A, "ISCN constitutional t(1;3)c; -7 adverse"),
    ("46,XX,t(2;12)(q31;p13)c,del(9)(q13q22),+8[20]", I, I,
     "ISCN constitutional translocation not counted: 2 acquired abnormalities"),
    # ---- normal and other intermediate -----------------------------------------------------------------
    ("46,XX[20]", I, I, "T5/T6 intermediate: normal karyotype"),
    ("46,XY[20].nuc ish(RUNX1T1,RUNX1)x2[200]", I, I, "ISCN nuc ish normal signals"),
    ("47,XX,+8[20]", I, I, "T5/T6 intermediate: +8 alone"),
    ("46,XY,del(20)(q11.2q13.3)[20]", I, I, "T5/T6 intermediate: del(20q)"),
    ("45,X,-Y[20]", I, I, "T5/T6 intermediate: loss of Y"),
    ("47,XY,+mar[20]", I, I, "T5/T6 intermediate: one marker chromosome"),
    ("69<3n>,XXY,+8[20]", I, I, "T5/T6 intermediate; ISCN ploidy notation"),
    # ---- not readable: never a guess -----------------------------------------------------------------------
    ("culture failed", NE, NE, "unreadable text"),
    ("46,XY,t(9;11[20]", NE, NE, "ISCN: unbalanced parenthesis"),
    ("46,XY,foo(5)(q13)[20]", NE, NE, "ISCN: unknown abnormality"),
    ("46,XY[20].nuc ish(KMT2Ax2)(5'KMT2A sep 3'KMT2Ax1)[100/200]", NE, NE,
     "KMT2A break-apart without the partner: t(9;11) (intermediate) or t(v;11q23.3) (adverse)"),
    ("46,XY,t(3;5)[20]", NE, NE, "ISCN translocation without breakpoints (3q26 or not?)"),
    ("46,XY,+8,inc[20]", NE, NE, "ISCN inc: incomplete karyotype, nothing adverse seen"),
    ("45,XY,-7,inc[20]", NE, NE,
     "ISCN inc: -7 seen, but an unseen t(8;21)/inv(16) would make it favorable (T5/T6 CBF row first)"),
]
assert len(CASES) >= 80


@pytest.fixture(scope="module")
def derived() -> dict[str, dict[str, Any]]:
    ids = [f"k{i:03d}" for i in range(len(CASES))]
    patients = ibis.memtable({"patient_id": ids, "karyotype": [c[0] for c in CASES]},
                             schema=ibis.schema({"patient_id": "string", "karyotype": "string"}))
    rows = [(pid, g) for pid in ids for g in GENES]
    mutations = ibis.memtable(
        {"patient_id": [r[0] for r in rows], "gene": [r[1] for r in rows],
         "result": ["wild_type"] * len(rows),
         "allelic_ratio": [None] * len(rows), "vaf_percent": [None] * len(rows),
         "cebpa_biallelic": [None] * len(rows), "cebpa_bzip_inframe": [None] * len(rows)},
        schema=ibis.schema({"patient_id": "string", "gene": "string", "result": "string",
                            "allelic_ratio": "float64", "vaf_percent": "float64",
                            "cebpa_biallelic": "boolean", "cebpa_bzip_inframe": "boolean"}))
    out = ibis.duckdb.connect().to_pyarrow(derive_risk(patients, mutations)).to_pylist()
    return {r["patient_id"]: r for r in out}


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{i:03d}-{c[0][:40]}" for i, c in enumerate(CASES)])
def test_karyotype_eln_group(i: int, derived: dict[str, dict[str, Any]]) -> None:
    karyotype, e17, e22, source = CASES[i]
    row = derived[f"k{i:03d}"]
    assert (row["eln2017"], row["eln2022"]) == (e17, e22), f"[{source}] {row['eln2017_reasons']}"
    for v in ("eln2017", "eln2022"):
        if row[v] == NE:
            assert row[f"{v}_missing"] == "karyotype"
            assert "cannot read ISCN" in row[f"{v}_reasons"] or "incomplete" in source or "inc" in karyotype


def test_unreadable_karyotype_names_the_reason() -> None:
    k = read_karyotype("46,XY,foo(5)(q13)[20]")
    assert not k.readable and "foo(5)(q13)" in (k.reason or "")
    assert read_karyotype(None).reason == "no karyotype"


@pytest.mark.parametrize(("raw", "clean"), [
    ("45,XY,\u22127[20]", "45,xy,-7[20]"),
    ("45,XY,\u20137[20]", "45,xy,-7[20]"),
    ("47,XY,\uff0b8[20]", "47,xy,+8[20]"),
    ("46, XY, inv (3) (q21; q26)", "46,xy,inv(3)(q21;q26)"),
    ("46\uff0cXY\uff3b20\uff3d", "46,xy[20]"),
])
def test_unicode_normalisation(raw: str, clean: str) -> None:
    assert normalize(raw) == clean


@pytest.mark.parametrize(("text", "n", "structural", "gains", "monosomies", "constitutional"), [
    ("46,XY,del(9)(q13q22)[5]/47,XY,+8,del(9)(q13q22)[10]/46,XY[5]", 2, 1, 1, 0, ()),
    ("47,XY,inv(9)(p12q13)c,+8,del(20)(q11.2q13.3)[20]", 2, 1, 1, 0, ("inv(9)(p12q13)",)),
    ("45,XY,inv(9)(p12q13)c,-18[20]", 1, 0, 0, 1, ("inv(9)(p12q13)",)),
    ("47,XY,-7,+8,+8[15]/46,XY[5]", 3, 0, 2, 1, ()),
    ("46,XY,t(1;3)(p36;q21)[10]/47,sl,+8[5]/48,sdl1,+11[5]", 3, 1, 2, 0, ()),
    ("45,XY,der(5;17)(p10;q10)[20]", 1, 1, 0, 0, ()),
])
def test_counts(text: str, n: int, structural: int, gains: int, monosomies: int,
                constitutional: tuple[str, ...]) -> None:
    k = read_karyotype(text)
    assert (k.n_abnormalities, k.n_structural, k.n_gains, k.n_autosomal_monosomies) == (n, structural, gains,
                                                                                      monosomies)
    assert k.constitutional == constitutional


def test_whole_arm_derivative_and_insertion_features() -> None:
    ft = read_karyotype("45,XY,der(5;17)(p10;q10)[20]").feature_text or ""
    assert ",loss(5q)," in ft and ",loss(17p)," in ft
    ft = read_karyotype("46,XY,ins(10;11)(p12;q23q13)[20]").feature_text or ""
    assert ",j(10p12;11q23)," in ft
    ft = read_karyotype("46,XY[20].nuc ish(RUNX1T1,RUNX1)x3(RUNX1T1 con RUNX1x2)[180/200]").feature_text or ""
    assert ",fusion(runx1;runx1t1)," in ft and ",fishcn(runx1)=3," in ft
