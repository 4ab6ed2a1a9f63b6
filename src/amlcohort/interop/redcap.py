"""REDCap in: a data dictionary + a records export + a mapping (YAML) -> a cohort bundle.

Reads what REDCap exports, as exported:

* the data dictionary (CSV from "Data Dictionary" or the API's metadata export): field name, form,
  field type, choices (``1, female | 2, male``), text validation (``date_ymd``, ``integer``, ...);
* the records (CSV): flat, or longitudinal with ``redcap_event_name``, repeating instruments with
  ``redcap_repeat_instrument`` / ``redcap_repeat_instance``, raw codes or labels, checkbox columns
  ``field___code``.

The mapping says which instrument fills which cohort table and which field fills which column
(see ``docs/interop.md``; :func:`starter_mapping` writes a first draft from a dictionary). Every
value that cannot be used -- a field no mapping names, a date or number that does not parse, a
choice code the dictionary does not list -- is a :class:`RedcapProblem` naming record, event,
instrument, instance and field. Nothing is dropped, merged or guessed silently.

:func:`model_dictionary` writes a REDCap data dictionary for amlcohort's own cohort model (from
``schema/model.py``, the one source of truth), with :func:`model_mapping` the mapping that imports
a project built from it. PyCap (``pip install PyCap``) is optional: :func:`pull_from_api` uses it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, Literal

import yaml

from amlcohort.schema import TABLES, TABLES_BY_NAME, Column, Table

Severity = Literal["error", "warning"]

SYSTEM_FIELDS = (
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
    "redcap_data_access_group",
    "redcap_survey_identifier",
    "redcap_arm",
)
CHOICE_TYPES = ("dropdown", "radio", "checkbox", "yesno", "truefalse")
YESNO = {"yesno": {"1": "Yes", "0": "No"}, "truefalse": {"1": "True", "0": "False"}}
DATE_VALIDATIONS = {"date_ymd": "%Y-%m-%d", "date_dmy": "%d-%m-%Y", "date_mdy": "%m-%d-%Y"}
NUMBER_VALIDATIONS = ("integer", "number", "number_1dp", "number_2dp", "number_3dp", "number_4dp")

# REDCap's dictionary header (the CSV download) and the API metadata names, in the same order
DICTIONARY_HEADER = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
_API_NAMES = (
    "field_name",
    "form_name",
    "section_header",
    "field_type",
    "field_label",
    "select_choices_or_calculations",
    "field_note",
    "text_validation_type_or_show_slider_number",
    "text_validation_min",
    "text_validation_max",
    "identifier",
    "branching_logic",
    "required_field",
    "custom_alignment",
    "question_number",
    "matrix_group_name",
    "matrix_ranking",
    "field_annotation",
)
_ALIASES = {
    **{h.lower(): a for h, a in zip(DICTIONARY_HEADER, _API_NAMES, strict=True)},
    **{a: a for a in _API_NAMES},
}

# field-name prefixes of amlcohort's own REDCap project (one per model table)
TABLE_PREFIX = {
    "patients": "pt",
    "mutations": "mut",
    "prior_therapies": "pth",
    "exposures": "ex",
    "assessments": "as",
    "transfusions": "tf",
    "supportive_care": "sc",
    "adverse_events": "ae",
    "events": "ev",
}
RECORD_ID = "record_id"
SIDECAR = "redcap"  # sub-folder of an imported bundle: where each row came from, the problems


# ---- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedcapProblem:
    """One finding in a REDCap export, located by record, event, instrument, instance and field."""

    severity: Severity
    code: str
    reason: str
    record: str | None = None
    event: str | None = None
    instrument: str | None = None
    instance: str | None = None
    field: str | None = None
    value: object = None

    def __str__(self) -> str:
        where = [
            f"{k} {v!r}"
            for k, v in (
                ("record", self.record),
                ("event", self.event),
                ("instrument", self.instrument),
                ("instance", self.instance),
                ("field", self.field),
            )
            if v not in (None, "")
        ]
        value = "" if self.value is None else f" value {self.value!r}:"
        return f"{self.severity.upper()} [{self.code}] {', '.join(where) or 'export'}:{value} {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "record": self.record,
            "event": self.event,
            "instrument": self.instrument,
            "instance": self.instance,
            "field": self.field,
            "value": None if self.value is None else str(self.value),
            "reason": self.reason,
        }


# ---- the dictionary ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    form: str
    type: str
    label: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    validation: str = ""

    @property
    def codes(self) -> dict[str, str]:
        """Choice code -> label (yes/no fields included)."""
        if self.type in YESNO:
            return YESNO[self.type]
        return dict(self.choices)


def parse_choices(text: str) -> tuple[tuple[str, str], ...]:
    """``"1, female | 2, male"`` -> ``(("1", "female"), ("2", "male"))`` (labels may hold commas)."""
    out = []
    for part in (text or "").split("|"):
        part = part.strip()
        if not part:
            continue
        code, _, label = part.partition(",")
        out.append((code.strip(), label.strip()))
    return tuple(out)


def _text(source: str | Path) -> str:
    """A file's text (a Path, or a str without a newline), or the text itself."""
    if isinstance(source, Path) or "\n" not in str(source):
        return Path(source).read_text(encoding="utf-8-sig")
    return str(source)


