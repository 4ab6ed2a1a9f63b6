"""``amlcohort protocol``: the treatment protocol on the command line (a Typer sub-app, ``protocol_app``).

Commands: ``show`` (the definition), ``due PATIENT --on DATE`` (what is due and which rules fire),
``audit [PATH]`` (deviations over a cohort), ``ical PATIENT --out FILE`` (the planned schedule).
Research software for protocol documentation: not a medical device.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from amlcohort.problems import InputError

if TYPE_CHECKING:  # the commands import the protocol modules (Ibis, pandas) when they run
    from amlcohort.protocol.definition import Protocol
    from amlcohort.protocol.schedule import DueReport

protocol_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The treatment protocol: definition, schedule, rules, audit. Research and protocol "
    "documentation only; not a medical device.",
)
console = Console(width=160)
err_console = Console(stderr=True, width=160)

PROTOCOL_OPT = typer.Option(
    None, "--protocol", help="Protocol file (default: the one the bundle's study definition names)."
)
PATH_OPT = typer.Option(None, "--path", help="Cohort bundle folder (default: the embedded study).")
DATE_FORMATS = ["%Y-%m-%d"]
USAGE, DATA = 2, 1  # exit codes: a wrong argument / data or files that cannot be used


def _fail(message: str, code: int) -> typer.Exit:
    """Print one line (user text is never read as markup) and give the exit to raise."""
    err_console.print(Text(" ".join(str(message).split()), style="red"))
    return typer.Exit(code)


def _load_protocol(path: Path) -> Protocol:
    from amlcohort.protocol.definition import load_protocol

    try:
        return load_protocol(path)
    except InputError as e:
        raise _fail(str(e), DATA) from None


def _protocol(path: Path | None, cohort=None) -> Protocol:
    """``--protocol`` if given, else the study definition's protocol, else the embedded study's."""
    if path is not None:
        return _load_protocol(path)
    from amlcohort.protocol.definition import load_protocol, study_protocol

    try:
        p = study_protocol(cohort) if cohort is not None else load_protocol()
    except InputError as e:
        raise _fail(str(e), DATA) from None
    if p is None:
        study = getattr(cohort, "study", None)
        raise _fail(
            f"the study {getattr(study, 'name', '')!r} declares no protocol: pass one with --protocol FILE",
            USAGE,
        )
    return p


def _cohort(path: Path | None):
    from amlcohort.io.cohort import load_cohort

    try:
        return load_cohort(path)
    except InputError as e:
        raise _fail(str(e), DATA) from None
    except OSError as e:
        raise _fail(f"cannot read the bundle {path}: {e.strerror or e}", DATA) from None


def _due(cohort, patient: str, on: dt.date, p: Protocol, observations: dict | None = None) -> DueReport:
    from amlcohort.protocol.schedule import due
    from amlcohort.protocol.surveillance import DateOutOfRange, UnknownPatient

    try:
        return due(cohort, patient, on, p, observations)
    except UnknownPatient as e:
        raise _fail(str(e), USAGE) from None
    except DateOutOfRange as e:
        raise _fail(str(e), USAGE) from None


def _write(path: Path, write) -> None:
    """Write an output file; a folder that is missing, read-only or not a folder is one message."""
    try:
        write(path)
    except IsADirectoryError:
        raise _fail(f"cannot write {path}: it is a folder; give a file name", USAGE) from None
    except OSError as e:
        raise _fail(
            f"cannot write {path}: {e.strerror or e} (check that the folder exists and is writable)", DATA
        ) from None


def _cell(x: object) -> Text:
    """A table cell: data and user text shown as written, never interpreted as Rich markup."""
    return Text(_v(x))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe_csv_text(x: object) -> object:
    """OWASP CSV injection: text starting like a formula is prefixed with ``'`` (numbers unchanged)."""
    if isinstance(x, str) and x.startswith(FORMULA_START):
        return "'" + x
    return x


def _disclaimer(p: Protocol) -> None:
    console.print(Panel(Text(p.disclaimer), title="Not a medical device", style="yellow"))


def _v(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:g}"
    if isinstance(x, dt.datetime):
        return x.date().isoformat()
    return str(x)


def _row(t: Table, *cells: object, style: str | None = None) -> None:
    t.add_row(*(c if isinstance(c, Text) else _cell(c) for c in cells), style=style)


