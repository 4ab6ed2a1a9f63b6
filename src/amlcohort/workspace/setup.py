"""First start: the database, the demo study and one demo user per role."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from amlcohort.workspace import auth, db, migrate, store

DEMO_STUDY = "demo"
DEMO_CENTRES = (("site-1", "Centre 1"), ("site-2", "Centre 2"))
DEMO_USERS = (
    ("investigator", "investigator", "site-1"),
    ("data_manager", "data_manager", None),
    ("monitor", "monitor", None),
    ("statistician", "statistician", None),
    ("investigator2", "investigator", "site-2"),
)


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    centre: str | None
    password: str


def default_db_url(folder: str = ".") -> str:
    """SQLite in a file under the working folder."""
    from pathlib import Path

    return f"sqlite:///{(Path(folder) / 'amlcohort_workspace.db').resolve()}"


def prepare(engine: Engine, *, demo: bool = True) -> list[DemoAccount]:
    """Migrate; on a database without users, load the embedded study as the demo study (all its
    patients at site-1) and create one demo user per role (plus an investigator at site-2).
    Returns the demo accounts with their random passwords -- shown once, stored only hashed."""
    migrate.upgrade(engine)
    with engine.begin() as con:
        if con.execute(sa.select(sa.func.count()).select_from(db.users)).scalar() or not demo:
            return []
        ids = {code: store.centre_id(con, code, name) for code, name in DEMO_CENTRES}
        accounts = []
        for username, role, centre in DEMO_USERS:
            pw = auth.new_password()
            store.create_user(con, username, auth.hash_password(pw), role, ids[centre] if centre else None)
            accounts.append(DemoAccount(username, role, centre, pw))
        store.import_bundle(con, _embedded(), DEMO_STUDY, "system", ids["site-1"])
    return accounts


def _embedded():
    from amlcohort.io.cohort import embedded_study_path

    return embedded_study_path()