def _rows(source: str | Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(_text(source))))


def read_dictionary(source: str | Path) -> dict[str, Field]:
    """A REDCap data dictionary (download CSV or API metadata CSV) as fields by name, in order."""
    out: dict[str, Field] = {}
    for raw in _rows(source):
        r = {_ALIASES.get(k.strip().lower(), k): (v or "").strip() for k, v in raw.items() if k}
        name = r.get("field_name", "")
        if not name:
            continue
        ftype = r.get("field_type", "text").lower()
        choices = parse_choices(r.get("select_choices_or_calculations", "")) if ftype in CHOICE_TYPES else ()
        out[name] = Field(
            name,
            r.get("form_name", ""),
            ftype,
            r.get("field_label", ""),
            choices,
            r.get("text_validation_type_or_show_slider_number", "").lower(),
        )
    return out


# ---- the mapping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSource:
    """Where one cohort column comes from: a field, a checkbox's checked options, or a constant."""

    column: str
    field: str | None = None
    checkbox: str | None = None
    value: str | None = None
    values: Mapping[str, str] = dc_field(default_factory=dict)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for f in (self.field, self.checkbox) if f)


@dataclass(frozen=True)
class TableMapping:
    table: str
    instrument: str
    columns: tuple[ColumnSource, ...]
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class RedcapMapping:
    record_id: str
    tables: tuple[TableMapping, ...]
    metadata: dict[str, Any]
    study: dict[str, Any] | None = None
    ignore: tuple[str, ...] = ()


def read_mapping(source: str | Path | Mapping[str, Any]) -> RedcapMapping:
    """Parse a mapping (a YAML file, YAML text or a dict); raises ValueError naming what is wrong."""
    doc = source if isinstance(source, Mapping) else yaml.safe_load(_text(source))
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tables"), Mapping):
        raise ValueError("mapping: a YAML mapping with 'tables:' (table -> instrument and columns) is needed")
    tables = []
    for tname, spec in doc["tables"].items():
        if tname not in TABLES_BY_NAME:
            raise ValueError(f"mapping: unknown cohort table {tname!r}; known: {sorted(TABLES_BY_NAME)}")
        if not isinstance(spec, Mapping) or "instrument" not in spec:
            raise ValueError(f"mapping: table {tname!r} needs 'instrument:' and 'columns:'")
        model = TABLES_BY_NAME[tname]
        cols = []
        for cname, src in (spec.get("columns") or {}).items():
            if cname not in model.column_names:
                raise ValueError(
                    f"mapping: table {tname!r} has no column {cname!r}; columns: {list(model.column_names)}"
                )
            if isinstance(src, str):
                cols.append(ColumnSource(cname, field=src))
            elif isinstance(src, Mapping):
                values = {str(k): str(v) for k, v in (src.get("values") or {}).items()}
                cols.append(
                    ColumnSource(
                        cname,
                        src.get("field"),
                        src.get("checkbox"),
                        None if src.get("value") is None else str(src["value"]),
                        values,
                    )
                )
            else:
                raise ValueError(
                    f"mapping: {tname}.{cname}: give a field name or {{field|checkbox|value: ...}}"
                )
        events = spec.get("events") or ()
        tables.append(
            TableMapping(
                tname,
                str(spec["instrument"]),
                tuple(cols),
                tuple(events) if not isinstance(events, str) else (events,),
            )
        )
    meta = dict(doc.get("metadata") or {})
    for key in ("study_name", "cutoff_date"):
        if key not in meta:
            raise ValueError(f"mapping: metadata needs {key!r} (it becomes the bundle's metadata.yaml)")
    return RedcapMapping(
        str(doc.get("record_id", RECORD_ID)),
        tuple(tables),
        meta,
        doc.get("study"),
        tuple(doc.get("ignore") or ()),
    )


