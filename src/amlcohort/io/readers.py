"""Reading a bundle's tables as text, exactly as written (typing is validation's job).

A bundle is a folder holding ``metadata.yaml`` and the tables as ``<table>.csv`` files,
``<table>.parquet`` files, or one ``.xlsx`` workbook with a sheet per table. Every table comes
back as a pyarrow table of strings (empty cells as null) with a ``_row`` column: the 1-based
data row (header not counted), so every problem can name the row a person sees.

What a reader cannot read faithfully it refuses with a named :class:`Problem` (file, row,
column, value, reason) instead of guessing; docs/guarantees.md lists every case. In short:

* only files inside the bundle folder are read (a link that leads outside is refused unread);
* table, sheet and column names match case- and space-insensitively (``Patient ID`` is
  ``patient_id``); two names that are the same after that are an error;
* CSV: UTF-8 (a BOM is fine), comma-separated; a row with the wrong number of fields, an empty
  file or bytes that are not UTF-8 are errors naming the file and line;
* Parquet: list, struct, map and binary columns are refused; timestamps keep their time;
* XLSX: merged cells are refused (naming the range); a formula reads as its cached value with a
  warning naming the cell (no cached value: error); hidden sheets, rows and columns are read
  with a warning; a value with no header above it is an error; numbers read as they are shown:
  ``30%`` reads as ``30``, and a cell formatted ``0.0`` holding 5 reads as ``5.0`` (never fewer
  digits than stored, so nothing is rounded).
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from amlcohort.problems import Problem
from amlcohort.schema import TABLES_BY_NAME

ROW = "_row"

#: Largest table file read (CSV or Parquet): bigger files are refused before reading.
MAX_TABLE_FILE_BYTES = 4 * 1024**3
#: Largest workbook read (XLSX is read into memory cell by cell; use CSV or Parquet above this).
MAX_WORKBOOK_BYTES = 64 * 1024**2
#: Problems of one kind named one by one before "... and N more".
MAX_NAMED = 20
#: Text a spreadsheet would run as a formula (OWASP CSV injection); see io/writers.py.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class RawBundle:
    format: str
    tables: dict[str, pa.Table]
    files: dict[str, str]
    folder: Path | None = field(default=None, compare=False)


class Refused(Exception):
    """A file the reader will not read; carries the problems that say why."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# ---- names ----------------------------------------------------------------------------------


