"""The command line starts without the data stack (issue 11: ``amlcohort --help`` is instant).

Each check runs in a fresh interpreter and looks at ``sys.modules``: importing the CLI, or asking
any help page, must not import Ibis, pandas, PyArrow, NumPy or matplotlib; the package's public
names still resolve (on first use) to the same objects as before.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import amlcohort

HEAVY = ("ibis", "pandas", "pyarrow", "numpy", "matplotlib", "duckdb", "sqlglot")
SRC = Path(amlcohort.__file__).resolve().parent.parent


def fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter (this checkout's sources first on the path); it prints
    JSON (by default the heavy modules that got imported, as ``{"heavy": [...]}``)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env["COLUMNS"] = "200"  # help panels on one line per command
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def heavy_after(statements: str) -> list[str]:
    code = (
        "import json, sys\n"
        f"{statements}\n"
        f"print(json.dumps({{'heavy': sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))}}))"
    )
    return fresh(code)["heavy"]


def test_the_check_sees_a_heavy_import():
    """Importing the cohort loader does import Ibis and PyArrow: the checks below can fail."""
    assert {"ibis", "pyarrow"} <= set(heavy_after("import amlcohort.io.cohort"))


@pytest.mark.parametrize(
    "module", ["amlcohort", "amlcohort.cli", "amlcohort.protocol.cli", "amlcohort.interop.cli"]
)
def test_importing_the_command_line_loads_no_data_stack(module):
    assert heavy_after(f"import {module}") == []


HELP = """
from amlcohort.cli import app
try:
    app({args!r}, prog_name="amlcohort")
except SystemExit as exit:
    assert exit.code == 0, exit.code
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["report", "--help"], ["protocol", "--help"], ["import", "--help"], ["export", "--help"]],
)
def test_help_pages_load_no_data_stack(args):
    assert heavy_after(HELP.format(args=args)) == []


def test_top_level_help_lists_every_command():
    code = (
        "import io, json, contextlib\n"
        + "out = io.StringIO()\n"
        + "with contextlib.redirect_stdout(out):\n"
        + "".join("    " + line + "\n" for line in HELP.format(args=["--help"]).strip().splitlines())
        + "print(json.dumps({'help': out.getvalue()}))"
    )
    text = fresh(code)["help"]
    names = [m.group(1) for line in text.splitlines() if (m := re.match(r"│ ([a-z]+) {2,}\S", line))]
    assert names == [
        "synth",
        "serve",
        "validate",
        "report",
        "demo",
        "export",
        "dictionary",
        "protocol",
        "import",
    ]
    assert "Write a SYNTHETIC cohort bundle (valid, seeded) for scale tests and benchmarks." in text


def test_a_lazy_command_lists_the_help_of_the_function_it_runs():
    """The one-line help listed without importing the module is the function's own (no drift)."""
    import importlib

    from amlcohort.cli import LAZY_COMMANDS

    for name, (target, listed) in LAZY_COMMANDS.items():
        module, function = target.split(":")
        doc = inspect.getdoc(getattr(importlib.import_module(module), function))
        assert doc is not None and doc.split("\n\n")[0].replace("\n", " ") == listed, name


def test_a_lazy_command_runs_the_real_one(tmp_path):
    from typer.testing import CliRunner

    from amlcohort.cli import app

    runner = CliRunner()
    helped = runner.invoke(app, ["synth", "--help"])
    assert helped.exit_code == 0, helped.output
    assert "--patients" in helped.output and "--seed" in helped.output
    bad = runner.invoke(app, ["synth", "--patients", "two", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2 and not (tmp_path / "b").exists()


def test_public_names_resolve_on_first_use():
    got = fresh(
        "import json, sys, amlcohort\n"
        "before = 'amlcohort.api' in sys.modules\n"
        "from amlcohort import Cohort, kaplan_meier, load_cohort, validate_bundle\n"
        "import amlcohort.api as api, amlcohort.io.cohort as io\n"
        "same = [kaplan_meier is api.kaplan_meier, load_cohort is io.load_cohort, Cohort is io.Cohort,\n"
        "        validate_bundle is io.validate_bundle, amlcohort.table1 is api.table1]\n"
        "try:\n"
        "    amlcohort.no_such_name\n"
        "    missing = False\n"
        "except AttributeError:\n"
        "    missing = True\n"
        "print(json.dumps({'before': before, 'same': same, 'missing': missing,\n"
        "                  'dir': 'kaplan_meier' in dir(amlcohort)}))"
    )
    assert got == {"before": False, "same": [True] * 5, "missing": True, "dir": True}


def test_protocol_audit_stays_the_function_after_its_module_is_imported():
    """``amlcohort.protocol.audit`` is the function (as with eager imports), even once the submodule
    of the same name has been imported directly."""
    got = fresh(
        "import json, amlcohort.protocol.audit as by_path\n"
        "from amlcohort.protocol.audit import audit_section\n"
        "from amlcohort.protocol import audit, audit_section as section\n"
        "import amlcohort.protocol as p\n"
        "print(json.dumps({'function': callable(audit) and audit.__module__ == 'amlcohort.protocol.audit'\n"
        "                  and not hasattr(audit, '__path__') and type(audit).__name__ == 'function',\n"
        "                  'same': section is audit_section and p.audit is audit is by_path}))"
    )
    assert got == {"function": True, "same": True}


def test_the_console_script_is_main_which_keeps_the_exit_code_and_skips_the_last_collections(tmp_path):
    """``amlcohort`` runs :func:`amlcohort.cli.main`: the command's exit code (1: an invalid
    bundle) is the process's, its output is complete, and the objects left at exit are frozen
    (``gc.freeze``), so the interpreter's last collections do not walk them."""
    import tomllib

    scripts = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["amlcohort"] == "amlcohort.cli:main"
    (tmp_path / "patients.csv").write_text("patient_id\nP1\n")
    got = fresh(
        "import gc, io, json, sys, contextlib\n"
        "from amlcohort.cli import main\n"
        f"sys.argv = ['amlcohort', 'validate', {str(tmp_path)!r}]\n"
        "out = io.StringIO()\n"
        "try:\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):\n"
        "        main()\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        "print(json.dumps({'code': code, 'frozen': gc.get_freeze_count() > 0,\n"
        "                  'said': 'metadata' in out.getvalue()}))"
    )
    assert got == {"code": 1, "frozen": True, "said": True}
