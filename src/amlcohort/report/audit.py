"""The audit: every statement of the claims file beside the figure computed from the data.

A claim names the figure it states (``figure``, default its ``name``) and a ``relation``:
``equal`` (within ``tolerance``; a stated value with fewer decimals is compared at its own
precision), ``range`` (computed [min, max] equal to the stated [low, high] at the stated
precision), ``within`` (computed range inside the stated one), ``gt`` / ``lt``, or
``literature`` (about other studies: quoted, not auditable). ``figure`` may be a list of figure
names (e.g. one per patient the sentence names): ``equal``, ``gt`` and ``lt`` must then hold for
every one of them. Each claim comes out
``reproduced``, ``discrepant``, ``not computed`` (no such figure, or not estimable on this cohort)
or ``not auditable``. A median that is not reached while the claim states its value is
``discrepant`` (the data say "not reached", the paper a number), not ``not computed``.
Contradictions inside the paper show up as claims about the same figure with different
verdicts; nothing here lists them by hand.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from amlcohort.problems import InputError, Problem

RELATIONS = ("equal", "range", "within", "gt", "lt", "literature")
REQUIRED = ("name", "section", "sentence", "value", "relation")


@dataclass(frozen=True)
class Claim:
    name: str
    section: str
    sentence: str
    value: Any
    relation: str
    unit: str = ""
    tolerance: float | None = None
    figure: str | list[str] | None = None
    scope: str = ""

    @property
    def figure_name(self) -> str:
        f = self.figure or self.name
        return ", ".join(f) if isinstance(f, list) else f

    @property
    def figure_names(self) -> tuple[str, ...]:
        f = self.figure or self.name
        return tuple(f) if isinstance(f, list) else (f,)

    def computed(self, figures: dict[str, Any]) -> Any:
        """The figure(s) the claim states, from ``figures`` (a list when it names several)."""
        if isinstance(self.figure, list):
            values = [figures.get(n) for n in self.figure]
            return None if any(v is None for v in values) else values
        return figures.get(self.figure_name)


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    computed: Any
    status: str
    detail: str


def default_claims_path() -> Path:
    return Path(str(resources.files("amlcohort.data").joinpath("study", "claims.yaml")))


def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Read and check a claims file; raise :class:`InputError` naming the claim and field."""
    path = Path(path) if path else default_claims_path()
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    items = raw.get("claims") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise InputError(
            f"claims file {path}",
            [Problem("error", path.name, "needs a list under `claims:`", code="claims")],
        )
    problems, claims, seen = [], [], set()
    for i, c in enumerate(items, start=1):
        missing = [k for k in REQUIRED if not isinstance(c, dict) or k not in c]
        if missing:
            problems.append(
                Problem("error", path.name, f"claim lacks {missing}", i, missing[0], None, "claims")
            )
            continue
        if c["relation"] not in RELATIONS:
            problems.append(
                Problem(
                    "error",
                    path.name,
                    f"relation must be one of {RELATIONS}",
                    i,
                    "relation",
                    c["relation"],
                    "claims",
                )
            )
            continue
        if isinstance(c.get("figure"), list) and (
            c["relation"] not in ("equal", "gt", "lt") or not all(isinstance(x, str) for x in c["figure"])
        ):
            problems.append(
                Problem("error", path.name, "a list of figures needs relation equal, gt or lt and names",
                        i, "figure", c["figure"], "claims")
            )
            continue
        bad = _bad_value(c)
        if bad:
            problems.append(Problem("error", path.name, bad[1], i, bad[0], c.get(bad[0]), "claims"))
            continue
        if c["name"] in seen:
            problems.append(
                Problem("error", path.name, "duplicate claim name", i, "name", c["name"], "claims")
            )
            continue
        seen.add(c["name"])
        claims.append(Claim(**{k: c[k] for k in Claim.__dataclass_fields__ if k in c}))
    if problems:
        raise InputError(f"claims file {path}", problems)
    return claims


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _bad_value(c: dict) -> tuple[str, str] | None:
    """(field, reason) when a claim's ``tolerance`` or ``value`` cannot be what it means to be."""
    if "tolerance" in c and not (_number(c["tolerance"]) and c["tolerance"] >= 0):
        return "tolerance", "must be a number of 0 or more (the largest difference still counted as equal)"
    value = c["value"]
    if c["relation"] in ("gt", "lt") and not _number(value):
        return "value", f"relation {c['relation']} needs a number"
    if isinstance(value, str) and value.strip().endswith("%"):
        return "value", "a number, without the % sign (say the unit with `unit: \"%\"`)"
    return None


def _decimals(x: Any) -> int:
    text = repr(float(x)) if not isinstance(x, str) else x
    return len(text.split(".")[1]) if "." in text and not text.endswith(".0") else 0


def _close(stated: Any, computed: Any, tolerance: float | None) -> bool:
    if isinstance(stated, str) or isinstance(computed, str):
        return str(stated) == str(computed)
    if tolerance is not None:
        return abs(float(computed) - float(stated)) <= tolerance + 1e-12
    if isinstance(stated, int) and float(stated).is_integer():
        return math.isclose(float(computed), float(stated), abs_tol=1e-9) or (
            not float(computed).is_integer() and round(float(computed)) == stated
        )
    return round(float(computed), _decimals(stated)) == float(stated)


def _as_date(x: Any) -> dt.date:
    return x if isinstance(x, dt.date) else dt.date.fromisoformat(str(x)[:10])


