"""The whole report on every engine: ``amlcohort report --engine X --db URL`` writes the same
results.json (every figure to 1e-9, every not-estimable reason, the claims audit) and the same
tables as on the in-process DuckDB; ``validate`` and ``export`` take the same options. The bundle
is loaded as temporary tables (PostgreSQL with COPY), so nothing of the user's database is read,
replaced or left behind.

SQLite before 3.46 has no date arithmetic with intervals (Ibis refuses it), so there the protocol
audit is not estimable and says why; every other figure is the same.
"""

from __future__ import annotations

import copy
import json
import math
import sqlite3
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from amlcohort import load_cohort
from amlcohort.cli import app
from amlcohort.engines import connect

from .conftest import new_connection

runner = CliRunner()

#: The report's outputs that depend on the bytes written (hashes, sizes), not on the analysis.
_FILE_KEYS = ("outputs",)
SQLITE_HAS_INTERVALS = tuple(int(x) for x in sqlite3.sqlite_version.split(".")) >= (3, 46)


def _report(out: Path, *args: str) -> dict:
    result = runner.invoke(app, ["report", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return json.loads((out / "results.json").read_text())


def differences(a: object, b: object, path: str = "") -> list[str]:
    """Where two results.json values differ: numbers by more than 1e-9 (relative), anything else at all."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}: only on one side" for k in set(a) ^ set(b)]
        return out + [d for k in set(a) & set(b) for d in differences(a[k], b[k], f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} against {len(b)} items"]
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{path}[{i}]")]
    if _number(a) and _number(b):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {a!r} against {b!r}"]
    return [] if a == b else [f"{path}: {a!r} against {b!r}"]


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def test_differences_sees_what_differs():
    """The comparison itself: a test that cannot fail is a defect."""
    assert differences({"a": 1.0, "b": [1, "x"]}, {"a": 1.0 + 1e-12, "b": [1, "x"]}) == []
    assert differences({"a": 1.0}, {"a": 1.0001}) == ["/a: 1.0 against 1.0001"]
    assert differences({"a": None}, {"a": 0}) == ["/a: None against 0"]
    assert differences({"a": [1]}, {"a": [1, 2]}) == ["/a: 1 against 2 items"]
    assert differences({"a": 1}, {"b": 1}) != []


@pytest.fixture(scope="module")
def duckdb_report(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("duckdb") / "report"
    return _report(out), out


def _tables(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "tables").glob("*.csv"))}


def _db_for(engine: str, request, tmp_path: Path) -> list[str]:
    if engine == "postgres":
        return ["--engine", "postgres", "--db", request.getfixturevalue("postgres_server")]
    if engine == "spark":
        request.getfixturevalue("spark_backend")  # skips (or fails in CI) without Java/pyspark
        return ["--engine", "spark"]
    return ["--db", str(tmp_path / "cohort.sqlite")]


@pytest.mark.parametrize("engine", ["sqlite", "postgres", pytest.param("spark", marks=pytest.mark.slow)])
def test_report_same_on_every_engine(engine, duckdb_report, request, tmp_path):
    reference, ref_out = duckdb_report
    got = _report(tmp_path / "report", *_db_for(engine, request, tmp_path))
    ref = copy.deepcopy({k: v for k, v in reference.items() if k not in _FILE_KEYS})
    got = {k: v for k, v in got.items() if k not in _FILE_KEYS}
    ref_tables, got_tables = _tables(ref_out), _tables(tmp_path / "report")
    if engine == "sqlite" and not SQLITE_HAS_INTERVALS:
        # the protocol audit needs date + interval: not estimable there, with the reason
        reason = got["not_estimable"].pop("protocol.deviations")
        assert "SQLite does not support time shift modifiers" in reason, reason
        assert got["figures"].pop("protocol.deviations") is None
        assert "protocol.deviations" not in ref["figures"]  # on DuckDB: the deviations table
        for name in ("protocol_summary.csv", "protocol_deviations.csv"):
            assert name not in got_tables
            ref_tables.pop(name)
    assert differences(got, ref) == []
    assert got_tables.keys() == ref_tables.keys()
    assert [n for n in ref_tables if got_tables[n] != ref_tables[n]] == []
    # real values, not only agreement: the paper's 13 patients and its claims audit
    assert got["figures"]["cohort.n_patients"] == 13
    assert len(got["audit"]) > 50


def _rows(t) -> list[dict]:
    table = t.to_pyarrow()
    keys = [c for c in ("patient_id", "assessment_date", "term", "drug", "start_date", "event_type")
            if c in table.column_names]
    return sorted(table.to_pylist(), key=lambda r: (*[str(r.get(k)) for k in keys], repr(r)))


def test_postgres_load_keeps_every_value_and_leaves_the_database_alone(request):
    """COPY (Arrow's CSV) carries every value of every table as DuckDB holds it (NULL and empty
    text apart, floats to the last bit); the temporary tables shadow, and leave untouched, a user's
    table of the same name, and are gone with the connection."""
    url = request.getfixturevalue("postgres_server")
    admin = connect("postgres", url)
    admin.raw_sql("CREATE TABLE patients (patient_id text, note text)").close()
    admin.raw_sql("INSERT INTO patients VALUES ('mine', 'a registry row')").close()
    admin.con.commit()
    reference = load_cohort()
    con = connect("postgres", url)
    cohort = load_cohort(con=con, temporary=True)
    for name, table in reference.tables.items():
        assert _rows(cohort.tables[name]) == _rows(table), name
    assert cohort.table("patients").count().execute() == 13
    con.disconnect()
    assert admin.sql("SELECT * FROM patients").to_pyarrow().to_pylist() == [
        {"patient_id": "mine", "note": "a registry row"}
    ]
    assert sorted(admin.list_tables()) == ["patients"]
    admin.raw_sql("DROP TABLE patients").close()
    admin.con.commit()


def test_postgres_copy_round_trips_awkward_text(request):
    """What CSV could lose: NULL against empty text, quotes, commas, line breaks, non-ASCII."""
    from amlcohort.io.cohort import _copy_to_postgres

    con = connect("postgres", request.getfixturevalue("postgres_server"))
    values = ["", None, 'say "no", then\nleave', "ünïcödé 急性", "\\N", "NULL", " lead"]
    floats = [0.1, 1 / 3, None, 1e-300, -0.0, 2.0**53 + 1, 123456.789]
    source = connect("duckdb").create_table(
        "t", pa.table({"s": values, "f": pa.array(floats, pa.float64()), "i": list(range(7))})
    )
    copied = _copy_to_postgres(con, "awkward", source, temporary=True)
    got = sorted(copied.to_pyarrow().to_pylist(), key=lambda r: r["i"])
    assert [r["s"] for r in got] == values
    assert [r["f"] for r in got] == floats


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--db", "somewhere"], "say which engine"),
        (["--engine", "sqlite", "--db", "postgres://u@h/db"], "looks like a postgres address"),
        (["--engine", "duckdb", "--db", "spark://h:7077"], "looks like a spark address"),
        (["--engine", "oracle"], "oracle"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "report", "export"])
def test_engine_options_are_checked_before_any_work(command, args, fragment, tmp_path, monkeypatch):
    import amlcohort.cli as cli

    def loaded(*a, **k):
        raise AssertionError("the bundle was loaded before the options were checked")

    monkeypatch.setattr(cli, "validate_bundle", loaded)
    monkeypatch.chdir(tmp_path)
    head = {"validate": ["validate"], "report": ["report"], "export": ["export", "out"]}[command]
    result = runner.invoke(app, [*head, *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_engine_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", "--db", "postgres://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 1, result.output
    assert "--engine postgres: cannot connect to PostgreSQL at postgres://nobody@127.0.0.1:1/none" in (
        result.output)
    assert "Traceback" not in result.output


def test_validate_loads_into_the_engine_and_counts_there(tmp_path):
    result = runner.invoke(app, ["validate", "--db", str(tmp_path / "c.sqlite")])
    assert result.exit_code == 0, result.output
    assert "loaded into sqlite: " in result.output and "patients 13" in result.output
    # temporary tables: the database file keeps nothing of the bundle
    assert connect("sqlite", str(tmp_path / "c.sqlite")).list_tables() == []


@pytest.mark.parametrize("engine", ["sqlite", "postgres", pytest.param("spark", marks=pytest.mark.slow)])
def test_export_from_an_engine_equals_export_in_process(engine, request, tmp_path):
    """The same bytes: each table's rows in its key's order (Spark returned them in another)."""
    here, there = tmp_path / "here", tmp_path / "there"
    assert runner.invoke(app, ["export", str(here), "--format", "csv"]).exit_code == 0
    db = _db_for(engine, request, tmp_path)
    result = runner.invoke(app, ["export", str(there), "--format", "csv", *db])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in here.glob("*.csv"))
    assert files and files == sorted(p.name for p in there.glob("*.csv"))
    assert [f for f in files if (here / f).read_bytes() != (there / f).read_bytes()] == []


@pytest.fixture(scope="module")
def adam_in_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adam") / "duckdb"
    result = runner.invoke(app, ["export", str(out), "--format", "adam"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("engine", ["sqlite", "postgres", pytest.param("spark", marks=pytest.mark.slow)])
def test_adam_export_on_an_engine_equals_the_in_process_one(engine, adam_in_process, request, tmp_path):
    """The ADaM datasets (CSV, Parquet, define) exported from SQLite and PostgreSQL are the bytes of
    the in-process export (XPT files hold their creation time, so they are compared as tables).
    Before: SQLite's parser overflowed on ADSL's and ADLB's queries and refused ADAE's date +
    interval (before 3.46); PostgreSQL typed ADRS's AVAL and ADTTE's PARAMN (CASEs of float
    literals) as NUMERIC, which Ibis could not read as the float64 it declared; Spark did not find
    ADSL's arm labels (an in-memory table)."""
    import pyreadstat

    db = _db_for(engine, request, tmp_path)
    there = tmp_path / engine
    result = runner.invoke(app, ["export", str(there), "--format", "adam", *db])
    assert result.exit_code == 0, result.output
    here = adam_in_process
    files = sorted(p.name for p in here.iterdir() if p.suffix in (".csv", ".parquet", ".json")
                   and p.name != "manifest.json")
    assert {"adsl.csv", "adrs.parquet", "adtte.csv", "adae.csv", "adlb.parquet", "define.json"} <= set(files)
    assert [f for f in files if (here / f).read_bytes() != (there / f).read_bytes()] == []
    for name in ("adsl", "adrs", "adtte", "adae", "adlb"):
        mine, _ = pyreadstat.read_xport(str(here / f"{name}.xpt"))
        theirs, _ = pyreadstat.read_xport(str(there / f"{name}.xpt"))
        assert len(mine) > 0 and mine.equals(theirs), name


@pytest.fixture(scope="module")
def registry_duckdb_report(synthetic_10k, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("registry_duckdb") / "report"
    return _report(out, str(synthetic_10k)), out


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", "postgres", "spark"])
def test_registry_report_same_on_every_engine(engine, synthetic_10k, registry_duckdb_report, request,
                                              tmp_path):
    """The report of the 10^4-patient synthetic registry: results.json and every table the same
    on SQLite (about 7 minutes), PostgreSQL (about 4) and Spark as in process (to 1e-9)."""
    ref, ref_out = registry_duckdb_report
    got_out = tmp_path / engine
    got = _report(got_out, str(synthetic_10k), *_db_for(engine, request, tmp_path))
    assert ref["figures"]["cohort.n_patients"] == 10_000
    assert differences({k: v for k, v in got.items() if k not in _FILE_KEYS},
                       {k: v for k, v in ref.items() if k not in _FILE_KEYS}) == []
    ref_tables, got_tables = _tables(ref_out), _tables(got_out)
    assert got_tables.keys() == ref_tables.keys()
    assert [n for n in ref_tables if got_tables[n] != ref_tables[n]] == []


def _mixed_ids(folder: Path) -> None:
    """Rename the bundle's patients to ids whose order depends on the collation: "P_1", "Z2",
    "p-3", ... (code points: "P_1" < "Z2" < "p-3"; en-US: "p-3" < "P_1" < "Z2")."""
    import pyarrow.parquet as pq

    def new(old: str) -> str:
        n = int(old[1:])
        return (f"p-{n}", f"P_{n}", f"Z{n}")[n % 3]

    for path in folder.glob("*.parquet"):
        t = pq.read_table(path)
        if "patient_id" in t.column_names:
            ids = pa.array([None if v is None else new(v) for v in t.column("patient_id").to_pylist()])
            pq.write_table(t.set_column(t.column_names.index("patient_id"), "patient_id", ids), path)


def test_report_same_on_a_database_that_sorts_text_by_locale(postgres_icu_database, tmp_path):
    """On a PostgreSQL database with an ICU collation, ORDER BY patient_id is not DuckDB's order;
    the drawn and printed rows are sorted in Python, so the report is the same to the byte
    (the swimmer plot's bars were in the database's order)."""
    from amlcohort.synth import write_synthetic_bundle

    bundle = tmp_path / "bundle"
    write_synthetic_bundle(bundle, 40, seed=4)
    _mixed_ids(bundle)
    here, there = tmp_path / "duckdb", tmp_path / "postgres"
    ref = _report(here, str(bundle))
    got = _report(there, str(bundle), "--db", postgres_icu_database)
    assert differences({k: v for k, v in got.items() if k not in _FILE_KEYS},
                       {k: v for k, v in ref.items() if k not in _FILE_KEYS}) == []
    figures = sorted(p.name for p in (here / "figures").glob("*.svg"))
    assert "figure5_swimmer.svg" in figures
    def svg(out: Path, name: str) -> bytes:
        return (out / "figures" / name).read_bytes()

    assert [f for f in figures if svg(here, f) != svg(there, f)] == []
    assert (here / "report.html").read_bytes() == (there / "report.html").read_bytes()


EVERY_ENGINE = ["duckdb", "sqlite", "postgres", pytest.param("spark", marks=pytest.mark.slow)]


@pytest.mark.parametrize("engine", EVERY_ENGINE)
def test_audit_lists_each_patients_rules_in_order_on_every_engine(engine, request):
    """Spark and SQLite have no ordered group_concat (protocol.audit._sorted_text)."""
    from amlcohort.protocol.audit import audit_summary

    con = new_connection(engine, request)
    rows = {"patient_id": ["a", "a", "a", "b", "a"], "rule_id": ["z.rule", "a.rule", "m", "x", "a.rule"],
            "category": ["c"] * 5, "source": ["s"] * 5}
    t = con.create_table("deviations", pa.table(rows))
    got = audit_summary(t).by_patient.to_pyarrow().to_pylist()
    assert got == [{"patient_id": "a", "deviations": 4, "rules": "a.rule, m, z.rule"},
                   {"patient_id": "b", "deviations": 1, "rules": "x"}]


@pytest.mark.parametrize(
    ("make", "db", "code", "said"),
    [
        (None, "missing/c.sqlite", 2, "SQLite database missing/c.sqlite: the folder"),
        (None, "missing/c.duckdb", 2, "DuckDB database missing/c.duckdb: the folder"),
        ("folder", "f.duckdb", 2, "DuckDB database f.duckdb: is a folder; give a database file"),
        ("text", "t.sqlite", 1, "cannot open t.sqlite as a SQLite database: file is not a database"),
        ("text", "t.duckdb", 1, "cannot open t.duckdb as a DuckDB database"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "report"])
def test_a_database_file_that_cannot_be_used_is_one_line(
    command, make, db, code, said, tmp_path, monkeypatch
):
    """A --db file in a folder that does not exist, a folder, or a file of another kind: one line
    naming the file and why (exit 2 for a path that cannot be used, 1 for a file that is not such a
    database), nothing written; the drivers' own errors were tracebacks."""
    monkeypatch.chdir(tmp_path)
    if make == "folder":
        (tmp_path / db).mkdir()
    elif make == "text":
        (tmp_path / db).write_text("not a database, " * 500)
    before = sorted(p.name for p in tmp_path.iterdir())
    head = ["report", "--out", "r"] if command == "report" else ["validate"]
    result = runner.invoke(app, [*head, "--db", db])
    assert result.exit_code == code, result.output
    assert said in " ".join(result.output.split())
    assert "Traceback" not in result.output
    # the report's lock beside --out stays, as after every run (io/output.py); nothing else
    lock = [".r.lock"] if command == "report" else []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before + lock)
    if make == "text":
        assert (tmp_path / db).read_text() == "not a database, " * 500


def test_a_password_in_the_address_is_not_repeated(tmp_path, monkeypatch):
    from amlcohort.engines import without_password

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", "--db", "postgres://nobody:s3cret@127.0.0.1:1/none"])
    assert result.exit_code == 1, result.output
    assert "s3cret" not in result.output
    assert "cannot connect to PostgreSQL at postgres://nobody:***@127.0.0.1:1/none" in result.output
    assert without_password("postgresql://u:p:q@h:5432/db?sslmode=require") == (
        "postgresql://u:***@h:5432/db?sslmode=require")
    assert without_password("postgres://u@h/db") == "postgres://u@h/db"
    assert without_password("postgres://h/db") == "postgres://h/db"
    assert without_password("local[2]") == "local[2]"