# ---- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Where:
    record: str
    event: str
    instrument: str
    instance: str


def _problem(
    severity: Severity, code: str, reason: str, w: Where, fname: str, value: object
) -> RedcapProblem:
    return RedcapProblem(severity, code, reason, w.record, w.event, w.instrument, w.instance, fname, value)


def _parse_date(value: str, validation: str) -> str | None:
    formats = ["%Y-%m-%d"]
    if validation in DATE_VALIDATIONS:
        formats.append(DATE_VALIDATIONS[validation])
    if validation.startswith("datetime"):
        formats += ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
    for f in formats:
        try:
            return dt.datetime.strptime(value, f).date().isoformat()
        except ValueError:
            continue
    return None


def _choice(fdef: Field, value: str) -> tuple[str, str] | None:
    """``(code, label)`` of a choice field's value, looked up as a code (a raw export), then as a
    label, ignoring case (a labels export); None when it is neither."""
    codes = fdef.codes
    if value in codes:
        return value, codes[value]
    by_label = {lab.casefold(): (code, lab) for code, lab in reversed(codes.items())}
    return by_label.get(value.casefold())


def _translate(values: Mapping[str, str], *keys: str) -> str | None:
    """The mapping's ``values:`` translation of the first of ``keys`` (the value as exported, its
    choice code, its label) it has; then the same ignoring case (a key written as the label)."""
    for k in keys:
        if k in values:
            return values[k]
    folded = {k.casefold(): v for k, v in reversed(values.items())}
    for k in keys:
        if k.casefold() in folded:
            return folded[k.casefold()]
    return None


def _bool_text(label: str) -> str | None:
    return {
        "yes": "true",
        "true": "true",
        "1": "true",
        "checked": "true",
        "no": "false",
        "false": "false",
        "0": "false",
        "unchecked": "false",
    }.get(label.strip().lower())


def convert(
    value: str, fdef: Field | None, src: ColumnSource, col: Column, w: Where, problems: list[RedcapProblem]
) -> str:
    """One REDCap value -> the text the bundle holds ('' for empty); problems appended, never raised."""
    fname = src.field or ""
    if value == "":
        return ""
    text = code = value
    if fdef is not None and fdef.type in CHOICE_TYPES and fdef.type != "checkbox":
        choice = _choice(fdef, value)
        if choice is None:
            problems.append(
                _problem(
                    "error",
                    "redcap.choice",
                    f"not a choice of field {fdef.name!r}: neither a code nor a label "
                    f"(codes: {', '.join(f'{k}={v}' for k, v in fdef.codes.items())})",
                    w,
                    fname,
                    value,
                )
            )
            return ""
        code, text = choice
    if src.values:
        # keyed by code or by label: a labels export finds a code-keyed translation by its label
        mapped = _translate(src.values, value, code, text)
        if mapped is None:
            problems.append(
                _problem(
                    "error",
                    "redcap.unmapped_value",
                    f"no translation in the mapping's values for {src.column!r} "
                    f"(known: {sorted(src.values)})",
                    w,
                    fname,
                    value,
                )
            )
            return ""
        text = mapped
    if col.dtype == "date":
        iso = _parse_date(text, fdef.validation if fdef else "")
        if iso is None:
            problems.append(
                _problem("error", "redcap.date", "not a date (REDCap exports YYYY-MM-DD)", w, fname, value)
            )
            return ""
        return iso
    if col.dtype in ("int", "float"):
        try:
            number = float(text)
        except ValueError:
            problems.append(
                _problem(
                    "error",
                    "redcap.number",
                    f"not a number (column {col.name!r} is {col.dtype})",
                    w,
                    fname,
                    value,
                )
            )
            return ""
        if col.dtype == "int":
            if not number.is_integer():
                problems.append(_problem("error", "redcap.number", "not a whole number", w, fname, value))
                return ""
            return str(int(number))
        return text.strip()
    if col.dtype == "bool":
        b = _bool_text(text)
        if b is None:
            problems.append(
                _problem("error", "redcap.bool", "not yes/no, true/false or 1/0", w, fname, value)
            )
            return ""
        return b
    return text