def judge(claim: Claim, computed: Any) -> Verdict:
    """Compare one claim with its computed figure."""
    if claim.relation == "literature":
        return Verdict(claim, None, "not auditable", "about other studies")
    if computed is None:
        return Verdict(claim, None, "not computed", f"no figure named {claim.figure_name!r}")
    v, rel = claim.value, claim.relation
    if isinstance(claim.figure, list):
        ok = all(judge(Claim(claim.name, claim.section, claim.sentence, v, rel, tolerance=claim.tolerance), c)
                 .status == "reproduced" for c in computed)
        return Verdict(claim, computed, "reproduced" if ok else "discrepant", _describe(claim, computed))
    if rel == "equal":
        ok = _close(v, computed, claim.tolerance)
    elif rel == "gt":
        ok = float(computed) > float(v)
    elif rel == "lt":
        ok = float(computed) < float(v)
    elif rel == "range":
        ok = (
            isinstance(computed, list)
            and len(computed) == 2
            and all(_close(s, c, claim.tolerance) for s, c in zip(v, computed, strict=True))
        )
    else:  # within
        lo, hi = v
        if isinstance(lo, str):
            ok = _as_date(lo) <= _as_date(computed[0]) and _as_date(computed[1]) <= _as_date(hi)
        else:
            ok = float(lo) <= float(computed[0]) and float(computed[1]) <= float(hi)
    return Verdict(claim, computed, "reproduced" if ok else "discrepant", _describe(claim, computed))


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, list):
        return "–".join(_fmt(i) for i in x)
    return str(x)


def _describe(claim: Claim, computed: Any) -> str:
    op = {"equal": "=", "gt": ">", "lt": "<", "range": "range", "within": "within"}[claim.relation]
    return f"paper: {op} {_fmt(claim.value)} {claim.unit}; data: {_fmt(computed)}".strip()


def _not_reached(name: str, figures: dict[str, Any], not_estimable: dict[str, str] | None) -> bool:
    """Whether figure ``name`` was computed and is a median that is not reached: ``results.json``
    holds it as ``null`` with a ``not_estimable`` reason starting "not reached"."""
    reason = (not_estimable or {}).get(name)
    return (
        name in figures
        and figures[name] is None
        and isinstance(reason, str)
        and reason.strip().lower().startswith("not reached")
    )


def _why_not_reached(name: str, reason: str, named: bool) -> str:
    """The rest of a "not reached: ..." reason (e.g. "survival stays above 0.5"), with the figure's
    name when the claim names several figures."""
    rest = reason.strip()[len("not reached") :].lstrip(" :;,-")
    return f"{name}: {rest}" if named and rest else name if named else rest


def _states_a_number(claim: Claim) -> bool:
    """The claim gives the figure's value (``equal`` a number): a median that is not reached
    contradicts it. A bound (``gt``/``lt``) may hold for a median beyond the follow-up, so it is not
    judged here."""
    return claim.relation == "equal" and _number(claim.value)


def audit(
    figures: dict[str, Any], claims: list[Claim] | None = None, not_estimable: dict[str, str] | None = None
) -> list[Verdict]:
    """Every claim judged against ``figures`` (the ``figures`` of ``results.json``); a figure that is
    not estimable on this cohort gives ``not computed`` with the reason (``not_estimable``).

    A median that was computed but is not reached (``null`` with a "not reached" reason) while the
    claim states its value (``equal`` a number) is ``discrepant``: the data say "not reached", the
    paper gives a number (e.g. "median not reached; the claim states 7.0"). A figure that does not
    exist, or is null for another reason, stays ``not computed``."""
    out = []
    for c in claims if claims is not None else load_claims():
        v = judge(c, c.computed(figures))
        if v.status == "not computed" and c.relation != "literature":
            v = _missing(c, figures, not_estimable, v)
        out.append(v)
    return out


def _missing(
    c: Claim, figures: dict[str, Any], not_estimable: dict[str, str] | None, verdict: Verdict
) -> Verdict:
    """The verdict of a claim whose figure (or one of whose figures) is missing or null."""
    absent = [n for n in c.figure_names if figures.get(n) is None]
    unreached = [n for n in absent if _not_reached(n, figures, not_estimable)]
    if unreached and len(unreached) == len(absent) and _states_a_number(c):
        # every missing figure is a median not reached, and each must equal the stated number
        why = [_why_not_reached(n, (not_estimable or {})[n], isinstance(c.figure, list)) for n in unreached]
        where = "; ".join(w for w in why if w)
        computed = None if not isinstance(c.figure, list) else [figures.get(n) for n in c.figure_names]
        stated = f"{c.value} {c.unit}".strip()
        detail = f"median not reached{f' ({where})' if where else ''}; the claim states {stated}"
        return Verdict(c, computed, "discrepant", detail)
    why = [f"{n}: {not_estimable[n]}" for n in c.figure_names if not_estimable and n in not_estimable]
    if why:
        return Verdict(c, None, "not computed", "not estimable: " + "; ".join(why))
    return verdict


def contradictions(verdicts: list[Verdict]) -> list[tuple[Verdict, Verdict]]:
    """Pairs of claims about the same figure that the data cannot both satisfy."""
    by: dict[str, list[Verdict]] = {}
    for v in verdicts:
        if v.status in ("reproduced", "discrepant"):
            by.setdefault(v.claim.figure_name, []).append(v)
    out = []
    for vs in by.values():
        good = [v for v in vs if v.status == "reproduced"]
        bad = [v for v in vs if v.status == "discrepant"]
        out += [(g, b) for g in good for b in bad]
    return out
