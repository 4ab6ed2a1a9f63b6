"""Body-surface area and BSA-based doses (``mg/m2`` drugs of the protocol), in Python (one patient)
and Ibis (a cohort).

* Mosteller (default): ``BSA = sqrt(height_cm x weight_kg / 3600)`` (N Engl J Med 1987;317:1098).
* DuBois: ``BSA = 0.007184 x weight_kg^0.425 x height_cm^0.725`` (Arch Intern Med 1916;17:863).
* Rounding (stated in the protocol file, ``dosing``): BSA rounded half up to ``bsa_decimals``
  (2: 0.01 m²) first; the dose per administration = ``dose_mg_per_m2 x rounded BSA``, rounded
  half up to ``dose_rounding_mg`` (1 mg). Python and Ibis use the same arithmetic
  (``floor(x / step + 0.5) x step``), so one patient and the cohort get the same numbers.

170 cm, 70 kg: Mosteller 1.818 m² (1.82), DuBois 1.810 m² (1.81); 25 mg/m² (the study's low-dose
cytarabine) → 46 mg / 45 mg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ibis.expr.types as ir

from amlcohort.protocol.definition import BSA_FORMULAS, Drug, Protocol, load_protocol


def _check(height_cm: float, weight_kg: float) -> None:
    for name, v in (("height_cm", height_cm), ("weight_kg", weight_kg)):
        if v is None or isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 or math.isinf(v):
            raise ValueError(f"{name} must be a positive number, not {v!r}")


def bsa(height_cm: float, weight_kg: float, formula: str = "mosteller") -> float:
    """Body-surface area in m², unrounded."""
    _check(height_cm, weight_kg)
    if formula == "mosteller":
        return math.sqrt(height_cm * weight_kg / 3600.0)
    if formula == "dubois":
        return 0.007184 * weight_kg**0.425 * height_cm**0.725
    raise ValueError(f"unknown BSA formula {formula!r}; known: {', '.join(BSA_FORMULAS)}")


def round_half_up(x: float, step: float) -> float:
    """``x`` rounded to a multiple of ``step``, halves up (positive doses)."""
    return round(math.floor(x / step + 0.5) * step, 10)


@dataclass(frozen=True)
class BsaDose:
    drug: str
    height_cm: float
    weight_kg: float
    formula: str
    bsa_m2: float
    bsa_rounded_m2: float
    dose_mg_per_m2: float
    dose_mg: float
    frequency: str
    rule: str
    source: str


def bsa_drug(protocol: Protocol, drug: str | None = None) -> Drug:
    """The protocol's BSA-dosed drug ``drug`` (default: its first ``mg/m2`` drug)."""
    if drug is not None:
        d = protocol.drug(drug)
        if not d.bsa_dosed:
            raise ValueError(f"{d.name} is dosed in {d.unit}, not by body-surface area (mg/m2)")
        return d
    if not protocol.bsa_drugs:
        raise ValueError(f"protocol {protocol.label} has no drug dosed by body-surface area (mg/m2)")
    return protocol.bsa_drugs[0]


def bsa_dose(
    height_cm: float,
    weight_kg: float,
    protocol: Protocol | None = None,
    formula: str | None = None,
    drug: str | None = None,
) -> BsaDose:
    """The dose per administration of a ``mg/m2`` drug for one patient, with how it was computed."""
    p = protocol or load_protocol()
    d = bsa_drug(p, drug)
    formula = formula or p.dosing.bsa_formula
    if formula not in p.dosing.bsa_formulas:
        raise ValueError(
            f"BSA formula {formula!r} is not allowed by protocol {p.label}: {p.dosing.bsa_formulas}"
        )
    raw = bsa(height_cm, weight_kg, formula)
    b = round_half_up(raw, 10.0**-p.dosing.bsa_decimals)
    dose = round_half_up(d.dose * b, p.dosing.dose_rounding_mg)
    rule = (
        f"{d.dose:g} mg/m² x BSA ({formula}, rounded to "
        f"{p.dosing.bsa_decimals} decimals), dose rounded half up to {p.dosing.dose_rounding_mg:g} mg"
    )
    return BsaDose(
        d.name,
        height_cm,
        weight_kg,
        formula,
        raw,
        b,
        d.dose,
        dose,
        d.frequency,
        rule,
        f"{d.source}; {p.dosing.source}",
    )


# ---- Ibis -------------------------------------------------------------------------------------


def bsa_expr(
    height_cm: ir.NumericValue, weight_kg: ir.NumericValue, formula: str = "mosteller"
) -> ir.FloatingValue:
    if formula == "mosteller":
        return (height_cm * weight_kg / 3600.0).sqrt()
    if formula == "dubois":
        return 0.007184 * weight_kg.cast("float64").pow(0.425) * height_cm.cast("float64").pow(0.725)
    raise ValueError(f"unknown BSA formula {formula!r}; known: {', '.join(BSA_FORMULAS)}")


def round_half_up_expr(x: ir.NumericValue, step: float) -> ir.FloatingValue:
    return ((x / step + 0.5).floor() * step).round(10)


def bsa_dose_table(
    patients: ir.Table, protocol: Protocol | None = None, formula: str | None = None, drug: str | None = None
) -> ir.Table:
    """Per patient: ``bsa_m2`` (rounded) and ``dose_mg`` per administration of a ``mg/m2`` drug.

    NULL without height or weight.
    """
    p = protocol or load_protocol()
    d = bsa_drug(p, drug)
    formula = formula or p.dosing.bsa_formula
    b = round_half_up_expr(
        bsa_expr(patients.height_cm, patients.weight_kg, formula), 10.0**-p.dosing.bsa_decimals
    )
    return patients.select(
        "patient_id",
        "height_cm",
        "weight_kg",
        bsa_m2=b,
        dose_mg=round_half_up_expr(b * d.dose, p.dosing.dose_rounding_mg),
    )