def _checkbox(
    row: Mapping[str, str], fdef: Field | None, src: ColumnSource, w: Where, problems: list[RedcapProblem]
) -> str:
    """Checked options of checkbox ``src.checkbox`` (columns ``name___code``) as labels joined by '; '."""
    name = src.checkbox or ""
    codes = fdef.codes if fdef else {}
    checked = []
    for key, value in row.items():
        if not key.startswith(name + "___"):
            continue
        code = key[len(name) + 3 :]
        if value in ("", "0", "Unchecked"):
            continue
        if value not in ("1", "Checked") and value != codes.get(code):
            problems.append(
                _problem(
                    "error",
                    "redcap.checkbox",
                    "a checkbox column holds 1/0 (raw) or Checked/Unchecked or the option label",
                    w,
                    key,
                    value,
                )
            )
            continue
        label = codes.get(code)
        if label is None:
            problems.append(
                _problem(
                    "error",
                    "redcap.choice",
                    f"checkbox option {code!r} is not a choice of field {name!r}",
                    w,
                    key,
                    value,
                )
            )
            continue
        checked.append(src.values.get(code, src.values.get(label, label)))
    return "; ".join(checked)


# ---- import -----------------------------------------------------------------------------------


@dataclass
class RedcapImport:
    """Cohort tables (rows of text, as a bundle's CSV holds them), where each row came from, problems."""

    tables: dict[str, list[dict[str, str]]]
    sources: dict[str, list[Where]]
    problems: list[RedcapProblem]
    metadata: dict[str, Any]
    study: dict[str, Any] | None = None

    @property
    def errors(self) -> list[RedcapProblem]:
        return [p for p in self.problems if p.severity == "error"]


def _base_field(column: str) -> str:
    return column.split("___", 1)[0]


def _is_system(name: str, record_id: str) -> bool:
    return name == record_id or name in SYSTEM_FIELDS or name.endswith(("_complete", "_timestamp"))


def import_redcap(
    records: str | Path, dictionary: str | Path, mapping: str | Path | Mapping[str, Any]
) -> RedcapImport:
    """Map a REDCap records export onto the cohort model (see the module docstring)."""
    fields = read_dictionary(dictionary)
    m = mapping if isinstance(mapping, RedcapMapping) else read_mapping(mapping)
    rows = _rows(records)
    problems: list[RedcapProblem] = []
    header = list(rows[0]) if rows else []
    if rows and m.record_id not in header:
        problems.append(
            RedcapProblem(
                "error",
                "redcap.record_id",
                f"the records have no record-id column {m.record_id!r} (mapping 'record_id')",
                field=m.record_id,
            )
        )
        return RedcapImport({}, {}, problems, m.metadata, m.study)
    for t in m.tables:
        for src in t.columns:
            for f in src.fields:
                if f != m.record_id and f not in fields:
                    problems.append(
                        RedcapProblem(
                            "error",
                            "redcap.mapping",
                            f"the mapping names field {f!r} "
                            f"(for {t.table}.{src.column}), which the dictionary lacks",
                            field=f,
                        )
                    )
    repeating = {r.get("redcap_repeat_instrument", "") for r in rows} - {""}
    tables: dict[str, list[dict[str, str]]] = {}
    sources: dict[str, list[Where]] = {}
    used: set[str] = {f for t in m.tables for s in t.columns for f in s.fields}
    checks, uncovered = _check_rows(rows, fields, m, repeating)
    problems += checks
    for t in m.tables:
        model = TABLES_BY_NAME[t.table]
        own = {f for s in t.columns for f in s.fields if f != m.record_id}
        out, where = [], []
        for r in rows:
            rri = r.get("redcap_repeat_instrument", "") or ""
            if t.instrument in repeating:
                if rri != t.instrument:
                    continue
            elif rri:
                continue
            event = r.get("redcap_event_name", "") or ""
            has_data = any(r.get(f, "") not in ("", None) for f in own) or any(
                k.startswith(s.checkbox + "___") and r[k] not in ("", "0", "Unchecked")
                for s in t.columns
                if s.checkbox
                for k in r
            )
            if not has_data:
                continue
            w = Where(r.get(m.record_id, ""), event, t.instrument, r.get("redcap_repeat_instance", "") or "")
            if t.events and event not in t.events:
                problems.append(
                    RedcapProblem(
                        "warning",
                        "redcap.event",
                        f"{t.table}: data in an event the mapping does not list "
                        f"({', '.join(t.events)}): row not imported",
                        w.record,
                        w.event,
                        w.instrument,
                        w.instance,
                    )
                )
                continue
            values: dict[str, str] = {}
            for src in t.columns:
                col = model.column(src.column)
                if src.value is not None:
                    values[src.column] = src.value
                elif src.checkbox:
                    values[src.column] = _checkbox(r, fields.get(src.checkbox), src, w, problems)
                elif src.field == m.record_id:
                    values[src.column] = w.record
                else:
                    values[src.column] = convert(
                        r.get(src.field or "", ""), fields.get(src.field or ""), src, col, w, problems
                    )
            if "patient_id" not in values:
                values["patient_id"] = w.record
            out.append(values)
            where.append(w)
        tables[t.table] = out
        sources[t.table] = where
    problems += _unmapped(rows, fields, m, used, uncovered)
    return RedcapImport(tables, sources, problems, m.metadata, m.study)