def normal_name(name: str) -> str:
    """``" Patient ID "`` → ``"patient_id"``: lower case, runs of spaces/hyphens/dots as ``_``."""
    return re.sub(r"[\s\-.]+", "_", name.strip().lower()).strip("_")


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a candidate is close to ``name``, else ``""``."""
    cands = list(candidates)
    by_norm = {normal_name(c): c for c in cands}
    hit = difflib.get_close_matches(normal_name(name), list(by_norm), n=1, cutoff=0.6)
    return f" (did you mean {by_norm[hit[0]]!r}?)" if hit else ""


def _table_name(stem: str) -> str:
    n = normal_name(stem)
    return n if n in TABLES_BY_NAME else stem.strip()


def _column_names(table: str, header: list[str], where: str) -> list[str]:
    """Model names for a header (case/space-insensitive); refuses repeated names."""
    model = TABLES_BY_NAME.get(table)
    known = set(model.column_names) if model else set()
    names = []
    for h in header:
        n = normal_name(h)
        names.append(n if n in known else h.strip())
    seen: dict[str, int] = {}
    problems = []
    for i, n in enumerate(names):
        key = normal_name(n)
        if key in seen:
            problems.append(
                Problem(
                    "error",
                    where,
                    f"column name {n!r} appears twice (columns {seen[key] + 1} and {i + 1}); "
                    "which one holds the data cannot be guessed: rename or remove one",
                    None,
                    n,
                    header[i],
                    "column.repeated",
                )
            )
        else:
            seen[key] = i
    if problems:
        raise Refused(problems)
    return names


# ---- paths ----------------------------------------------------------------------------------


def bundle_path_problems(path: Path) -> list[Problem]:
    """Whether ``path`` names a bundle (a folder, or the .xlsx workbook inside one)."""
    where = str(path)
    if not path.exists():
        parent = path.parent
        hint = ""
        if parent.is_dir():
            hint = did_you_mean(path.name, [p.name for p in parent.iterdir()])
        return [Problem("error", where, f"no such file or folder{hint}", code="bundle.path")]
    if path.is_dir():
        return []
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return []
    if suffix in (".csv", ".parquet"):
        reason = (
            f"is one table file; a bundle is the folder holding metadata.yaml and every table: "
            f"give the folder {str(path.parent)!r}"
        )
    elif suffix in (".zip", ".gz", ".tar", ".tgz", ".7z"):
        reason = "is an archive; archives are not read: unpack it and give the folder"
    else:
        reason = "is not a bundle: give the bundle folder (or its .xlsx workbook)"
    return [Problem("error", where, reason, code="bundle.path")]


def _inside(folder: Path, f: Path) -> bool:
    """Whether ``f`` (possibly a link) resolves to a place inside ``folder``."""
    try:
        return f.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop
        return False


def _outside_problem(f: Path) -> Problem:
    return Problem(
        "error",
        f.name,
        "is a link to something outside the bundle folder; refused, not read (copy the file into the bundle)",
        code="bundle.outside",
    )


# ---- text ---------------------------------------------------------------------------------------


def _with_rows(table: pa.Table) -> pa.Table:
    return table.append_column(ROW, pa.array(range(1, table.num_rows + 1), pa.int64()))


def _as_text(table: pa.Table) -> pa.Table:
    cols = []
    for col in table.columns:
        t = col.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            cols.append(col.cast(pa.string()))
        elif pa.types.is_timestamp(t):
            cols.append(_timestamp_text(col))
        elif pa.types.is_date(t):
            cols.append(col.cast(pa.date32()).cast(pa.string()))
        else:
            cols.append(col.cast(pa.string()))
    return pa.table(cols, names=table.column_names)


def _timestamp_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    """A timestamp as its date when every value is at midnight, else as full ISO text (so a
    time of day is not dropped silently: validation then names the cell)."""
    if col.type.tz is not None:
        return col.cast(pa.string())
    as_date = col.cast(pa.date32(), safe=False)
    if pc.all(pc.equal(as_date.cast(col.type), col)).as_py() in (True, None):
        return as_date.cast(pa.string())
    return col.cast(pa.string())


# ---- CSV ------------------------------------------------------------------------------------


def _first_bad_utf8_line(path: Path) -> tuple[int, int] | None:
    """(line, byte) of the first byte that is not UTF-8, scanning the file in blocks."""
    line, offset, carry = 1, 0, b""
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            data = carry + block
            try:
                data.decode("utf-8")
                carry = b""
                line += data.count(b"\n")
            except UnicodeDecodeError as exc:
                if exc.start >= len(data) - 3 and exc.reason.startswith("unexpected end"):
                    good, carry = data[: exc.start], data[exc.start :]
                    line += good.count(b"\n")
                    offset += len(good)
                    continue
                return line + data[: exc.start].count(b"\n"), data[exc.start]
            offset += len(block)
    return None


def _bad_field_count(path: Path, width: int) -> tuple[int, int] | None:
    """(data row, fields) of the first row whose number of fields differs from the header's."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for i, row in enumerate(reader, start=1):
            if row and len(row) != width:
                return i, len(row)
    return None


