"""The study definition: what is particular to one study, declared in the bundle's ``study.yaml``.

The cohort model (:mod:`amlcohort.schema.model`) says what a cohort's tables hold; the study
definition says what this study is: its name and citation, its arms and their regimens, the event
that defines study day 1, the response criteria and landmark, the CTCAE version of its laboratory
grading, and optional population rules, treatment protocol and published claims.

A bundle without ``study.yaml`` still gets a definition, derived from its data
(:func:`amlcohort.io.study.derive_study`): the arms are the distinct ``patients.study_arm``
values (label = code), day 1 is the first dose of any drug in ``exposures``, the response
criteria are ELN 2022 and the CTCAE version is the one the adverse events were graded with.

Every key of ``study.yaml`` is listed in :data:`STUDY_KEYS` (the data dictionary prints it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STUDY_FILE = "study.yaml"
CRITERIA_SETS = ("study", "eln2017", "eln2022")
CTCAE_VERSIONS = ("4.03", "5.0", "6.0")
DEFAULT_CRITERIA = "eln2022"
DEFAULT_CTCAE_VERSION = "5.0"

#: ``study.yaml`` keys: (key, required, meaning). Printed by the data dictionary.
STUDY_KEYS: tuple[tuple[str, bool, str], ...] = (
    ("name", True, "Study title, shown as the report's title."),
    ("citation", False, "Publication the study reports (shown in the report's methods)."),
    ("description", False, "One paragraph about the study."),
    (
        "arms",
        False,
        "List of arms: `code` (as in `patients.study_arm`), `label`, `regimen` (list of drugs: "
        "`drug`, `dose`, `unit`, `route`, `schedule`). Absent: the distinct `study_arm` values.",
    ),
    (
        "index_drug",
        False,
        "Drug whose first dose is study day 1 (e.g. `azacitidine`). Absent: the first dose of any drug.",
    ),
    (
        "response.criteria",
        False,
        f"Response criteria set: one of {', '.join(CRITERIA_SETS)} (default {DEFAULT_CRITERIA}); "
        "`study` is the criteria set shipped as `response.study` in rules/response.csv.",
    ),
    (
        "response.landmark_days",
        False,
        "Best response counts assessments up to this study day (absent: every assessment).",
    ),
    (
        "ctcae_version",
        False,
        f"CTCAE version for grading laboratory values: {', '.join(CTCAE_VERSIONS)} "
        "(absent: the version the adverse events were graded with, else "
        f"{DEFAULT_CTCAE_VERSION}).",
    ),
    ("population", False, "Population rule file (CSV, rule engine format), a path inside the bundle."),
    (
        "protocol",
        False,
        "Treatment protocol file (YAML), a path inside the bundle; enables the protocol audit.",
    ),
    ("claims", False, "Claims file (YAML), a path inside the bundle; enables the claims audit."),
)


@dataclass(frozen=True)
class RegimenDrug:
    """One drug of an arm's regimen, as planned (``schedule`` is free text, e.g. "bid days 1-14")."""

    drug: str
    dose: float | None = None
    unit: str | None = None
    route: str | None = None
    schedule: str = ""

    def describe(self) -> str:
        dose = f" {self.dose:g} {self.unit or ''}".rstrip() if self.dose is not None else ""
        rest = " ".join(x for x in (self.route or "", self.schedule) if x)
        return f"{self.drug}{dose}{' ' + rest if rest else ''}"


@dataclass(frozen=True)
class Arm:
    """A study arm: the code used in ``patients.study_arm``, its label and its regimen."""

    code: str
    label: str
    regimen: tuple[RegimenDrug, ...] = ()

    @property
    def drugs(self) -> tuple[str, ...]:
        return tuple(d.drug for d in self.regimen)


@dataclass(frozen=True)
class StudyDefinition:
    """What is particular to one study (see the module docstring).

    >>> s = StudyDefinition("My study", (Arm("aza_ven", "Azacitidine + venetoclax"),))
    >>> s.arm_label("aza_ven"), s.day1_text
    ('Azacitidine + venetoclax', 'first dose of any study drug')
    """

    name: str
    arms: tuple[Arm, ...]
    index_drug: str | None = None
    criteria: str = DEFAULT_CRITERIA
    response_landmark_days: int | None = None
    ctcae_version: str = DEFAULT_CTCAE_VERSION
    citation: str | None = None
    description: str = ""
    population: Path | None = None
    protocol: Path | None = None
    claims: Path | None = None
    declared: bool = True

    @property
    def arm_codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.arms)

    def arm(self, code: str) -> Arm:
        for a in self.arms:
            if a.code == code:
                return a
        raise KeyError(f"no arm {code!r} in the study definition; arms: {list(self.arm_codes)}")

    def arm_label(self, code: str) -> str:
        """The arm's label (the code itself for an arm the definition does not list)."""
        return next((a.label for a in self.arms if a.code == code), code)

    @property
    def arm_labels(self) -> dict[str, str]:
        return {a.code: a.label for a in self.arms}

    @property
    def day1_text(self) -> str:
        """What study day 1 is, in words (for captions and methods)."""
        return f"first {self.index_drug} dose" if self.index_drug else "first dose of any study drug"


__all__ = [
    "CRITERIA_SETS",
    "CTCAE_VERSIONS",
    "DEFAULT_CRITERIA",
    "DEFAULT_CTCAE_VERSION",
    "STUDY_FILE",
    "STUDY_KEYS",
    "Arm",
    "RegimenDrug",
    "StudyDefinition",
]