def _row_values(r: Mapping[str, str], record_id: str) -> list[tuple[str, str]]:
    """(column, value) of a row's non-empty data values (system fields and unchecked boxes left out)."""
    return [
        (col, value)
        for col, value in r.items()
        if col
        and not _is_system(col, record_id)
        and value not in ("", None)
        and not ("___" in col and value in ("0", "Unchecked"))
    ]


def _check_rows(
    rows: list[dict[str, str]], fields: Mapping[str, Field], m: RedcapMapping, repeating: set[str]
) -> tuple[list[RedcapProblem], set[int]]:
    """What the table loop would otherwise skip without a word: repeat instances that are not
    positive whole numbers or appear twice, rows of an instrument the mapping does not cover, values of
    a mapped field on a row its table does not read, records with nothing but their id. Returns the
    problems and the indexes of the rows of uncovered instruments (reported here in full)."""
    out: list[RedcapProblem] = []
    uncovered: set[int] = set()
    mapped = {t.instrument for t in m.tables}
    forms = {f.form for f in fields.values()}
    instruments: dict[str, list[str]] = {}  # mapped field -> instruments of the tables naming it
    for t in m.tables:
        for s in t.columns:
            for f in s.fields:
                if f != m.record_id and t.instrument not in instruments.setdefault(f, []):
                    instruments[f].append(t.instrument)
    seen: dict[tuple[str, str, str, str], int] = {}
    has_values: dict[str, bool] = {}
    for i, r in enumerate(rows, start=2):  # CSV line (header is line 1)
        record = r.get(m.record_id, "") or ""
        event = r.get("redcap_event_name", "") or ""
        rri = r.get("redcap_repeat_instrument", "") or ""
        inst = (r.get("redcap_repeat_instance", "") or "").strip()
        w = Where(record, event, rri, inst)
        values = _row_values(r, m.record_id)
        has_values[record] = has_values.get(record, False) or bool(values)
        key = (record, event, rri, inst)
        if rri and not inst:
            out.append(
                _problem(
                    "error",
                    "redcap.instance",
                    f"a row of repeating instrument {rri!r} without a repeat instance (line {i})",
                    w,
                    "redcap_repeat_instance",
                    inst,
                )
            )
        elif inst and not re.fullmatch(r"[1-9][0-9]*", inst):
            out.append(
                _problem(
                    "error",
                    "redcap.instance",
                    f"a repeat instance must be a whole number from 1 (line {i})",
                    w,
                    "redcap_repeat_instance",
                    inst,
                )
            )
        elif key in seen:
            what = (
                f"instance {inst} of {'instrument ' + repr(rri) if rri else 'the repeating event'}"
                if inst
                else "the record's non-repeating row"
            )
            out.append(
                _problem(
                    "error",
                    "redcap.duplicate",
                    f"{what} appears more than once (lines {seen[key]} and {i}): "
                    "which one holds the data cannot be decided",
                    w,
                    "redcap_repeat_instance" if inst else m.record_id,
                    inst or record,
                )
            )
        else:
            seen[key] = i
        if rri and rri not in mapped:
            uncovered.add(i - 2)
            why = "nor in the dictionary" if rri not in forms else "(add a table for it to the mapping)"
            for col, value in values:
                out.append(
                    _problem(
                        "warning",
                        "redcap.unmapped_instrument",
                        f"not imported: instrument {rri!r} is not in the mapping {why}",
                        w,
                        col,
                        value,
                    )
                )
            continue
        for col, value in values:
            base = _base_field(col)
            owners = instruments.get(base)
            if not owners:
                continue  # an unmapped field: reported by _unmapped
            reads = [o for o in owners if (o == rri if o in repeating else not rri)]
            if reads:
                continue
            found = (
                f"a row of instrument {rri!r} (instance {inst or '?'})"
                if rri
                else "the record's non-repeating row (a repeating instrument's values are read "
                "from its instance rows only)"
            )
            out.append(
                _problem(
                    "warning",
                    "redcap.misplaced",
                    f"not imported: field {base!r} belongs to instrument "
                    f"{' / '.join(repr(o) for o in owners)}, found on {found}",
                    w,
                    col,
                    value,
                )
            )
    for record, any_value in has_values.items():
        if not any_value:
            out.append(
                RedcapProblem(
                    "warning",
                    "redcap.empty_record",
                    "the record holds nothing but its id: nothing imported (no patient row)",
                    record,
                    field=m.record_id,
                    value=record,
                )
            )
    return out, uncovered


