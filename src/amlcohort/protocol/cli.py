"""``amlcohort protocol``: the treatment protocol on the command line (a Typer sub-app, ``protocol_app``).

Commands: ``show`` (the definition), ``due PATIENT --on DATE`` (what is due and which rules fire),
``audit [PATH]`` (deviations over a cohort), ``ical PATIENT --out FILE`` (the planned schedule).
Research software for protocol documentation: not a medical device.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from amlcohort.io.cohort import load_cohort
from amlcohort.problems import InputError
from amlcohort.protocol.audit import audit_section
from amlcohort.protocol.definition import Protocol, load_protocol
from amlcohort.protocol.schedule import DueReport, due, plan, to_ical

protocol_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="The treatment protocol: definition, schedule, rules, audit. Research and protocol "
    "documentation only; not a medical device.",
)
console = Console(width=160)

PROTOCOL_OPT = typer.Option(None, "--protocol", help="Protocol file (default: the study's xu2019.yaml).")
PATH_OPT = typer.Option(None, "--path", help="Cohort bundle folder (default: the embedded study).")
DATE_FORMATS = ["%Y-%m-%d"]


def _protocol(path: Path | None) -> Protocol:
    try:
        return load_protocol(path)
    except InputError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from None


def _cohort(path: Path | None):
    try:
        return load_cohort(path)
    except InputError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from None


def _disclaimer(p: Protocol) -> None:
    console.print(Panel(p.disclaimer, title="Not a medical device", style="yellow"))


def _v(x: object) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:g}"
    if isinstance(x, dt.datetime):
        return x.date().isoformat()
    return str(x)


@protocol_app.command()
def show(protocol: Path = PROTOCOL_OPT) -> None:
    """Show the protocol definition: regimen, dosing, rules, schedule, with their sources."""
    p = _protocol(protocol)
    console.print(f"[bold]{p.title}[/bold]\nprotocol {p.label} — {p.path}\nsource: {p.source}")
    _disclaimer(p)
    t = Table(title="Regimen")
    for c in ("drug", "dose", "route", "when", "source"):
        t.add_column(c)
    s, y = p.sorafenib, p.cytarabine
    t.add_row("sorafenib", f"{s.dose_mg:g} mg {s.frequency}", s.route, ", ".join(s.phases), s.source)
    t.add_row(
        "",
        "dose levels: " + "; ".join(f"{lv.level}: {lv.text}" for lv in s.dose_levels),
        "",
        "",
        s.dose_levels_source,
    )
    t.add_row(
        "cytarabine",
        f"{y.dose_mg_per_m2:g} mg/m² {y.frequency}",
        y.route,
        f"{y.min_days}-{y.max_days} days, arm(s) {', '.join(y.arms)}",
        y.source,
    )
    t.add_row(
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
            r.add_row(
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
        sv.add_row(
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
        pw.add_row(st.id, st.when, st.text, st.source)
    pw.add_row(
        "dose modification",
        "skin toxicity",
        "; ".join(p.dose_modification.skin_terms),
        p.dose_modification.source,
    )
    console.print(pw)
    a = p.audit
    console.print(
        f"Audit windows: transfusion +{a.transfusion_window_days} d, supportive care "
        f"+{a.supportive_care_window_days} d, stopping rule +{a.stopping_rule_grace_days} d, skin "
        f"interruption +{p.dose_modification.interruption_grace_days} d."
    )


def print_due(report: DueReport, p: Protocol) -> None:
    sd = "" if report.study_day is None else f", study day {report.study_day}"
    off = f" ({report.off_reason})" if report.off_reason else ""
    console.print(
        f"[bold]{report.patient_id}[/bold] on {report.on}{sd}: phase {report.phase}{off} — "
        f"protocol {report.protocol}; data on or before {report.on} only"
    )
    t = Table(title="Surveillance")
    for c in ("item", "what", "status", "due date", "window", "overdue (days)", "recorded today", "source"):
        t.add_column(c)
    for i in report.items:
        style = {"overdue": "red", "due": "yellow"}.get(i.status)
        t.add_row(
            i.item_id,
            i.what,
            i.status,
            f"{i.due_date} (day {i.due_study_day})",
            f"{i.window_start} to {i.overdue_after}",
            str(i.days_overdue) if i.status == "overdue" else "",
            "yes" if i.done_on_date else "",
            i.source,
            style=style,
        )
    if not report.items:
        t.add_row("-", f"nothing scheduled (phase {report.phase})", "", "", "", "", "", "")
    console.print(t)
    r = Table(title="Rules on the data up to this date")
    for c in ("", "topic", "recommendation", "rule", "values", "source"):
        r.add_column(c)
    for x in report.recommendations:
        vals = ", ".join(f"{k}={_v(v)}" for k, v in x.values.items())
        if x.missing:
            vals += f"; missing: {', '.join(x.missing)}"
        r.add_row(
            "[bold red]FIRES[/bold red]" if x.fires else "",
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
    """What is due for PATIENT on DATE (overdue by how many days) and which protocol rules fire."""
    p = _protocol(protocol)
    cohort = _cohort(path)
    try:
        report = due(
            cohort, patient, on.date(), p, {"symptomatic_anemia": symptomatic_anemia, "bleeding": bleeding}
        )
    except KeyError as e:
        console.print(f"[red]{e.args[0]}[/red]")
        raise typer.Exit(2) from None
    print_due(report, p)


@protocol_app.command("audit")
def audit_cmd(
    path: Path = typer.Argument(None, help="Cohort bundle folder (default: the embedded study)."),
    protocol: Path = PROTOCOL_OPT,
    csv: Path = typer.Option(None, "--csv", help="Also write the deviations to this CSV file."),
) -> None:
    """Adherence audit: every deviation with patient, date, rule and evidence, and a summary."""
    p = _protocol(protocol)
    cohort = _cohort(path)
    sec = audit_section(cohort, p)
    console.print(f"[bold]{sec['title']}[/bold]")
    t = Table(title="Deviations")
    for c in ("patient", "date", "day", "rule", "evidence", "expected", "source"):
        t.add_column(c)
    for r in sec["deviations"].itertuples():
        t.add_row(r.patient_id, str(r.date), _v(r.study_day), r.rule_id, r.evidence, r.expected, r.source)
    console.print(t)
    s = Table(title="Deviations per rule")
    for c in ("category", "rule", "deviations", "patients", "source"):
        s.add_column(c)
    for r in sec["summary"].itertuples():
        s.add_row(r.category, r.rule_id, str(r.deviations), str(r.patients), r.source)
    console.print(s)
    b = Table(title="Deviations per patient")
    for c in ("patient", "deviations", "rules"):
        b.add_column(c)
    for r in sec["by_patient"].itertuples():
        b.add_row(r.patient_id, str(r.deviations), r.rules)
    console.print(b)
    console.print(sec["text"])
    if csv is not None:
        sec["deviations"].to_csv(csv, index=False)
        console.print(f"deviations written to {csv}")
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
    p = _protocol(protocol)
    cohort = _cohort(path)
    day = on.date() if on is not None else dt.date.today()
    try:
        report = due(cohort, patient, day, p)
    except KeyError as e:
        console.print(f"[red]{e.args[0]}[/red]")
        raise typer.Exit(2) from None
    events = plan(report, p, horizon)
    out.write_text(
        to_ical(events, disclaimer=p.disclaimer, protocol_label=p.label), encoding="utf-8", newline=""
    )
    console.print(f"{len(events)} event(s) for {patient} from {day} (phase {report.phase}) written to {out}")
    _disclaimer(p)
