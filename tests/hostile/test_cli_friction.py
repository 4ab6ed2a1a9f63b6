"""The command line: choices checked before any work, one line per expected failure, exit 2 for
usage errors and 1 for data errors, no Rich markup interpreted in user text (issue 8 item 6,
issue 9 item 4)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from amlcohort.cli import app
from tests.hostile.bundles import copy_bundle, set_cell

runner = CliRunner()


def run(*args: str):
    started = time.perf_counter()
    result = runner.invoke(app, list(args))
    return result, time.perf_counter() - started


def no_work(monkeypatch) -> None:
    """Make loading a bundle fail the test: the command must stop before any work."""
    import amlcohort.cli as cli

    def loaded(*a, **k):
        raise AssertionError("the bundle was loaded before the options were checked")

    monkeypatch.setattr(cli, "validate_bundle", loaded)


def one_error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return errors[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["report", "--criteria", "eln2020"], "eln2020"),
        (["report", "--criteria", "ELN2022x", "--out", "x"], "ELN2022x"),
        (["export", "out", "--format", "xls"], "xls"),
        (["demo", "some/bundle"], "some/bundle"),  # demo takes no path
    ],
)
def test_fixed_choices_are_checked_before_any_work(args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    no_work(monkeypatch)
    result, _ = run(*args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert not (tmp_path / "report").exists() and not (tmp_path / "out").exists()


def test_validate_typo_names_the_path_exit_2(tmp_path):
    b = copy_bundle(tmp_path / "bundle")
    result, _ = run("validate", str(b / "typo"))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert str(b / "typo") in line and "no such file or folder" in line


@pytest.mark.parametrize("name", ["patients.csv", "x.zip"])
def test_validate_a_file_inside_the_bundle_is_a_usage_error(name, tmp_path):
    b = copy_bundle(tmp_path / "bundle")
    (b / "x.zip").write_bytes(b"PK")
    result, _ = run("validate", str(b / name))
    assert result.exit_code == 2
    assert "valid —" not in result.output
    assert name in one_error_line(result)


def test_validate_invalid_bundle_is_a_data_error(tmp_path):
    b = copy_bundle(tmp_path / "bundle")
    set_cell(b, "patients", 1, "sex", "Female")
    result, _ = run("validate", str(b))
    assert result.exit_code == 1
    assert "value.allowed" in result.output and "invalid" in result.output


def test_markup_in_user_text_is_printed_verbatim(tmp_path):
    b = copy_bundle(tmp_path / "[/x]bundle[red]")
    set_cell(b, "patients", 1, "sex", "[/bold]")
    result, _ = run("validate", str(b))
    assert result.exit_code == 1, result.output
    assert "[/bold]" in result.output and "[/x]bundle[red]" in result.output
    result, _ = run("validate", str(tmp_path / "[/nope]"))
    assert result.exit_code == 2 and "[/nope]" in result.output


def test_report_out_that_is_a_file_is_a_usage_error(tmp_path, monkeypatch):
    (tmp_path / "out").write_text("x")
    no_work(monkeypatch)
    result, _ = run("report", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "is a file" in one_error_line(result)


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    import amlcohort.io.writers as writers

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr(writers, "write_bundle", denied)
    result, _ = run("export", str(tmp_path / "ro"))
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "permission denied" in line and str(tmp_path / "ro") in line


def test_export_too_long_text_for_xlsx_is_one_line(tmp_path):
    b = copy_bundle(tmp_path / "bundle")
    set_cell(b, "patients", 1, "diagnosis_text", "y" * 40_000)
    result, _ = run("export", str(tmp_path / "out"), "--format", "xlsx", "--from", str(b))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "'patients', row 1, column 'diagnosis_text'" in line and "32767" in line


def test_claims_file_that_does_not_exist_is_a_usage_error(tmp_path, monkeypatch):
    no_work(monkeypatch)
    monkeypatch.chdir(tmp_path)  # a short path: the error panel is 80 columns wide in the test runner
    result, _ = run("report", "--claims", "nope.yaml", "--out", "r")
    assert result.exit_code == 2
    assert "nope.yaml" in result.output


def test_demo_help_takes_no_path():
    result, _ = run("demo", "--help")
    assert result.exit_code == 0
    assert "PATH" not in result.output


def test_check_paths_module_has_no_markup_strings():
    # Output of user text goes through Text objects: no f-string is handed to console.print.
    src = (Path(__file__).parents[2] / "src" / "amlcohort" / "cli.py").read_text()
    assert "console.print(f" not in src


def test_out_of_memory_is_one_line_naming_the_setting(tmp_path, monkeypatch):
    """A cohort too large for the staging database's memory limit (here a 20 MB limit for 2,000
    synthetic patients) is a limit of the machine, reported in one line with the setting to raise;
    never a traceback."""
    from amlcohort.synth import write_synthetic_bundle

    write_synthetic_bundle(tmp_path / "b", 2000, seed=5)
    monkeypatch.setenv("AMLCOHORT_DUCKDB_MEMORY", "20MB")
    result, _ = run("validate", str(tmp_path / "b"))
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "ran out of memory (limit 20MB" in line and "AMLCOHORT_DUCKDB_MEMORY=40MB" in line
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("limit", "larger"),
    [("20MB", "40MB"), ("12052MiB", "24104MiB"), ("1.5GB", "3GB"), (" 3 gib ", "6gib"), ("1KB", "2KB"),
     ("2TB", "4TB"), ("4 GB", "8GB"), ("1000000KB", "2000000KB"), ("0.3GB", "0.6GB"),
     ("75%", None), ("lots", None), ("", None), ("3", None)],
)
def test_out_of_memory_suggests_twice_the_limit_in_its_unit(limit, larger):
    from amlcohort.io.cohort import larger_memory_limit

    assert larger_memory_limit(limit) == larger


def test_out_of_memory_at_the_default_limit_suggests_twice_it(monkeypatch):
    import duckdb

    from amlcohort.cli import _engine_limit_message
    from amlcohort.io import cohort

    monkeypatch.delenv("AMLCOHORT_DUCKDB_MEMORY", raising=False)
    monkeypatch.setattr(cohort, "machine_memory", lambda: 8 * 2**30)
    line = _engine_limit_message(duckdb.OutOfMemoryException("Out of Memory Error: x"))
    assert "(limit 4096MiB" in line and "AMLCOHORT_DUCKDB_MEMORY=8192MiB" in line
    assert "(this machine has 8.0 GiB)" in line


def test_engine_limit_messages_only_for_duckdb_limits():
    import duckdb

    from amlcohort.cli import _engine_limit_message

    assert "ran out of memory" in _engine_limit_message(duckdb.OutOfMemoryException("Out of Memory Error: x"))
    disk = _engine_limit_message(duckdb.IOException("IO Error: No space left on device"))
    assert "filled the disk" in disk and "TMPDIR" in disk
    assert _engine_limit_message(duckdb.IOException("IO Error: Could not read enough bytes")) is None
    assert _engine_limit_message(duckdb.BinderException("no such column")) is None
    assert _engine_limit_message(RuntimeError("Out of Memory Error")) is None


def test_report_without_a_claims_file_says_there_is_no_audit(tmp_path):
    """No claims file: the console says so, not "0 reproduced, 0 discrepant, 0 not computed"."""
    bundle = copy_bundle(tmp_path / "b")
    study = bundle / "study.yaml"
    study.write_text(study.read_text().replace("claims: claims.yaml\n", ""))
    (bundle / "claims.yaml").unlink()
    result, _ = run("report", str(bundle), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "claims audit: none (the study names no claims file" in result.output
    assert "0 reproduced" not in result.output