def _unmapped(
    rows: list[dict[str, str]],
    fields: Mapping[str, Field],
    m: RedcapMapping,
    used: set[str],
    skip: set[int] | None = None,
) -> list[RedcapProblem]:
    """Every non-empty value of a field no mapping names (and the mapping does not ``ignore``);
    rows ``skip`` (indexes: rows of an instrument the mapping does not cover) are reported elsewhere."""
    out = []
    header = list(rows[0]) if rows else []
    for col in header:
        base = _base_field(col)
        if _is_system(col, m.record_id) or base in used or base in m.ignore or col in m.ignore:
            continue
        known = base in fields
        for i, r in enumerate(rows):
            if skip and i in skip:
                continue
            value = r.get(col, "")
            if value in ("", None) or ("___" in col and value in ("0", "Unchecked")):
                continue
            instrument = r.get("redcap_repeat_instrument") or (fields[base].form if known else "")
            out.append(
                RedcapProblem(
                    "warning",
                    "redcap.unmapped",
                    "field not in the mapping: value not imported (map it, or list it under 'ignore:')"
                    if known
                    else "column is neither in the dictionary nor in the mapping: value not imported",
                    r.get(m.record_id, ""),
                    r.get("redcap_event_name", ""),
                    instrument,
                    r.get("redcap_repeat_instance", ""),
                    col,
                    value,
                )
            )
    return out


def write_bundle(result: RedcapImport, out: str | Path) -> Path:
    """Write the imported tables as a CSV bundle with ``metadata.yaml`` (and ``study.yaml`` when the
    mapping has a ``study:`` block) plus ``redcap/sources.csv`` (table, row -> record, event, ...)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(result.metadata)
    if isinstance(meta.get("cutoff_date"), dt.date):
        meta["cutoff_date"] = meta["cutoff_date"].isoformat()
    (out / "metadata.yaml").write_text(
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    if result.study:
        (out / "study.yaml").write_text(
            yaml.safe_dump(result.study, sort_keys=False, allow_unicode=True), encoding="utf-8"
        )
    for name, rows in result.tables.items():
        model = TABLES_BY_NAME[name]
        # a column no record fills is left out (it holds nothing, and a measurement column would
        # otherwise need a declared unit); required columns are always written
        columns = [
            c.name
            for c in model.columns
            if c.required or any(r.get(c.name) not in (None, "") for r in rows)
        ]
        with (out / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    (out / SIDECAR).mkdir(exist_ok=True)
    with (out / SIDECAR / "sources.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["table", "row", "record", "event", "instrument", "instance"])
        for name, ws in result.sources.items():
            for i, s in enumerate(ws, start=1):
                w.writerow([name, i, s.record, s.event, s.instrument, s.instance])
    return out


def locate(
    result: RedcapImport, problems: Iterable[Any], mapping: RedcapMapping | None = None
) -> list[RedcapProblem]:
    """Bundle validation problems (table, row, column) restated at their REDCap source."""
    fields_by_col = {
        (t.table, s.column): (s.field or s.checkbox or "")
        for t in (mapping.tables if mapping else ())
        for s in t.columns
    }
    out = []
    for p in problems:
        rows = result.sources.get(p.table, [])
        if p.row is not None and 1 <= p.row <= len(rows):
            w = rows[p.row - 1]
            fname = fields_by_col.get((p.table, p.column or ""), p.column)
            out.append(
                RedcapProblem(
                    p.severity,
                    p.code,
                    f"{p.table}.{p.column}: {p.reason}",
                    w.record,
                    w.event,
                    w.instrument,
                    w.instance,
                    fname,
                    p.value,
                )
            )
        else:
            where = f"table {p.table!r}" + (f", row {p.row}" if p.row is not None else "")
            where += f", column {p.column!r}" if p.column else ""
            out.append(RedcapProblem(p.severity, p.code, f"{where}: {p.reason}", value=p.value))
    return out


# ---- amlcohort's own REDCap project ------------------------------------------------------------


def field_name(table: str, column: str) -> str:
    """REDCap field of a model column in amlcohort's own project (``assessments.anc`` -> ``as_anc``)."""
    if table == "patients" and column == "patient_id":
        return RECORD_ID
    return f"{TABLE_PREFIX.get(table, table)}_{column}"