@protocol_app.command()
def show(protocol: Path = PROTOCOL_OPT, path: Path = PATH_OPT) -> None:
    """Show the protocol definition: regimen, dosing, rules, schedule, with their sources."""
    p = _protocol(protocol, _cohort(path) if path is not None else None)
    console.print(Text(f"{p.title}", style="bold"))
    console.print(Text(f"protocol {p.label} — {p.path}\nsource: {p.source}"))
    _disclaimer(p)
    t = Table(title="Regimen")
    for c in ("drug", "dose", "route", "when", "source"):
        t.add_column(c)
    for d in p.drugs:
        when = ", ".join(d.phases)
        if d.duration_text:
            when = f"{when}, {d.duration_text}" if when else d.duration_text
        when += f", arm(s) {', '.join(d.arms)}" if d.arms else ""
        index = " (index drug)" if d.name == p.index_drug else ""
        _row(t, d.name + index, d.dose_text, d.route, when, d.source)
        if d.dose_levels:
            _row(
                t,
                "",
                "dose levels: " + "; ".join(f"{lv.level}: {lv.text}" for lv in d.dose_levels),
                "",
                "",
                d.dose_levels_source,
            )
    if p.bsa_drugs:
        _row(
            t,
            "",
            f"BSA {p.dosing.bsa_formula} (allowed: {', '.join(p.dosing.bsa_formulas)}), rounded to "
            f"{p.dosing.bsa_decimals} decimals; dose rounded half up to {p.dosing.dose_rounding_mg:g} mg",
            "",
            "",
            p.dosing.source,
        )
    console.print(t)
    r = Table(title="Rules (thresholds from the rule file)")
    for c in ("rule set", "rule", "outcome", "criterion", "source"):
        r.add_column(c)
    for key, ref in p.rules.items():
        for rule in ref.rules.rules:
            _row(
                r,
                f"{key}\n{ref.ruleset} v{ref.version}",
                rule.rule_id,
                rule.outcome,
                rule.describe(),
                rule.source,
            )
    console.print(r)
    sv = Table(title="Surveillance (rolling from the last assessment)")
    for c in ("item", "phase", "what", "every", "due window", "anchor", "source"):
        sv.add_column(c)
    for it in p.surveillance:
        anchor = it.trigger or (
            f"study day {it.anchor_study_day_min or 1}-{it.anchor_study_day_max or '...'}"
        )
        _row(
            sv,
            it.id,
            it.phase,
            it.what,
            it.interval_text,
            f"-{it.window_opens} / +{it.grace_days} days",
            anchor,
            it.source,
        )
    console.print(sv)
    pw = Table(title="Treatment pathway")
    for c in ("step", "when", "text", "source"):
        pw.add_column(c)
    for st in p.pathway:
        _row(pw, st.id, st.when, st.text, st.source)
    dm = p.dose_modification
    if dm is not None:
        _row(pw, f"dose modification ({dm.drug})", "skin toxicity", "; ".join(dm.skin_terms), dm.source)
    console.print(pw)
    a = p.audit
    skin = f", skin interruption +{dm.interruption_grace_days} d" if dm is not None else ""
    console.print(
        Text(
            f"Audit windows: transfusion +{a.transfusion_window_days} d, supportive care "
            f"+{a.supportive_care_window_days} d, stopping rule +{a.stopping_rule_grace_days} d{skin}."
        )
    )


def print_due(report: DueReport, p: Protocol) -> None:
    sd = "" if report.study_day is None else f", study day {report.study_day}"
    off = f" ({report.off_reason})" if report.off_reason else ""
    head = Text(report.patient_id, style="bold")
    head.append(
        f" on {report.on}{sd}: phase {report.phase}{off} — protocol {report.protocol}; "
        f"data on or before {report.on} only"
    )
    console.print(head)
    t = Table(title="Surveillance")
    for c in ("item", "what", "status", "due date", "window", "overdue (days)", "recorded today", "source"):
        t.add_column(c)
    for i in report.items:
        _row(
            t,
            i.item_id,
            i.what,
            i.status,
            f"{i.due_date} (day {i.due_study_day})",
            f"{i.window_start} to {i.overdue_after}",
            str(i.days_overdue) if i.status == "overdue" else "",
            "yes" if i.done_on_date else "",
            i.source,
            style={"overdue": "red", "due": "yellow"}.get(i.status),
        )
    if not report.items:
        _row(t, "-", f"nothing scheduled (phase {report.phase})", "", "", "", "", "", "")
    console.print(t)
    r = Table(title="Rules on the data up to this date")
    for c in ("", "topic", "recommendation", "rule", "values", "source"):
        r.add_column(c)
    for x in report.recommendations:
        vals = ", ".join(f"{k}={_v(v)}" for k, v in x.values.items())
        if x.missing:
            vals += f"; missing: {', '.join(x.missing)}"
        _row(
            r,
            Text("FIRES", style="bold red") if x.fires else Text(""),
            x.topic,
            x.action,
            f"{x.rule}\n{x.criterion or ''}",
            vals,
            x.source,
        )
    console.print(r)
    _disclaimer(p)


