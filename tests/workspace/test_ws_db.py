"""The workspace database: generated from the cohort model, migrated by Alembic, audit append-only."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from amlcohort.schema import TABLES
from amlcohort.workspace import db, migrate

_TYPES = {"string": sa.Text, "int": sa.BigInteger, "float": sa.Double, "date": sa.Date, "bool": sa.Boolean}


def test_cohort_tables_have_exactly_the_model_columns_and_types():
    assert set(db.COHORT) == {t.name for t in TABLES}
    for model in TABLES:
        t = db.COHORT[model.name]
        data_cols = [c.name for c in t.columns if c.name not in db.SYSTEM_COLUMNS]
        assert data_cols == list(model.column_names), model.name
        for c in model.columns:
            assert isinstance(t.c[c.name].type, _TYPES[c.dtype]), (model.name, c.name)


def test_upgrade_from_an_empty_database_matches_the_generated_schema(empty_url):
    engine = db.make_engine(empty_url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as con:
        diff = compare_metadata(MigrationContext.configure(con), db.metadata)
    assert diff == [], f"the migrations lag the cohort model; add a revision: {diff}"
    migrate.upgrade(engine)  # idempotent
    engine.dispose()


def test_audit_log_is_append_only_in_the_database(site):
    with site.engine.begin() as con:
        rid = con.execute(sa.insert(db.audit_log).values(
            study_id=1, username="t", action="create")).inserted_primary_key[0]
    for stmt in (sa.update(db.audit_log).where(db.audit_log.c.id == rid).values(username="x"),
                 sa.delete(db.audit_log).where(db.audit_log.c.id == rid)):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), site.engine.begin() as con:
            con.execute(stmt)