def _field_row(table: Table, col: Column) -> dict[str, str]:
    row = dict.fromkeys(DICTIONARY_HEADER, "")
    row["Variable / Field Name"] = field_name(table.name, col.name)
    row["Form Name"] = table.name
    row["Field Label"] = col.description
    notes = [f"unit: {col.unit}" if col.unit else "", f"amlcohort {table.name}.{col.name}"]
    row["Field Note"] = "; ".join(n for n in notes if n)
    if col.allowed:
        row["Field Type"] = "dropdown"
        row["Choices, Calculations, OR Slider Labels"] = " | ".join(
            f"{i}, {v}" for i, v in enumerate(col.allowed, start=1)
        )
    elif col.dtype == "bool":
        row["Field Type"] = "yesno"
    elif col.dtype == "date":
        row["Field Type"] = "text"
        row["Text Validation Type OR Show Slider Number"] = "date_ymd"
    elif col.dtype in ("int", "float"):
        row["Field Type"] = "text"
        row["Text Validation Type OR Show Slider Number"] = "integer" if col.dtype == "int" else "number"
        for bound, key in ((col.hard_min, "Text Validation Min"), (col.hard_max, "Text Validation Max")):
            if bound is not None:
                row[key] = f"{bound:g}"
    else:
        row["Field Type"] = (
            "notes" if col.name in ("description", "comorbidities", "diagnosis_text") else "text"
        )
    row["Required Field?"] = "y" if col.required else ""
    return row


def model_dictionary() -> list[dict[str, str]]:
    """REDCap data dictionary rows for the cohort model: one instrument per table (``patients`` first,
    holding ``record_id`` = patient_id), every other table a repeating instrument."""
    out = []
    for table in TABLES:
        for col in table.columns:
            if col.name == "patient_id" and table.name != "patients":
                continue
            out.append(_field_row(table, col))
    return out


def repeating_instruments() -> list[dict[str, str]]:
    """The instruments to make repeating (REDCap: "Repeating instruments and events")."""
    return [{"form_name": t.name, "custom_form_label": ""} for t in TABLES if t.name != "patients"]


def write_csv(rows: list[dict[str, str]], path: str | Path, header: Iterable[str] | None = None) -> Path:
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(header or (rows[0] if rows else [])))
        w.writeheader()
        w.writerows(rows)
    return path


def model_mapping(
    metadata: Mapping[str, Any] | None = None, events: Mapping[str, Iterable[str]] | None = None
) -> dict[str, Any]:
    """The mapping that imports a project built from :func:`model_dictionary` (``events``: optional
    table -> unique event names, for a longitudinal project)."""
    tables: dict[str, Any] = {}
    for table in TABLES:
        cols: dict[str, Any] = {}
        for col in table.columns:
            cols[col.name] = RECORD_ID if col.name == "patient_id" else field_name(table.name, col.name)
        spec: dict[str, Any] = {"instrument": table.name}
        if events and table.name in events:
            spec["events"] = list(events[table.name])
        spec["columns"] = cols
        tables[table.name] = spec
    meta = dict(
        metadata or {"study_name": "TODO: study name", "cutoff_date": "TODO: YYYY-MM-DD", "units": {}}
    )
    return {"record_id": RECORD_ID, "metadata": meta, "tables": tables}


