"""Reading and writing the workspace database: studies, cohort rows, the audit trail, queries, locks.

Every function that changes cohort data writes its audit records in the same transaction
(who, when, table, row, field, old value, new value, reason), so a change without its audit
record cannot be committed. Values are stored in the cohort model's canonical units.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Connection, Engine

from amlcohort.io.metadata import METADATA_FILE, BundleMetadata, read_metadata
from amlcohort.schema import TABLES, TABLES_BY_NAME, Table
from amlcohort.workspace import db

_ARROW = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "date": pa.date32(),
          "bool": pa.bool_()}


class Forbidden(Exception):
    """The user's role or centre does not allow this."""


class Locked(Exception):
    """The study is locked: no edits until a data manager unlocks it with a reason."""


class NotFound(Exception):
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_text(v: Any) -> str | None:
    """A value as the audit trail and the bundle CSV write it (None stays None)."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float):
        return repr(v) if v != int(v) or abs(v) >= 1e15 else str(int(v))
    return str(v)


# ---- users and centres -------------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    centre_id: int | None

    @property
    def all_centres(self) -> bool:
        """Data managers and statisticians see every centre; investigators and monitors with a
        centre see only theirs (a monitor without a centre monitors all)."""
        return self.role in ("data_manager", "statistician") or self.centre_id is None

    @property
    def can_edit(self) -> bool:
        return self.role in ("investigator", "data_manager")

    @property
    def can_lock(self) -> bool:
        return self.role == "data_manager"

    @property
    def can_raise_query(self) -> bool:
        return self.role in ("monitor", "data_manager")

    @property
    def can_answer_query(self) -> bool:
        return self.role in ("investigator", "data_manager")

    @property
    def can_export(self) -> bool:
        return self.role in ("statistician", "data_manager")


def get_user(con: Connection, user_id: int) -> User | None:
    r = con.execute(sa.select(db.users).where(db.users.c.id == user_id, db.users.c.active)).mappings().first()
    return None if r is None else User(r["id"], r["username"], r["role"], r["centre_id"])


def centre_id(con: Connection, code: str, name: str | None = None) -> int:
    """The id of centre ``code``, creating it when new."""
    cid = con.execute(sa.select(db.centres.c.id).where(db.centres.c.code == code)).scalar()
    if cid is None:
        cid = con.execute(sa.insert(db.centres).values(code=code, name=name or code)).inserted_primary_key[0]
    return int(cid)


def centres(con: Connection) -> list[dict]:
    return [dict(r) for r in con.execute(sa.select(db.centres).order_by(db.centres.c.code)).mappings()]


def create_user(con: Connection, username: str, password_hash: str, role: str,
                centre: int | None = None) -> int:
    if role not in db.ROLES:
        raise ValueError(f"role must be one of {db.ROLES}, not {role!r}")
    return int(con.execute(sa.insert(db.users).values(
        username=username, password_hash=password_hash, role=role, centre_id=centre)).inserted_primary_key[0])


# ---- administration (data manager): users and centres, each change audited ---------------------

USERNAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
CENTRE_CODE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def users(con: Connection) -> list[dict]:
    """Every account with its role, centre code and whether it is active (never the hash)."""
    u, c = db.users, db.centres
    q = (sa.select(u.c.id, u.c.username, u.c.role, u.c.active, u.c.centre_id, c.c.code.label("centre"))
         .select_from(u.outerjoin(c, u.c.centre_id == c.c.id)).order_by(u.c.username))
    return [dict(r) for r in con.execute(q).mappings()]


def _account(con: Connection, user_id: int) -> dict:
    r = con.execute(sa.select(db.users).where(db.users.c.id == user_id)).mappings().first()
    if r is None:
        raise NotFound(f"no user {user_id}")
    return dict(r)


def _existing_centre(con: Connection, code: str | None) -> int | None:
    if not code:
        return None
    cid = con.execute(sa.select(db.centres.c.id).where(db.centres.c.code == code)).scalar()
    if cid is None:
        raise ValueError(f"no centre {code!r}")
    return int(cid)


def _needs_centre(role: str, centre: int | None) -> None:
    # an investigator without a centre would see every centre's patients (User.all_centres)
    if role == "investigator" and centre is None:
        raise ValueError("an investigator works at a centre: choose one")


def admin_create_user(con: Connection, by: User, username: str, password_hash: str, role: str,
                      centre_code: str | None, reason: str | None = None) -> int:
    """Create an account (the data manager's page); one ``create`` audit record per field set."""
    if not USERNAME.match(username):
        raise ValueError("user name: 1-64 letters, digits, '.', '_' or '-'")
    if con.execute(sa.select(db.users.c.id).where(db.users.c.username == username)).first():
        raise ValueError(f"a user {username!r} exists")
    centre = _existing_centre(con, centre_code)
    _needs_centre(role, centre)
    uid = create_user(con, username, password_hash, role, centre)
    for field, value in (("username", username), ("role", role), ("centre", centre_code or None),
                         ("active", True)):
        if value is not None:
            audit(con, None, by.username, "create", table="users", row_id=uid, field=field, new=value,
                  reason=reason or None)
    return uid


def admin_set_centre(con: Connection, by: User, user_id: int, centre_code: str | None, reason: str) -> None:
    """Assign a user to a centre (or to none); a reason is required."""
    if not reason.strip():
        raise ValueError("a reason is required to change an account")
    old = _account(con, user_id)
    centre = _existing_centre(con, centre_code)
    _needs_centre(old["role"], centre)
    if centre == old["centre_id"]:
        return
    old_code = con.execute(sa.select(db.centres.c.code).where(db.centres.c.id == old["centre_id"])).scalar()
    con.execute(sa.update(db.users).where(db.users.c.id == user_id).values(centre_id=centre))
    audit(con, None, by.username, "update", table="users", row_id=user_id, field="centre",
          old=old_code, new=centre_code or None, reason=reason)


def admin_set_active(con: Connection, by: User, user_id: int, active: bool, reason: str) -> None:
    """Deactivate (no login, sessions end at their next request) or reactivate an account."""
    if not reason.strip():
        raise ValueError("a reason is required to change an account")
    old = _account(con, user_id)
    if user_id == by.id and not active:
        raise ValueError("you cannot deactivate your own account")
    if bool(old["active"]) == active:
        return
    con.execute(sa.update(db.users).where(db.users.c.id == user_id).values(active=active))
    audit(con, None, by.username, "update", table="users", row_id=user_id, field="active",
          old=bool(old["active"]), new=active, reason=reason)


def admin_create_centre(con: Connection, by: User, code: str, name: str, reason: str | None = None) -> int:
    if not CENTRE_CODE.match(code):
        raise ValueError("centre code: 1-64 letters, digits, '_' or '-'")
    if not name.strip():
        raise ValueError("a centre needs its name")
    if con.execute(sa.select(db.centres.c.id).where(db.centres.c.code == code)).first():
        raise ValueError(f"a centre {code!r} exists")
    cid = centre_id(con, code, name.strip())
    for field, value in (("code", code), ("name", name.strip())):
        audit(con, None, by.username, "create", table="centres", row_id=cid, field=field, new=value,
              reason=reason or None)
    return cid


def admin_trail(con: Connection, limit: int = 200) -> list[dict]:
    """The newest audit records of administration (they belong to no study)."""
    q = sa.select(db.audit_log).where(db.audit_log.c.study_id.is_(None)).order_by(db.audit_log.c.id.desc())
    return [dict(r) for r in con.execute(q.limit(limit)).mappings()]


def setting(con: Connection, key: str, default: str | None = None) -> str | None:
    v = con.execute(sa.select(db.settings.c.value).where(db.settings.c.key == key)).scalar()
    if v is None and default is not None:
        con.execute(sa.insert(db.settings).values(key=key, value=default))
        return default
    return v


def session_secret(engine: Engine) -> str:
    """The secret signing session cookies: generated on first start, stored in the database."""
    with engine.begin() as con:
        return str(setting(con, "session_secret", secrets.token_urlsafe(48)))


# ---- studies -------------------------------------------------------------------------------------

def studies(con: Connection) -> list[dict]:
    return [dict(r) for r in con.execute(sa.select(db.studies).order_by(db.studies.c.id)).mappings()]


def study(con: Connection, code: str) -> dict:
    r = con.execute(sa.select(db.studies).where(db.studies.c.code == code)).mappings().first()
    if r is None:
        raise NotFound(f"no study {code!r}")
    return dict(r)


def study_files(con: Connection, study_id: int) -> dict[str, str]:
    rows = con.execute(sa.select(db.study_files.c.name, db.study_files.c.content)
                       .where(db.study_files.c.study_id == study_id))
    return {name: content for name, content in rows}


_FOLDERS: dict[tuple[int, str], Path] = {}


def study_folder(con: Connection, study_id: int) -> Path:
    """The study's stored files (metadata, study definition, claims, protocol) as a folder, so the
    bundle readers read them as they read a bundle's; cached per content, kept for the process."""
    import hashlib

    files = study_files(con, study_id)
    digest = hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest()
    folder = _FOLDERS.get((study_id, digest))
    if folder is None or not folder.exists():
        folder = Path(tempfile.mkdtemp(prefix=f"amlcohort-study{study_id}-"))
        for name, text in files.items():
            p = (folder / name).resolve()
            if folder.resolve() not in p.parents:
                continue  # a stored name never writes outside the folder
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
        _FOLDERS[(study_id, digest)] = folder
    return folder


def study_metadata(con: Connection, study_id: int) -> BundleMetadata:
    """The study's bundle metadata (canonical units), parsed by the same reader as a bundle's."""
    meta, problems = read_metadata(study_folder(con, study_id) / METADATA_FILE)
    if meta is None:
        raise ValueError("the study's metadata.yaml does not read: " + "; ".join(map(str, problems)))
    return meta


def canonical_metadata(text: str) -> str:
    """``metadata.yaml`` rewritten to declare the canonical unit of every convertible column
    (the workspace stores canonical values, so its exports must say so)."""
    data = yaml.safe_load(text) or {}
    data["units"] = {c.name: c.unit for t in TABLES for c in t.columns if c.units}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def create_study(con: Connection, code: str, name: str, files: Mapping[str, str],
                 supplied: Iterable[str] = ()) -> int:
    sid = int(con.execute(sa.insert(db.studies).values(
        code=code, name=name, supplied_tables=";".join(sorted(supplied)))).inserted_primary_key[0])
    for fname, content in files.items():
        con.execute(sa.insert(db.study_files).values(study_id=sid, name=fname, content=content))
    return sid


def _bundle_files(folder: Path) -> dict[str, str]:
    """The bundle's text files other than the tables (metadata, study definition, claims, protocol)."""
    tables = {t.name for t in TABLES}
    out: dict[str, str] = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in (".yaml", ".yml", ".csv", ".md", ".txt"):
            continue
        rel = p.relative_to(folder).as_posix()
        if p.suffix.lower() == ".csv" and p.stem in tables and p.parent == folder:
            continue
        out[rel] = p.read_text(encoding="utf-8")
    out[METADATA_FILE] = canonical_metadata(out.get(METADATA_FILE, ""))
    return out


def import_bundle(con: Connection, path: str | Path, code: str, username: str, centre: int | None,
                  name: str | None = None) -> int:
    """Validate and load a bundle (CSV/XLSX/Parquet) into a new study; returns the study id.

    The bundle is loaded by :func:`amlcohort.load_cohort` (so an invalid bundle raises
    :class:`amlcohort.InputError` and nothing is written); every imported row gets a ``create``
    audit record.
    """
    from amlcohort.io.cohort import load_cohort

    folder = Path(path)
    cohort = load_cohort(folder)
    sid = create_study(con, code, name or cohort.metadata.study_name,
                       _bundle_files(folder if folder.is_dir() else folder.parent), cohort.supplied)
    reason = f"imported from bundle {folder.name}"
    for model in TABLES:
        rows = cohort.tables[model.name].select(*model.column_names).to_pyarrow().to_pylist()
        for r in rows:
            values = dict(r)
            if model.name == "patients":
                values["centre_id"] = centre
            insert_row(con, sid, model, values, username, reason, check_lock=False)
    return sid


def lock_study(con: Connection, st: dict, user: User, lock: bool, reason: str) -> None:
    if not user.can_lock:
        raise Forbidden("only a data manager locks or unlocks a study")
    if not reason.strip():
        raise ValueError("a reason is required to lock or unlock")
    action = "lock" if lock else "unlock"
    con.execute(sa.update(db.studies).where(db.studies.c.id == st["id"]).values(locked=lock))
    con.execute(sa.insert(db.locks).values(study_id=st["id"], action=action, reason=reason,
                                           username=user.username, at=utcnow()))
    audit(con, st["id"], user.username, action, reason=reason)


# ---- audit -----------------------------------------------------------------------------------------

def audit(con: Connection, study_id: int | None, username: str, action: str, *, table: str | None = None,
          row_id: int | None = None, patient_id: str | None = None, field: str | None = None,
          old: Any = None, new: Any = None, reason: str | None = None) -> None:
    con.execute(sa.insert(db.audit_log).values(
        study_id=study_id, at=utcnow(), username=username, action=action, table_name=table,
        row_id=row_id, patient_id=patient_id, field=field, old_value=as_text(old),
        new_value=as_text(new), reason=reason))


def audit_trail(con: Connection, study_id: int, patient_id: str | None = None) -> list[dict]:
    q = sa.select(db.audit_log).where(db.audit_log.c.study_id == study_id)
    if patient_id is not None:
        q = q.where(db.audit_log.c.patient_id == patient_id)
    return [dict(r) for r in con.execute(q.order_by(db.audit_log.c.id)).mappings()]


AUDIT_COLUMNS = ("id", "at", "username", "action", "table_name", "row_id", "patient_id", "field",
                 "old_value", "new_value", "reason")


# ---- cohort rows -----------------------------------------------------------------------------------

def _check_writable(con: Connection, study_id: int) -> None:
    locked = con.execute(sa.select(db.studies.c.locked).where(db.studies.c.id == study_id)).scalar()
    if locked:
        raise Locked("the study is locked; a data manager must unlock it (with a reason) before any edit")


def patient(con: Connection, study_id: int, patient_id: str) -> dict | None:
    t = db.COHORT["patients"]
    r = con.execute(sa.select(t).where(t.c.study_id == study_id, t.c.patient_id == patient_id)).mappings()
    row = r.first()
    return None if row is None else dict(row)


def visible_patient(con: Connection, study_id: int, patient_id: str, user: User) -> dict:
    """The patient, if ``user`` may see it (centre scoping); raises NotFound otherwise, so another
    centre's patient is indistinguishable from a patient that does not exist."""
    p = patient(con, study_id, patient_id)
    if p is None or not (user.all_centres or p["centre_id"] == user.centre_id):
        raise NotFound(f"no patient {patient_id!r} in this study")
    return p


def patients(con: Connection, study_id: int, user: User) -> list[dict]:
    t = db.COHORT["patients"]
    q = sa.select(t).where(t.c.study_id == study_id)
    if not user.all_centres:
        q = q.where(t.c.centre_id == user.centre_id)
    return [dict(r) for r in con.execute(q.order_by(t.c.patient_id)).mappings()]


def rows(con: Connection, study_id: int, model: Table, patient_id: str) -> list[dict]:
    t = db.COHORT[model.name]
    order = [t.c[k] for k in model.key if k != "patient_id"] + [t.c.id]
    q = sa.select(t).where(t.c.study_id == study_id, t.c.patient_id == patient_id).order_by(*order)
    return [dict(r) for r in con.execute(q).mappings()]


def row(con: Connection, study_id: int, model: Table, row_id: int) -> dict:
    t = db.COHORT[model.name]
    r = con.execute(sa.select(t).where(t.c.study_id == study_id, t.c.id == row_id)).mappings().first()
    if r is None:
        raise NotFound(f"no row {row_id} in {model.name}")
    return dict(r)


def insert_row(con: Connection, study_id: int, model: Table, values: Mapping[str, Any], username: str,
               reason: str | None = None, *, check_lock: bool = True) -> int:
    """Insert one row; one ``create`` audit record per non-empty field."""
    if check_lock:
        _check_writable(con, study_id)
    t = db.COHORT[model.name]
    data = {c: values.get(c) for c in model.column_names}
    if model.name == "patients":
        data["centre_id"] = values.get("centre_id")
    rid = int(con.execute(sa.insert(t).values(study_id=study_id, **data)).inserted_primary_key[0])
    for c in model.column_names:
        if data[c] is not None:
            audit(con, study_id, username, "create", table=model.name, row_id=rid,
                  patient_id=data["patient_id"], field=c, new=data[c], reason=reason)
    return rid


def update_row(con: Connection, study_id: int, model: Table, row_id: int, values: Mapping[str, Any],
               username: str, reason: str) -> list[str]:
    """Update one row; one ``update`` audit record per changed field, with the reason (required).
    Returns the changed fields."""
    _check_writable(con, study_id)
    if not reason or not reason.strip():
        raise ValueError("a reason is required to change data after its first entry")
    old = row(con, study_id, model, row_id)
    changed = [c for c in model.column_names if c != "patient_id" and c in values and values[c] != old[c]]
    if not changed:
        return []
    t = db.COHORT[model.name]
    con.execute(sa.update(t).where(t.c.id == row_id).values(**{c: values[c] for c in changed}))
    for c in changed:
        audit(con, study_id, username, "update", table=model.name, row_id=row_id,
              patient_id=old["patient_id"], field=c, old=old[c], new=values[c], reason=reason)
    return changed


def delete_row(con: Connection, study_id: int, model: Table, row_id: int, username: str, reason: str) -> None:
    _check_writable(con, study_id)
    if not reason or not reason.strip():
        raise ValueError("a reason is required to delete data")
    if model.name == "patients":
        raise ValueError("a patient is not deleted from the workspace; delete their rows instead")
    old = row(con, study_id, model, row_id)
    t = db.COHORT[model.name]
    con.execute(sa.delete(t).where(t.c.id == row_id))
    for c in model.column_names:
        if old[c] is not None:
            audit(con, study_id, username, "delete", table=model.name, row_id=row_id,
                  patient_id=old["patient_id"], field=c, old=old[c], reason=reason)


def key_taken(con: Connection, study_id: int, model: Table, values: Mapping[str, Any],
              row_id: int | None) -> bool:
    """Whether another row of the study already has this row's key (the bundle's key.duplicate)."""
    t = db.COHORT[model.name]
    q = sa.select(sa.func.count()).select_from(t).where(
        t.c.study_id == study_id, *[t.c[k] == values.get(k) for k in model.key])
    if row_id is not None:
        q = q.where(t.c.id != row_id)
    return bool(con.execute(q).scalar())


# ---- queries -----------------------------------------------------------------------------------------

def raise_query(con: Connection, study_id: int, user: User, patient_id: str, table: str,
                row_id: int | None, field: str | None, text: str) -> int:
    if not user.can_raise_query:
        raise Forbidden("only a monitor or a data manager raises a query")
    if not text.strip():
        raise ValueError("a query needs its text")
    qid = int(con.execute(sa.insert(db.queries).values(
        study_id=study_id, patient_id=patient_id, table_name=table, row_id=row_id, field=field,
        text=text, status="open", raised_by=user.username, raised_at=utcnow())).inserted_primary_key[0])
    audit(con, study_id, user.username, "query", table=table, row_id=row_id, patient_id=patient_id,
          field=field, new=f"query {qid} raised", reason=text)
    return qid


def query_rows(con: Connection, study_id: int, patient_id: str | None = None) -> list[dict]:
    q = sa.select(db.queries).where(db.queries.c.study_id == study_id)
    if patient_id is not None:
        q = q.where(db.queries.c.patient_id == patient_id)
    return [dict(r) for r in con.execute(q.order_by(db.queries.c.id)).mappings()]


def _query(con: Connection, study_id: int, qid: int) -> dict:
    r = con.execute(sa.select(db.queries).where(db.queries.c.id == qid, db.queries.c.study_id == study_id))
    q = r.mappings().first()
    if q is None:
        raise NotFound(f"no query {qid}")
    return dict(q)


def answer_query(con: Connection, study_id: int, user: User, qid: int, answer: str) -> None:
    if not user.can_answer_query:
        raise Forbidden("the site (investigator or data manager) answers a query")
    q = _query(con, study_id, qid)
    if q["status"] == "closed":
        raise ValueError("the query is closed")
    if not answer.strip():
        raise ValueError("an answer needs its text")
    con.execute(sa.update(db.queries).where(db.queries.c.id == qid).values(
        status="answered", answer=answer, answered_by=user.username, answered_at=utcnow()))
    audit(con, study_id, user.username, "query", table=q["table_name"], row_id=q["row_id"],
          patient_id=q["patient_id"], field=q["field"], old="open", new=f"query {qid} answered",
          reason=answer)


def close_query(con: Connection, study_id: int, user: User, qid: int) -> None:
    if not user.can_raise_query:
        raise Forbidden("the monitor closes a query")
    q = _query(con, study_id, qid)
    con.execute(sa.update(db.queries).where(db.queries.c.id == qid).values(
        status="closed", closed_by=user.username, closed_at=utcnow()))
    audit(con, study_id, user.username, "query", table=q["table_name"], row_id=q["row_id"],
          patient_id=q["patient_id"], field=q["field"], old=q["status"], new=f"query {qid} closed")


# ---- out: the stored rows as a cohort / a bundle -----------------------------------------------------

def arrow_table(con: Connection, study_id: int, model: Table,
                patient_ids: list[str] | None = None) -> pa.Table:
    """The study's rows of ``model`` as an Arrow table with the model's columns and types."""
    t = db.COHORT[model.name]
    q = sa.select(*[t.c[c] for c in model.column_names]).where(t.c.study_id == study_id)
    if patient_ids is not None:
        q = q.where(t.c.patient_id.in_(patient_ids))
    q = q.order_by(*[t.c[k] for k in model.key], t.c.id)
    data = [dict(r) for r in con.execute(q).mappings()]
    schema = pa.schema([(c.name, _ARROW[c.dtype]) for c in model.columns])
    return pa.Table.from_pylist(data, schema=schema)


def supplied_tables(st: dict) -> frozenset[str]:
    names = {n for n in (st.get("supplied_tables") or "").split(";") if n}
    return frozenset(names | {t.name for t in TABLES if t.required})


def cohort_from_db(con: Connection, st: dict, patient_ids: list[str] | None = None):
    """The study (or some of its patients) as an :class:`amlcohort.Cohort` on in-process DuckDB.

    The rows were checked cell by cell at entry; the whole-cohort checks run when the study is
    exported (:func:`export_bundle` validates the bundle it writes).
    """
    from amlcohort.io.cohort import Cohort, ValidationReport

    duck = ibis.duckdb.connect()
    tables = {m.name: duck.create_table(m.name, arrow_table(con, st["id"], m, patient_ids)) for m in TABLES}
    meta = study_metadata(con, st["id"])
    report = ValidationReport(f"workspace study {st['code']}", ())
    return Cohort(duck, meta, tables, report, study_definition(con, st), supplied_tables(st))


def study_definition(con: Connection, st: dict):
    """The study definition: its stored ``study.yaml`` completed from the data (arms, CTCAE
    version), or derived from the data when it has none -- as :func:`amlcohort.load_cohort` does."""
    from amlcohort.io.study import derive_study, read_study

    declared, _problems, _exists = read_study(study_folder(con, st["id"]))
    p, ae = db.COHORT["patients"], db.COHORT["adverse_events"]
    arms = con.execute(sa.select(p.c.study_arm).where(p.c.study_id == st["id"]).distinct()).scalars().all()
    versions = con.execute(sa.select(ae.c.ctcae_version).where(ae.c.study_id == st["id"])
                           .distinct()).scalars().all()
    return derive_study(study_metadata(con, st["id"]).study_name, arms, versions, declared)


def write_bundle_files(con: Connection, st: dict, dest: Path) -> Path:
    """Write the study as a CSV bundle to ``dest`` (tables in canonical units, plus the stored
    metadata, study definition, claims and protocol files)."""
    import pyarrow.csv as pacsv

    dest.mkdir(parents=True, exist_ok=True)
    for name, text in study_files(con, st["id"]).items():
        p = dest / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    supplied = supplied_tables(st)
    for m in TABLES:
        data = arrow_table(con, st["id"], m)
        if m.name not in supplied and data.num_rows == 0:
            continue  # an optional table never supplied stays absent (unknown, not empty)
        pacsv.write_csv(data, dest / f"{m.name}.csv")
    return dest


def model(name: str) -> Table:
    if name not in TABLES_BY_NAME:
        raise NotFound(f"no table {name!r}")
    return TABLES_BY_NAME[name]
