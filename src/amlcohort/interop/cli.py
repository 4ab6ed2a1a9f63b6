"""Command line of the interoperability formats: ``amlcohort import redcap`` and ``export --format adam``.

``import_app`` is registered in ``amlcohort.cli`` as the ``import`` sub-command; ``export_adam`` is
what ``amlcohort export DIR --format adam`` calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:  # imported by the commands when they run, so `amlcohort --help` stays fast
    from amlcohort.interop import redcap as rc
    from amlcohort.io.cohort import Cohort

import_app = typer.Typer(no_args_is_help=True, help="Import a cohort from another format (REDCap).")
console = Console()


def export_adam(cohort: Cohort, dest: Path, into: Path | None = None) -> dict[str, Path]:
    """Write the ADaM datasets of ``cohort`` into ``dest`` and print what was written; ``into``: the
    folder actually written (the command's staging folder, swapped in as ``dest`` afterwards)."""
    from amlcohort.interop.export import write_adam

    paths = write_adam(cohort, into or dest)
    console.print(f"wrote {len(paths)} files to {Path(dest).resolve()} (ADaM: XPT v5, Parquet, CSV, define)")
    return paths


def _show(problems: list[rc.RedcapProblem], limit: int = 200) -> None:
    for p in problems[:limit]:
        console.print(Text(str(p), style="red" if p.severity == "error" else "yellow"))
    if len(problems) > limit:
        console.print(f"... and {len(problems) - limit} more (all of them in the problems CSV)")


def _write_problems(problems: list[rc.RedcapProblem], path: Path) -> None:
    from amlcohort.interop import redcap as rc

    rows = [p.as_dict() for p in problems]
    header = ("severity", "code", "record", "event", "instrument", "instance", "field", "value", "reason")
    rc.write_csv(rows, path, header)


@import_app.command("redcap")
def redcap(
    records: Path = typer.Option(None, "--records", help="REDCap records export (CSV)."),
    dictionary: Path = typer.Option(None, "--dictionary", help="REDCap data dictionary (CSV)."),
    mapping: Path = typer.Option(None, "--mapping", help="Mapping from REDCap fields to the cohort model."),
    out: Path = typer.Option(None, "--out", help="Bundle folder to write."),
    starter_mapping: bool = typer.Option(
        False, "--starter-mapping", help="Print (or write to --out) a draft mapping for --dictionary."
    ),
    model_dictionary: bool = typer.Option(
        False, "--model-dictionary", help="Write amlcohort's own REDCap data dictionary (+ mapping) to --out."
    ),
    api_url: str = typer.Option(None, "--api-url", help="REDCap API URL (needs PyCap)."),
    token: str = typer.Option(
        None, "--token", envvar="REDCAP_TOKEN", help="REDCap API token (or $REDCAP_TOKEN)."
    ),
) -> None:
    """Import a REDCap project as a cohort bundle; every value not imported is reported by record,
    event, instrument, instance and field. An import error (bad code, date, number, repeat instance)
    writes nothing; otherwise the bundle is written, then validated, and its validation problems are
    reported at their REDCap source (exit 1 if the bundle is invalid)."""
    import yaml

    from amlcohort.interop import redcap as rc

    if model_dictionary:
        dest = out or Path("redcap_project")
        dest.mkdir(parents=True, exist_ok=True)
        rc.write_csv(rc.model_dictionary(), dest / "dictionary.csv", rc.DICTIONARY_HEADER)
        rc.write_csv(rc.repeating_instruments(), dest / "repeating_instruments.csv")
        (dest / "mapping.yaml").write_text(
            yaml.safe_dump(rc.model_mapping(), sort_keys=False), encoding="utf-8"
        )
        console.print(f"wrote dictionary.csv, repeating_instruments.csv and mapping.yaml to {dest.resolve()}")
        return
    if api_url:
        if not token:
            raise typer.BadParameter("--api-url needs --token (or $REDCAP_TOKEN)")
        try:
            records, dictionary = rc.pull_from_api(api_url, token, out or Path("redcap_export"))
        except RuntimeError as exc:
            console.print(Text(str(exc), style="red"))
            raise typer.Exit(2) from None
    if dictionary is None:
        raise typer.BadParameter("--dictionary is needed")
    if starter_mapping:
        text = rc.starter_mapping(dictionary)
        if out is None:
            typer.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
            console.print(f"wrote {out}")
        return
    if records is None or mapping is None or out is None:
        raise typer.BadParameter("--records, --dictionary, --mapping and --out are needed")
    try:
        result = rc.import_redcap(records, dictionary, mapping)
    except ValueError as exc:
        console.print(Text(str(exc), style="red"))
        raise typer.Exit(1) from None
    _show(result.problems)
    if result.errors:
        console.print(f"[red]{len(result.errors)} error(s)[/red]: nothing written")
        raise typer.Exit(1)
    rc.write_bundle(result, out)
    if result.problems:
        _write_problems(result.problems, out / rc.SIDECAR / "problems.csv")
    from amlcohort.io.cohort import validate_bundle

    report, _ = validate_bundle(out)
    located = rc.locate(result, report.problems, rc.read_mapping(mapping))
    _show(located)
    if located:
        _write_problems(result.problems + located, out / rc.SIDECAR / "problems.csv")
    n = {k: len(v) for k, v in result.tables.items()}
    verdict = "[green]valid[/green]" if report.ok else "[red]invalid[/red]"
    console.print(f"{out}: {verdict} bundle; rows: {n}; {len(result.problems) + len(located)} problem(s)")
    raise typer.Exit(0 if report.ok else 1)