# ---- a starter mapping for any dictionary ------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _match(col: str, table: str, candidates: list[Field]) -> Field | None:
    for f in candidates:
        n = _norm(f.name)
        if n in (col, field_name(table, col)) or n.endswith("_" + col):
            return f
    return None


def starter_mapping(dictionary: str | Path, metadata: Mapping[str, Any] | None = None) -> str:
    """A first-draft mapping (YAML text with ``TODO`` comments) for a REDCap dictionary: each cohort
    table is matched to the instrument whose field names best match its columns, each column to the
    field named like it; what is unmatched is listed as a comment for a person to decide."""
    fields = read_dictionary(dictionary)
    forms: dict[str, list[Field]] = {}
    for f in fields.values():
        forms.setdefault(f.form, []).append(f)
    record_id = next(iter(fields), RECORD_ID)
    used: set[str] = {record_id}
    lines = [
        "# amlcohort REDCap mapping: a STARTER draft generated from the data dictionary.",
        "# Check every line; TODO marks what could not be matched. See docs/interop.md.",
        f"record_id: {record_id}",
        "metadata:",
    ]
    meta = dict(metadata or {})
    lines.append(f"  study_name: {yaml.safe_dump(meta.get('study_name', 'TODO study name')).splitlines()[0]}")
    lines.append(f"  cutoff_date: {meta.get('cutoff_date', 'TODO')}   # data cut-off, YYYY-MM-DD")
    lines.append("  units: {}   # TODO: the unit of every measurement with more than one possible unit")
    lines.append("tables:")
    for table in TABLES:
        best, score = None, 0
        for form, fs in forms.items():
            s = (
                sum(_match(c.name, table.name, fs) is not None for c in table.columns)
                + (form == table.name) * 3
            )
            if s > score:
                best, score = form, s
        if best is None:
            lines.append(
                f"  # {table.name}: TODO no instrument matches (columns: {', '.join(table.column_names)})"
            )
            continue
        lines += [f"  {table.name}:", f"    instrument: {best}", "    columns:"]
        for col in table.columns:
            if col.name == "patient_id":
                lines.append(f"      patient_id: {record_id}")
                continue
            f = _match(col.name, table.name, forms[best])
            if f is None:
                req = " (required)" if col.required else ""
                lines.append(f"      # {col.name}: TODO{req} {col.description}")
                continue
            used.add(f.name)
            if f.type == "checkbox":
                lines.append(f"      {col.name}: {{checkbox: {f.name}}}")
            elif col.allowed and f.codes and not set(f.codes.values()) <= set(col.allowed):
                lines.append(f"      {col.name}:")
                lines.append(f"        field: {f.name}")
                lines.append("        values:   # TODO: REDCap code -> " + " / ".join(col.allowed))
                lines += [
                    f"          {yaml.safe_dump(code).splitlines()[0]}: TODO   # {label}"
                    for code, label in f.codes.items()
                ]
            else:
                lines.append(f"      {col.name}: {f.name}")
    rest = [f.name for f in fields.values() if f.name not in used and f.type not in ("descriptive", "calc")]
    lines.append("ignore: []   # fields deliberately not imported")
    if rest:
        lines.append("# unmatched fields (map them above, or add them to ignore):")
        lines += [f"#   {n} ({fields[n].form}, {fields[n].type})" for n in rest]
    return "\n".join(lines) + "\n"


# ---- PyCap (optional) -------------------------------------------------------------------------


def pull_from_api(url: str, token: str, dest: str | Path) -> tuple[Path, Path]:
    """Download records (raw, flat CSV) and the data dictionary through the REDCap API with PyCap
    (``pip install PyCap``; optional). Returns (records.csv, dictionary.csv) in ``dest``."""
    try:
        from redcap import Project  # PyCap
    except ImportError as exc:
        raise RuntimeError(
            "pulling from a REDCap API needs PyCap: pip install PyCap "
            "(or export the records and data dictionary as CSV from REDCap)"
        ) from exc
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    project = Project(url, token)
    records = dest / "records.csv"
    dictionary = dest / "dictionary.csv"
    records.write_text(project.export_records(format_type="csv", raw_or_label="raw"), encoding="utf-8")
    dictionary.write_text(project.export_metadata(format_type="csv"), encoding="utf-8")
    return records, dictionary
