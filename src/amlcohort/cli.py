"""The ``amlcohort`` command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from amlcohort.io.cohort import Cohort, ValidationReport, validate_bundle
from amlcohort.protocol.cli import protocol_app
from amlcohort.schema.dictionary import data_dictionary

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="AML salvage-therapy cohort study, end to end. Research software, not a medical device.",
)
console = Console()


app.add_typer(protocol_app, name="protocol", help="The treatment protocol: definition, due, audit.")
app.command("synth")(__import__("amlcohort.synth", fromlist=["synth_command"]).synth_command)
app.command("serve")(__import__("amlcohort.workspace.cli", fromlist=["serve"]).serve)  # the workspace


def _print_report(report: ValidationReport) -> None:
    for p in report.problems:
        style = "red" if p.severity == "error" else "yellow"
        console.print(Text(str(p), style=style))
    verdict = "[green]valid[/green]" if report.ok else "[red]invalid[/red]"
    console.print(
        f"{report.path}: {verdict} — {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
    )


def cohort_summary(cohort: Cohort) -> Table:
    """Patients per arm, with sex, age range and reported risk groups (Ibis, then a small table)."""
    p = cohort.table("patients")
    agg = (
        p.group_by("study_arm")
        .aggregate(
            patients=p.count(),
            female=(p.sex == "female").sum(),
            age_min=p.age_at_onset.min(),
            age_max=p.age_at_onset.max(),
            adverse=(p.risk_group_reported == "adverse").sum(),
            intermediate=(p.risk_group_reported == "intermediate").sum(),
            favorable=(p.risk_group_reported == "favorable").sum(),
        )
        .order_by("study_arm")
        .to_pyarrow()
        .to_pylist()
    )
    t = Table(
        title=f"{cohort.metadata.study_name}\ncut-off {cohort.metadata.cutoff_date}"
        + ("  [RECONSTRUCTED DATA]" if cohort.metadata.reconstructed else "")
    )
    for col in ("arm", "patients", "female", "onset age", "adverse / intermediate / favorable"):
        t.add_column(col)
    for r in agg:
        t.add_row(
            r["study_arm"],
            str(r["patients"]),
            str(r["female"]),
            f"{r['age_min']}–{r['age_max']}",
            f"{r['adverse']} / {r['intermediate']} / {r['favorable']}",
        )
    return t


@app.command()
def validate(path: Path = typer.Argument(None, help="Bundle folder (default: the embedded study).")) -> None:
    """Validate a cohort bundle; exit 1 when it has errors."""
    report, _ = validate_bundle(path)
    _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def _report(path: Path | None, out: Path, claims: Path | None, pdf: bool, criteria: str) -> None:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from amlcohort.report.build import assemble, write_report

    report, cohort = validate_bundle(path)
    _print_report(report)
    if cohort is None:
        raise typer.Exit(1)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def step(text: str) -> None:
            bar.update(task, description=text)

        built = assemble(cohort, claims_path=claims, criteria=criteria, progress=step)
        paths = write_report(built, out, pdf=pdf, progress=step)
    console.print(cohort_summary(cohort))
    counts = {
        s: sum(v.status == s for v in built.verdicts) for s in ("reproduced", "discrepant", "not computed")
    }
    console.print(
        f"claims audit: {counts['reproduced']} reproduced, {counts['discrepant']} discrepant, "
        f"{counts['not computed']} not computed"
    )
    for kind, p in paths.items():
        console.print(f"{kind:>8}: {p}")
    console.print(f"report written to {out.resolve()}")


@app.command()
def report(
    path: Path = typer.Argument(None, help="Bundle folder (default: the embedded study)."),
    out: Path = typer.Option(Path("report"), "--out", help="Output folder."),
    claims: Path = typer.Option(None, "--claims", help="Claims file to audit (default: the study's)."),
    pdf: bool = typer.Option(False, "--pdf", help="Also write report.pdf."),
    criteria: str = typer.Option("study", "--criteria", help="Response criteria: study, eln2017, eln2022."),
) -> None:
    """The main job: validate, derive, analyse and write the report (HTML, figures, tables, results.json)."""
    _report(path, out, claims, pdf, criteria)


@app.command()
def demo(
    out: Path = typer.Option(Path("report"), "--out", help="Output folder."),
) -> None:
    """The report on the embedded (reconstructed) study cohort."""
    _report(None, out, None, True, "study")


@app.command()
def export(
    dest: Path = typer.Argument(..., help="Folder to write the bundle to."),
    fmt: str = typer.Option("csv", "--format", help="csv, parquet or xlsx."),
    path: Path = typer.Option(None, "--from", help="Bundle to read (default: the embedded study)."),
) -> None:
    """Write a validated cohort as a bundle (canonical units) in another format."""
    from amlcohort.io.writers import write_bundle

    report, cohort = validate_bundle(path)
    if cohort is None:
        _print_report(report)
        raise typer.Exit(1)
    console.print(f"wrote {write_bundle(cohort, dest, fmt)}  ({fmt})")  # type: ignore[arg-type]


@app.command()
def dictionary(out: Path = typer.Option(None, help="Write to this file instead of printing.")) -> None:
    """The data dictionary of the cohort model, as Markdown."""
    text = data_dictionary()
    if out is None:
        console.print(text, markup=False, highlight=False)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        console.print(f"wrote {out}")


if __name__ == "__main__":
    app()