def _read_csv(path: Path, table: str) -> pa.Table:
    name = path.name

    def refuse(reason: str, row: int | None = None, value: object = None, code: str = "file.unreadable"):
        return Refused([Problem("error", name, reason, row, None, value, code)])

    if path.stat().st_size == 0:
        raise refuse("empty file: a table needs at least its header row", code="file.empty")
    bad = _first_bad_utf8_line(path)
    if bad is not None:
        line, byte = bad
        raise refuse(
            f"not UTF-8 text (byte 0x{byte:02x} on line {line}, header = line 1); "
            "save the file as 'CSV UTF-8'",
            line - 1 if line > 1 else None,
            code="file.encoding",
        )
    with path.open(encoding="utf-8-sig", newline="") as fh:
        try:
            header = next(csv.reader(fh), [])
        except csv.Error as exc:
            raise refuse(f"header row cannot be read: {exc}") from exc
    if not header or all(not h.strip() for h in header):
        raise refuse("no header row (the first line is empty)", code="file.empty")
    if len(header) == 1 and header[0].count(";") >= 1:
        raise refuse(
            "the header is separated by semicolons; save as comma-separated CSV (decimals with a point)",
            value=header[0][:80],
            code="file.delimiter",
        )
    generated = [f"c{i}" for i in range(len(header))]
    opts = pacsv.ConvertOptions(
        column_types=dict.fromkeys(generated, pa.string()),
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    read = pacsv.ReadOptions(encoding="utf-8", column_names=generated, skip_rows=1, block_size=1 << 24)
    try:
        data = pacsv.read_csv(path, read_options=read, convert_options=opts)
    except pa.ArrowInvalid as exc:
        where = _bad_field_count(path, len(header))
        if where is not None:
            row, n = where
            raise refuse(
                f"row has {n} fields where the header has {len(header)} (an unquoted comma, "
                "e.g. a decimal comma '1,5'? use a point, or quote the cell)",
                row,
                code="file.fields",
            ) from exc
        raise refuse(f"cannot be read as CSV: {str(exc).splitlines()[0][:200]}") from exc
    return _named(data, header, table, name)


def _named(data: pa.Table, header: list[str], table: str, where: str) -> pa.Table:
    """Drop unnamed empty columns, refuse unnamed columns holding values, apply model names."""
    keep, kept_header = [], []
    for i, h in enumerate(header):
        if h.strip():
            keep.append(i)
            kept_header.append(h)
            continue
        col = data.column(i)
        if col.null_count < len(col) and pc.any(pc.not_equal(pc.utf8_trim_whitespace(col), "")).as_py():
            first = pc.index(pc.is_valid(col), True).as_py()
            raise Refused(
                [
                    Problem(
                        "error",
                        where,
                        f"column {i + 1} holds values but has no header; name it or delete it",
                        first + 1 if first is not None and first >= 0 else None,
                        f"#{i + 1}",
                        None,
                        "column.unnamed",
                    )
                ]
            )
    names = _column_names(table, kept_header, where)
    return data.select(keep).rename_columns(names)


def _unquote_formula_prefix(table: pa.Table) -> pa.Table:
    """Undo the ``'`` an export puts before text a spreadsheet would run (``'=x`` → ``=x``)."""
    cols = [
        pc.replace_substring_regex(c, r"^'([=+\-@\t\r])", r"\1") if pa.types.is_string(c.type) else c
        for c in table.columns
    ]
    return pa.table(cols, names=table.column_names)


# ---- Parquet -------------------------------------------------------------------------------


def _parquet_schema(path: Path, table: str) -> tuple[pa.Schema, list[str]]:
    """The schema of a Parquet table file and its model column names; refuses what
    :func:`_read_parquet` refuses (unreadable file, nested or binary columns, repeated names)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise Refused(
            [Problem("error", path.name, f"not a readable Parquet file: {exc}", code="file.unreadable")]
        ) from exc
    problems = []
    for f in schema:
        t = f.type
        nested = pa.types.is_nested(t)
        if nested or pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            what = "nested (list, struct or map)" if nested else "binary"
            problems.append(
                Problem(
                    "error",
                    path.name,
                    f"column of type {t} is {what}: a table cell holds one value; "
                    "write one row per value instead",
                    None,
                    f.name,
                    None,
                    "column.type",
                )
            )
    if problems:
        raise Refused(problems)
    return schema, _column_names(table, list(schema.names), path.name)


def _read_parquet(path: Path, table: str) -> pa.Table:
    _, names = _parquet_schema(path, table)
    data = _as_text(pq.read_table(path))
    return data.rename_columns(names)


# ---- table sources: a table's rows in slices, typed where that is exact --------------------------


class TableSource:
    """One table of a bundle as validation reads it: its column names, its number of rows, its
    rows in slices (each with ``_row``) and, for the few cells a problem names, their text.

    A slice holds every column as text (what the reader would return) except the columns
    :func:`native_ok` keeps in their stored type, whose text types to exactly the stored value,
    so validation can type them without writing and re-parsing the text.
    """

    name: str
    file: str
    columns: list[str]
    num_rows: int

    def slices(self, rows: int) -> Iterable[pa.Table]:  # pragma: no cover - interface
        raise NotImplementedError

    def cell_text(self, column: str, rows: list[int]) -> dict[int, str | None]:  # pragma: no cover
        raise NotImplementedError


class ArrowSource(TableSource):
    """A text table already in memory (CSV, a workbook sheet, a Parquet file read whole)."""

    def __init__(self, name: str, file: str, table: pa.Table) -> None:
        self.name, self.file, self.table = name, file, table
        self.columns = [c for c in table.column_names if c != ROW]
        self.num_rows = table.num_rows

    def slices(self, rows: int) -> Iterable[pa.Table]:
        yield self.table.slice(0, rows)
        for first in range(rows, self.num_rows, rows):
            yield self.table.slice(first, rows)

    def cell_text(self, column: str, rows: list[int]) -> dict[int, str | None]:
        taken = self.table.column(column).take(pa.array([r - 1 for r in rows], pa.int64()))
        return dict(zip(rows, taken.cast(pa.string()).to_pylist(), strict=True))


class ParquetSource(TableSource):
    """A Parquet table file read one slice at a time (never whole): the columns
    :func:`native_ok` accepts keep their type, every other column is text as
    :func:`_as_text` writes it (cell by cell, so a slice's text is the whole file's)."""

    def __init__(self, name: str, path: Path, schema: pa.Schema, names: list[str], native: set[str]) -> None:
        self.name, self.file, self.path = name, path.name, path
        self.source_names = dict(zip(names, schema.names, strict=True))
        self.columns = list(names)
        model = TABLES_BY_NAME.get(name)
        # a slice holds the model's columns only: the others are reported by name, never typed
        self.read = [n for n in names if model is None or n in model.column_names]
        self.native = native
        self.num_rows = pq.ParquetFile(path).metadata.num_rows

    def _converted(self, table: pa.Table) -> pa.Table:
        cols = [
            c if n in self.native else _as_text(pa.table([c], names=[n])).column(0)
            for n, c in zip(self.read, table.columns, strict=True)
        ]
        return pa.table(cols, names=self.read)

    def slices(self, rows: int) -> Iterable[pa.Table]:
        first = 1
        empty = True
        with pq.ParquetFile(self.path) as f:
            source = [self.source_names[n] for n in self.read]
            for batch in f.iter_batches(batch_size=rows, columns=source, use_threads=True):
                t = self._converted(pa.Table.from_batches([batch]))
                yield t.append_column(ROW, pa.array(range(first, first + t.num_rows), pa.int64()))
                first += t.num_rows
                empty = False
            if empty:
                yield _with_rows(self._converted(f.schema_arrow.empty_table().select(source)))

    def cell_text(self, column: str, rows: list[int]) -> dict[int, str | None]:
        col = pq.read_table(self.path, columns=[self.source_names[column]]).column(0)
        taken = col.take(pa.array([r - 1 for r in rows], pa.int64()))
        text = _as_text(pa.table([taken], names=[column])).column(0)
        return dict(zip(rows, text.to_pylist(), strict=True))


_SIGNED = (pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32())
# dates whose text (YYYY-MM-DD) types back to themselves on every engine: four-digit years
_FIRST_DAY, _LAST_DAY = dt.date(1000, 1, 1), dt.date(9999, 12, 31)


def native_ok(t: pa.DataType, dtype: str) -> bool:
    """Whether a stored column of type ``t`` can be validated as ``dtype`` without its text:
    typing its text (:func:`_as_text`, then :func:`amlcohort.io.validate.parsed`) gives the
    stored value in every case, and the checks see the same value. 64-bit floats (their text is
    the shortest that reads back as the same number; NaN and infinity are text that is not a
    number, which validation mirrors), integers that fit 64 bits signed, booleans, and dates
    (checked on the file's statistics: four-digit years only, see :func:`_dates_native`)."""
    if dtype == "float":
        return t == pa.float64()
    if dtype == "int":
        return t in _SIGNED
    if dtype == "bool":
        return t == pa.bool_()
    if dtype == "date":
        return t == pa.date32()
    return False


def _dates_native(meta: pq.FileMetaData, index: int) -> bool:
    """Whether every date of column ``index`` has a four-digit year, read from the row groups'
    statistics (no statistics: not known, so the column is read as text)."""
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        st = rg.column(index).statistics
        if st is None:
            return False
        if st.has_null_count and st.null_count == rg.num_rows:
            continue
        if not st.has_min_max or not isinstance(st.min, dt.date) or not isinstance(st.max, dt.date):
            return False
        if st.min < _FIRST_DAY or st.max > _LAST_DAY:
            return False
    return True


def _text_castable(t: pa.DataType) -> bool:
    """Whether :func:`_as_text` converts a column of type ``t`` cell by cell (a slice's text is
    then the whole column's); a naive timestamp is not (its text depends on every value)."""
    if pa.types.is_timestamp(t) and t.tz is None:
        return False
    try:
        _as_text(pa.table([pa.array([], t)], names=["c"]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return True


def parquet_source(path: Path, table: str) -> TableSource:
    """The source of a Parquet table file: read in slices when every column converts cell by
    cell, else (a naive timestamp column) read whole as text, exactly as :func:`read_bundle`."""
    schema, names = _parquet_schema(path, table)
    if not all(_text_castable(f.type) for f in schema):
        return ArrowSource(table, path.name, _with_rows(_as_text(_read_parquet(path, table))))
    model = TABLES_BY_NAME.get(table)
    dtypes = {c.name: c.dtype for c in model.columns} if model else {}
    keys = set(model.key) if model else set()
    meta = pq.ParquetFile(path).metadata
    native = set()
    for i, (f, n) in enumerate(zip(schema, names, strict=True)):
        dtype = dtypes.get(n)
        # a key is compared on its text, which SQL writes as Arrow does for integers and dates
        if dtype is None or not native_ok(f.type, dtype) or (n in keys and dtype not in ("int", "date")):
            continue
        if dtype == "date" and not _dates_native(meta, i):
            continue
        native.add(n)
    return ParquetSource(table, path, schema, names, native)


# ---- XLSX -----------------------------------------------------------------------------------

_DECIMALS = re.compile(r"0\.(0+)")


def _decimals(number_format: str) -> int:
    section = number_format.split(";")[0]
    section = re.sub(r'"[^"]*"|\\.|\[[^\]]*\]', "", section)  # literals, escapes, [colour]
    m = _DECIMALS.search(section)
    return len(m.group(1)) if m else 0


def number_text(v: float | int, number_format: str = "General") -> str:
    """A workbook number as it is shown, never with fewer digits than stored.

    Integers as integers; a float to 15 significant digits (what a spreadsheet stores and
    shows), with the decimals its format shows (``0.0`` → ``5.0``) when that keeps its value
    (``1.234`` formatted ``0.0`` stays ``1.234``); a percent format shows the value × 100
    (``30%`` → ``30``). Grouping separators, currency symbols and literal text of the format are
    not part of the value.
    """
    fmt = number_format or "General"
    if "%" in fmt.split(";")[0]:
        v = round(v * 100, 12)
        if isinstance(v, float) and v.is_integer() and _decimals(fmt) == 0:
            v = int(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    # a spreadsheet keeps (and shows at most) 15 significant digits
    shown = str(v) if isinstance(v, int) else f"{v:.15g}"
    n = _decimals(fmt)
    if n:
        fixed = f"{v:.{n}f}"
        if float(fixed) == float(shown):
            return fixed
    return shown


def _cell_text(cell: object) -> str | None:
    v = cell.value  # type: ignore[attr-defined]
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time(0) and v.tzinfo is None else v.isoformat(" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dt.time):
        return v.isoformat()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return number_text(v, cell.number_format)  # type: ignore[attr-defined]
    s = str(v).strip()
    return s or None


def _named_list(kind: str, items: list[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    more = f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else ""
    return f"{kind} {shown}{more}"


def _read_xlsx(path: Path) -> tuple[dict[str, tuple[str, pa.Table]], list[Problem]]:
    import openpyxl
    from openpyxl.utils import get_column_letter

    if path.stat().st_size > MAX_WORKBOOK_BYTES:
        raise Refused(
            [
                Problem(
                    "error",
                    path.name,
                    f"workbook larger than {MAX_WORKBOOK_BYTES // 1024**2} MiB; "
                    "save large tables as CSV or Parquet",
                    code="file.too_large",
                )
            ]
        )
    try:
        values = openpyxl.load_workbook(path, data_only=True)
        formulas = openpyxl.load_workbook(path, data_only=False)
    except Exception as exc:  # openpyxl raises many kinds on a damaged file
        raise Refused(
            [Problem("error", path.name, f"not a readable .xlsx workbook: {exc}", code="file.unreadable")]
        ) from exc
    out: dict[str, tuple[str, pa.Table]] = {}
    problems: list[Problem] = []
    refused: list[Problem] = []
    for sheet, fsheet in zip(values.worksheets, formulas.worksheets, strict=True):
        where = f"{path.name}[{sheet.title}]"
        rows = [list(r) for r in sheet.iter_rows()]
        while rows and all(c.value is None or str(c.value).strip() == "" for c in rows[-1]):
            rows.pop()
        if not rows:
            continue
        name = _table_name(sheet.title)
        if sheet.sheet_state != "visible":
            problems.append(
                Problem(
                    "warning",
                    where,
                    f"the sheet is {sheet.sheet_state}; it is read like any other sheet",
                    code="sheet.hidden",
                )
            )
        ranges = sorted(sheet.merged_cells.ranges, key=lambda r: (r.min_col, r.min_row))
        if ranges:
            first = ranges[0]
            head = sheet.cell(1, first.min_col).value
            refused.append(
                Problem(
                    "error",
                    where,
                    _named_list("merged cells", [str(r) for r in ranges])
                    + ": a merged range shows one value for several rows but holds it in the first "
                    "cell only; unmerge and fill every cell",
                    first.min_row - 1 if first.min_row > 1 else None,
                    None if head is None else str(head).strip(),
                    str(first),
                    "cell.merged",
                )
            )
            continue
        hidden_rows = [str(i) for i, d in sorted(sheet.row_dimensions.items()) if d.hidden and i <= len(rows)]
        if hidden_rows:
            problems.append(
                Problem(
                    "warning", where, _named_list("hidden rows", hidden_rows) + " are read", code="row.hidden"
                )
            )
        width = max(len(r) for r in rows)
        hidden_cols = [
            get_column_letter(j + 1)
            for j in range(width)
            if sheet.column_dimensions[get_column_letter(j + 1)].hidden
        ]
        if hidden_cols:
            problems.append(
                Problem(
                    "warning",
                    where,
                    _named_list("hidden columns", hidden_cols) + " are read",
                    code="column.hidden",
                )
            )
        header = [_cell_text(c) or "" for c in rows[0]] + [""] * (width - len(rows[0]))
        data = rows[1:]
        fcells = {(c.row, c.column): c for r in fsheet.iter_rows(min_row=2) for c in r if c.data_type == "f"}
        uncached, cached, errors = [], [], []
        percent: dict[int, list[str]] = {}
        cols: list[list[str | None]] = [[] for _ in range(width)]
        for r in data:
            for j in range(width):
                c = r[j] if j < len(r) else None
                text = None if c is None else _cell_text(c)
                if c is not None and (c.row, c.column) in fcells:
                    (uncached if c.value is None else cached).append(c.coordinate)
                if c is not None and c.data_type == "e":
                    errors.append(f"{c.coordinate} ({c.value})")
                if (
                    c is not None
                    and isinstance(c.value, int | float)
                    and not isinstance(c.value, bool)
                    and "%" in (c.number_format or "")
                ):
                    percent.setdefault(j, []).append(c.coordinate)
                cols[j].append(text)
        if uncached:
            refused.append(
                Problem(
                    "error",
                    where,
                    _named_list("formula cells", uncached)
                    + " have no saved value (the file was written by a program that does not "
                    "calculate); open and save it in a spreadsheet program, or type the values",
                    None,
                    None,
                    uncached[0],
                    "cell.formula",
                )
            )
        if errors:
            refused.append(
                Problem(
                    "error",
                    where,
                    _named_list("cells", errors) + " hold spreadsheet errors, not values",
                    None,
                    None,
                    errors[0],
                    "cell.error",
                )
            )
        if cached:
            problems.append(
                Problem(
                    "warning",
                    where,
                    _named_list("formula cells", cached)
                    + " are read as the value saved with the file (the formula is not recalculated)",
                    None,
                    None,
                    cached[0],
                    "cell.formula",
                )
            )
        for j, cells in percent.items():
            problems.append(
                Problem(
                    "warning",
                    where,
                    _named_list("percent-formatted cells", cells)
                    + " are read as the number shown (a cell showing 30% reads as 30)",
                    None,
                    header[j] or f"#{j + 1}",
                    cells[0],
                    "cell.percent",
                )
            )
        try:
            arrays = pa.table({f"c{j}": pa.array(cols[j], pa.string()) for j in range(width)})
            table = _named(arrays, header, name, where)
        except Refused as exc:
            refused.extend(exc.problems)
            continue
        if name in out:
            refused.append(
                Problem(
                    "error",
                    where,
                    f"a second sheet for table {name!r} (first: {out[name][0]})",
                    code="table.repeated",
                )
            )
            continue
        out[name] = (where, table)
    values.close()
    formulas.close()
    if refused:
        raise Refused(refused + problems)
    return out, problems


# ---- the bundle -----------------------------------------------------------------------------


def _table_files(folder: Path, suffix: str) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() == suffix and not f.name.startswith("~$"))


@dataclass(frozen=True)
class SourceBundle:
    """A bundle's tables as :class:`TableSource` objects (Parquet files are not read yet)."""

    format: str
    sources: dict[str, TableSource]
    folder: Path | None = field(default=None, compare=False)


def read_bundle(path: Path) -> tuple[RawBundle | None, list[Problem]]:
    """Read every table file of the bundle at ``path`` (a folder, or an .xlsx inside one)."""
    read, problems = _read_bundle(Path(path), lazy=False)
    return read, problems  # type: ignore[return-value]


def open_bundle(path: Path) -> tuple[SourceBundle | None, list[Problem]]:
    """:func:`read_bundle`, with every table as a :class:`TableSource`: the same problems, the
    same text, but a Parquet file is read one slice at a time when validation types it, its
    64-bit floats, integers, booleans and dates kept as stored (:func:`native_ok`)."""
    read, problems = _read_bundle(Path(path), lazy=True)
    return read, problems  # type: ignore[return-value]


def _read_bundle(path: Path, *, lazy: bool) -> tuple[RawBundle | SourceBundle | None, list[Problem]]:
    bad_path = bundle_path_problems(path)
    if bad_path:
        return None, bad_path
    folder = path if path.is_dir() else path.parent
    try:
        xlsx = [path] if path.suffix.lower() == ".xlsx" and path.is_file() else _table_files(folder, ".xlsx")
        csvs, parquets = _table_files(folder, ".csv"), _table_files(folder, ".parquet")
    except OSError as exc:
        return None, [Problem("error", str(folder), f"cannot be listed: {exc.strerror}", code="bundle.path")]
    kinds = [k for k, files in (("csv", csvs), ("parquet", parquets), ("xlsx", xlsx)) if files]
    if not kinds:
        return None, [
            Problem(
                "error",
                str(folder),
                "no table files (.csv, .parquet or .xlsx) in the bundle",
                code="bundle.empty",
            )
        ]
    if len(kinds) > 1:
        return None, [
            Problem("error", str(folder), f"mixes table formats {kinds}; use one", code="bundle.mixed")
        ]
    files = xlsx if kinds == ["xlsx"] else csvs or parquets
    outside = [_outside_problem(f) for f in files if not _inside(folder, f)]
    not_files = [
        Problem("error", f.name, "is not a regular file", code="bundle.path")
        for f in files
        if _inside(folder, f) and not f.is_file()
    ]
    if outside or not_files:
        return None, outside + not_files
    tables: dict[str, pa.Table | TableSource] = {}
    names: dict[str, str] = {}
    problems: list[Problem] = []
    refused: list[Problem] = []
    if kinds == ["xlsx"]:
        if len(xlsx) > 1:
            return None, [Problem("error", str(folder), "more than one workbook", code="bundle.mixed")]
        try:
            sheets, problems = _read_xlsx(xlsx[0])
        except Refused as exc:
            return None, exc.problems
        except OSError as exc:
            return None, [
                Problem("error", xlsx[0].name, f"cannot be read: {exc.strerror}", code="file.unreadable")
            ]
        for name, (where, t) in sheets.items():
            tables[name], names[name] = t, where
    else:
        for f in files:
            name = _table_name(f.stem)
            try:
                if f.stat().st_size > MAX_TABLE_FILE_BYTES:
                    raise Refused(
                        [
                            Problem(
                                "error",
                                f.name,
                                f"larger than {MAX_TABLE_FILE_BYTES // 1024**3} GiB; load it into a "
                                "database and pass the connection instead",
                                code="file.too_large",
                            )
                        ]
                    )
                t: pa.Table | TableSource
                if f.suffix.lower() == ".csv":
                    t = _unquote_formula_prefix(_read_csv(f, name))
                elif lazy:
                    t = parquet_source(f, name)
                else:
                    t = _read_parquet(f, name)
            except Refused as exc:
                refused.extend(exc.problems)
                continue
            except OSError as exc:
                refused.append(
                    Problem("error", f.name, f"cannot be read: {exc.strerror}", code="file.unreadable")
                )
                continue
            if name in tables:
                refused.append(
                    Problem(
                        "error",
                        f.name,
                        f"a second file for table {name!r} (first: {names[name]})",
                        code="table.repeated",
                    )
                )
                continue
            tables[name], names[name] = t, f.name
    if refused:
        return None, refused + problems
    if lazy:
        sources = {
            k: v if isinstance(v, TableSource) else ArrowSource(k, names[k], _with_rows(_as_text(v)))
            for k, v in tables.items()
        }
        return SourceBundle(kinds[0], sources, folder), problems
    tables = {k: _with_rows(_as_text(v)) for k, v in tables.items()}  # type: ignore[arg-type]
    return RawBundle(kinds[0], tables, names, folder), problems


__all__ = [
    "MAX_TABLE_FILE_BYTES",
    "MAX_WORKBOOK_BYTES",
    "ROW",
    "ArrowSource",
    "ParquetSource",
    "RawBundle",
    "SourceBundle",
    "TableSource",
    "bundle_path_problems",
    "did_you_mean",
    "native_ok",
    "normal_name",
    "number_text",
    "open_bundle",
    "read_bundle",
]
