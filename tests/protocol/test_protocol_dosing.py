"""BSA (Mosteller, DuBois) against known values, the rounding rule, and Python = Ibis."""

from __future__ import annotations

import pytest

from amlcohort.protocol import bsa, bsa_dose, load_protocol
from amlcohort.protocol.dosing import bsa_dose_table, round_half_up


def test_bsa_known_values() -> None:
    # 170 cm, 70 kg: Mosteller sqrt(170*70/3600) = 1.818 m², DuBois 1.810 m²
    assert bsa(170, 70) == pytest.approx(1.818, abs=5e-4)
    assert bsa(170, 70, "dubois") == pytest.approx(1.810, abs=5e-4)
    # Mosteller 1987: 180 cm, 80 kg -> 2.000 m²
    assert bsa(180, 80) == pytest.approx(2.0, abs=1e-9)
    assert bsa(160, 60, "dubois") == pytest.approx(1.622, abs=5e-4)


def test_ldac_dose_rounding_rule() -> None:
    d = bsa_dose(170, 70)  # the protocol's mg/m2 drug: cytarabine 25 mg/m2
    assert d.drug == "cytarabine"
    assert (d.formula, d.bsa_rounded_m2, d.dose_mg, d.dose_mg_per_m2, d.frequency) == (
        "mosteller",
        1.82,
        46,
        25,
        "bid",
    )
    assert "rounded" in d.rule and d.source
    assert bsa_dose(170, 70, formula="dubois").dose_mg == 45  # 25 x 1.81 = 45.25
    # half up: BSA 1.50 -> 37.5 mg -> 38 mg
    assert round_half_up(37.5, 1) == 38 and round_half_up(1.815, 0.01) == pytest.approx(1.82)


def test_invalid_inputs() -> None:
    for h, w in ((0, 70), (170, -1), (None, 70), (170, float("nan"))):
        with pytest.raises(ValueError):
            bsa(h, w)
    with pytest.raises(ValueError, match="unknown BSA formula"):
        bsa(170, 70, "haycock")


def test_cohort_doses_match_python(study) -> None:
    p = load_protocol()
    for formula in ("mosteller", "dubois"):
        rows = bsa_dose_table(study.table("patients"), p, formula).to_pyarrow().to_pylist()
        assert len(rows) == 13
        for r in rows:
            one = bsa_dose(r["height_cm"], r["weight_kg"], p, formula)
            assert (r["bsa_m2"], r["dose_mg"]) == (one.bsa_rounded_m2, one.dose_mg), r


def test_only_mg_per_m2_drugs_are_dosed_by_bsa() -> None:
    with pytest.raises(ValueError, match="not by body-surface area"):
        bsa_dose(170, 70, drug="sorafenib")
    with pytest.raises(KeyError, match="no drug"):
        bsa_dose(170, 70, drug="azacitidine")
