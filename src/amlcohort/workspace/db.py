"""The workspace database: cohort tables generated from the cohort model, plus workspace tables.

The cohort tables (``cohort_<table>``) are generated from :mod:`amlcohort.schema.model`: one
column per model column, with the model's type, in the model's canonical unit. Nothing here
declares a cohort column; ``tests/workspace/test_db.py`` checks the generated tables against the
model and the migrations against the generated tables. Each cohort row also carries ``id`` (a
surrogate key the forms and the audit trail refer to) and ``study_id``; patients carry
``centre_id``.

Workspace tables: ``centres``, ``users``, ``studies``, ``study_files`` (the bundle's metadata,
study definition, claims and protocol, as text), ``audit_log`` (append-only: a trigger refuses
UPDATE and DELETE), ``queries`` and ``locks`` (the lock/unlock history), ``settings``.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from amlcohort.schema import TABLES, Column, Table

COHORT_PREFIX = "cohort_"
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ROLES = ("investigator", "data_manager", "monitor", "statistician")


def _now() -> sa.sql.functions.Function:
    return sa.func.current_timestamp()


centres = sa.Table(
    "centres",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("centre_id", sa.Integer, sa.ForeignKey("centres.id"), nullable=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
)

studies = sa.Table(
    "studies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("locked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("supplied_tables", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
)

study_files = sa.Table(
    "study_files",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.UniqueConstraint("study_id", "name", name="uq_study_files_study_name"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # empty for the records of administration (users, centres), which belong to no study
    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=True, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("table_name", sa.String(64), nullable=True),
    sa.Column("row_id", sa.Integer, nullable=True),
    sa.Column("patient_id", sa.String(255), nullable=True, index=True),
    sa.Column("field", sa.String(64), nullable=True),
    sa.Column("old_value", sa.Text, nullable=True),
    sa.Column("new_value", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
)

queries = sa.Table(
    "queries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True),
    sa.Column("patient_id", sa.String(255), nullable=False),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("row_id", sa.Integer, nullable=True),
    sa.Column("field", sa.String(64), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("raised_by", sa.String(64), nullable=False),
    sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
    sa.Column("answer", sa.Text, nullable=True),
    sa.Column("answered_by", sa.String(64), nullable=True),
    sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("closed_by", sa.String(64), nullable=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
)

locks = sa.Table(
    "locks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=_now()),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


# ---- cohort tables, generated from the model ---------------------------------------------------

SQL_TYPES: dict[str, type[sa.types.TypeEngine]] = {
    "string": sa.Text,
    "int": sa.BigInteger,
    "float": sa.Double,
    "date": sa.Date,
    "bool": sa.Boolean,
}


def _sql_column(c: Column) -> sa.Column:
    # Only the patient reference is NOT NULL in the database; the model's `required` is enforced
    # by the same validation `amlcohort validate` runs, so the reason is shown beside the field.
    return sa.Column(c.name, SQL_TYPES[c.dtype](), nullable=c.name != "patient_id")


def _cohort_table(model: Table) -> sa.Table:
    items: list[sa.SchemaItem] = [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("study_id", sa.Integer, sa.ForeignKey("studies.id"), nullable=False, index=True),
    ]
    if model.name == "patients":
        items.append(sa.Column("centre_id", sa.Integer, sa.ForeignKey("centres.id"), nullable=True))
    items += [_sql_column(c) for c in model.columns]
    if model.name == "patients":
        items.append(sa.UniqueConstraint("study_id", "patient_id", name="uq_cohort_patients_study_patient"))
    else:
        items.append(sa.Index(f"ix_{COHORT_PREFIX}{model.name}_study_patient", "study_id", "patient_id"))
    return sa.Table(COHORT_PREFIX + model.name, metadata, *items)


COHORT: dict[str, sa.Table] = {m.name: _cohort_table(m) for m in TABLES}
SYSTEM_COLUMNS = ("id", "study_id", "centre_id")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys on and a generous busy timeout."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _fk(dbapi_con, _rec) -> None:  # pragma: no cover - driver hook
            cur = dbapi_con.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)