@protocol_app.command("due")
def due_cmd(
    patient: str = typer.Argument(..., help="Patient identifier, e.g. P02."),
    on: dt.datetime = typer.Option(..., "--on", formats=DATE_FORMATS, help="Date (YYYY-MM-DD)."),
    path: Path = PATH_OPT,
    protocol: Path = PROTOCOL_OPT,
    symptomatic_anemia: bool = typer.Option(
        None,
        "--symptomatic-anemia/--no-symptomatic-anemia",
        help="Deteriorating anemia symptoms (not in the cohort data).",
    ),
    bleeding: bool = typer.Option(
        None, "--bleeding/--no-bleeding", help="Signs of bleeding (not in the data)."
    ),
) -> None:
    """What is due for PATIENT on DATE (overdue by how many days) and which protocol rules fire.

    A date after the data cut-off, or after the patient's death, is refused (exit 2)."""
    cohort = _cohort(path)
    p = _protocol(protocol, cohort)
    report = _due(
        cohort, patient, on.date(), p, {"symptomatic_anemia": symptomatic_anemia, "bleeding": bleeding}
    )
    print_due(report, p)


@protocol_app.command("audit")
def audit_cmd(
    path: Path = typer.Argument(None, help="Cohort bundle folder (default: the embedded study)."),
    protocol: Path = PROTOCOL_OPT,
    csv: Path = typer.Option(
        None,
        "--csv",
        help="Also write the deviations to this CSV file (formula-like text is prefixed with ').",
    ),
) -> None:
    """Adherence audit: every deviation with patient, date, rule and evidence, and a summary."""
    from amlcohort.protocol.audit import audit_section

    cohort = _cohort(path)
    p = _protocol(protocol, cohort)
    sec = audit_section(cohort, p)
    assert sec is not None  # a protocol was given
    console.print(Text(sec["title"], style="bold"))
    t = Table(title="Deviations")
    for c in ("patient", "date", "day", "rule", "evidence", "expected", "source"):
        t.add_column(c)
    for r in sec["deviations"].itertuples():
        _row(t, r.patient_id, str(r.date), _v(r.study_day), r.rule_id, r.evidence, r.expected, r.source)
    console.print(t)
    s = Table(title="Deviations per rule")
    for c in ("category", "rule", "deviations", "patients", "source"):
        s.add_column(c)
    for r in sec["summary"].itertuples():
        _row(s, r.category, r.rule_id, str(r.deviations), str(r.patients), r.source)
    console.print(s)
    b = Table(title="Deviations per patient")
    for c in ("patient", "deviations", "rules"):
        b.add_column(c)
    for r in sec["by_patient"].itertuples():
        _row(b, r.patient_id, str(r.deviations), r.rules)
    console.print(b)
    console.print(Text(sec["text"]))
    if csv is not None:
        frame = sec["deviations"].map(_safe_csv_text)
        _write(csv, lambda f: frame.to_csv(f, index=False))
        console.print(Text(f"deviations written to {csv}"))
    _disclaimer(p)


@protocol_app.command()
def ical(
    patient: str = typer.Argument(..., help="Patient identifier."),
    out: Path = typer.Option(..., "--out", help="The .ics file to write."),
    on: dt.datetime = typer.Option(
        None, "--on", formats=DATE_FORMATS, help="Plan from this date (default: today)."
    ),
    horizon: int = typer.Option(56, "--horizon", min=1, max=730, help="Days ahead to plan."),
    path: Path = PATH_OPT,
    protocol: Path = PROTOCOL_OPT,
) -> None:
    """Write PATIENT's planned surveillance schedule as an iCalendar (RFC 5545) file for the ward."""
    from amlcohort.protocol.schedule import plan, to_ical

    cohort = _cohort(path)
    p = _protocol(protocol, cohort)
    day = on.date() if on is not None else dt.date.today()
    report = _due(cohort, patient, day, p)
    events = plan(report, p, horizon)
    text = to_ical(events, disclaimer=p.disclaimer, protocol_label=p.label)
    _write(out, lambda f: f.write_text(text, encoding="utf-8", newline=""))
    console.print(
        Text(f"{len(events)} event(s) for {patient} from {day} (phase {report.phase}) written to {out}")
    )
    _disclaimer(p)
