"""Property-based: malformed bundles either load or raise InputError, never another exception."""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from amlcohort import InputError, load_cohort
from amlcohort.io.cohort import embedded_study_path
from amlcohort.schema import TABLES

TABLE_NAMES = [t.name for t in TABLES]
cell_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "NA",
            "-1",
            "1e400",
            "nan",
            "inf",
            "2019-02-30",
            "0000-00-00",
            "true",
            "1,5",
            "P01",
            "P99",
            '"',
            "\n",
            "∞",
            "12/31/2019",
            "9" * 30,
        ]
    ),
)

mutation = st.one_of(
    st.tuples(
        st.just("cell"), st.sampled_from(TABLE_NAMES), st.integers(0, 200), st.integers(0, 30), cell_text
    ),
    st.tuples(st.just("drop_column"), st.sampled_from(TABLE_NAMES), st.integers(0, 30)),
    st.tuples(st.just("drop_table"), st.sampled_from(TABLE_NAMES)),
    st.tuples(st.just("garbage_file"), st.sampled_from([*TABLE_NAMES, "metadata"]), st.binary(max_size=64)),
    st.tuples(st.just("truncate"), st.sampled_from(TABLE_NAMES), st.integers(0, 400)),
    st.tuples(st.just("duplicate_row"), st.sampled_from(TABLE_NAMES), st.integers(0, 200)),
)


def mutate(bundle: Path, m: tuple) -> None:
    kind, name = m[0], m[1]
    path = bundle / ("metadata.yaml" if name == "metadata" else f"{name}.csv")
    if kind == "drop_table":
        path.unlink(missing_ok=True)
        return
    if not path.exists():
        return
    if kind == "garbage_file":
        path.write_bytes(m[2])
        return
    if kind == "truncate":
        path.write_bytes(path.read_bytes()[: m[2]])
        return
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            table = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error):
        return
    if len(table) < 2:
        return
    header, data = table[0], table[1:]
    if kind == "cell":
        r, c = data[m[2] % len(data)], m[3] % len(header)
        if c < len(r):
            r[c] = m[4]
    elif kind == "drop_column":
        c = m[2] % len(header)
        header.pop(c)
        data = [r[:c] + r[c + 1 :] for r in data]
    elif kind == "duplicate_row":
        data.append(list(data[m[2] % len(data)]))
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *data])


# Each example loads a whole bundle (~1 s), so shrinking is off and the examples are fixed
# (derandomize) to keep CI deterministic; a failure still prints the falsifying mutations.
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],
)
@given(st.lists(mutation, min_size=1, max_size=3))
@example([("garbage_file", "metadata", b"\x80")])
@example([("garbage_file", "patients", b"\x00\xff")])
@example([("truncate", "assessments", 40)])
def test_malformed_bundle_loads_or_raises_input_error(mutations):
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "b"
        shutil.copytree(embedded_study_path(), bundle, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        for m in mutations:
            mutate(bundle, m)
        try:
            cohort = load_cohort(bundle)
        except InputError as exc:
            assert exc.errors, "InputError must carry at least one error"
            assert all(p.reason for p in exc.errors)
        else:
            assert cohort.table("patients").count().execute() >= 1
