"""The study workspace: FastAPI, server-rendered Jinja2 pages with HTMX (vendored), no JS build.

Pages: login; studies (import a bundle); a study (patients of the user's centres, lock, export,
report, audit CSV); a patient (a form per table of the cohort model, repeating rows, the clinical
rules at entry, queries, the audit trail). ``/api/...`` is a read-only JSON API described by
``/api/openapi.json``. Logs name the route template and the status, never a patient or a value.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.engine import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.middleware.sessions import SessionMiddleware

from amlcohort.problems import Problem
from amlcohort.schema import TABLES, Table
from amlcohort.workspace import auth, checks, db, migrate, store
from amlcohort.workspace.clinical import patient_rules
from amlcohort.workspace.entry import check_row, field_choices, form_text
from amlcohort.workspace.timeline import patient_timeline

HERE = Path(__file__).parent
log = logging.getLogger("amlcohort.workspace")
PATIENT_TABLES = tuple(t for t in TABLES if t.name != "patients")


class Workspace:
    """What the routes share: the engine and the templates."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.globals.update(form_text=form_text, tables=TABLES, patient_tables=PATIENT_TABLES,
                                          where=checks.where)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as con:
            yield con

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self.engine.begin() as con:
            yield con


def create_app(engine: Engine) -> FastAPI:
    """The workspace app on ``engine`` (migrated to the newest revision first)."""
    migrate.upgrade(engine)
    ws = Workspace(engine)
    app = FastAPI(title="amlcohort workspace API", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", dependencies=[Depends(auth.csrf_guard)])
    app.state.ws = ws
    app.add_middleware(SessionMiddleware, secret_key=store.session_secret(engine),
                       session_cookie="amlcohort_session", same_site="strict", https_only=False,
                       max_age=8 * 3600)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def _log(request: Request, call_next):  # no patient data: route template and status only
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        log.info("%s %s %s %.0fms", request.method, getattr(route, "path", "?"), response.status_code,
                 (time.perf_counter() - t0) * 1000)
        return response

    @app.exception_handler(store.NotFound)
    async def _nf(request: Request, exc: store.NotFound) -> Response:
        return _error(ws, request, 404, str(exc))

    @app.exception_handler(store.Forbidden)
    async def _fb(request: Request, exc: store.Forbidden) -> Response:
        return _error(ws, request, 403, str(exc))

    @app.exception_handler(store.Locked)
    async def _lk(request: Request, exc: store.Locked) -> Response:
        return _error(ws, request, 423, str(exc))

    from fastapi.exception_handlers import http_exception_handler
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and not request.url.path.startswith("/api"):
            return RedirectResponse("/login", status_code=303)
        return await http_exception_handler(request, exc)

    app.include_router(_pages(ws))
    app.include_router(_api(ws), prefix="/api")
    return app


def _error(ws: Workspace, request: Request, status: int, message: str) -> Response:
    return ws.templates.TemplateResponse(request, "error.html", {"status": status, "message": message,
                                         "csrf": auth.csrf_token(request), "user": None},
                                         status_code=status)


# ---- request helpers ------------------------------------------------------------------------------

def current_user(request: Request) -> store.User:
    uid = request.session.get("uid")
    if uid is None:
        raise HTTPException(status_code=401, detail="log in first")
    with request.app.state.ws.read() as con:
        user = store.get_user(con, int(uid))
    if user is None:
        request.session.clear()
        raise HTTPException(status_code=401, detail="log in first")
    return user


UserDep = Annotated[store.User, Depends(current_user)]


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise store.Forbidden(message)


def _ctx(request: Request, user: store.User | None, **kw: Any) -> dict:
    return {"user": user, "csrf": auth.csrf_token(request), **kw}


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _choices(con: Connection, st: dict) -> dict:
    """The arm and drug choices of the study's declared definition (see ``entry.field_choices``)."""
    return field_choices(checks.declared_study(con, st))


def _redirect(request: Request, url: str) -> Response:
    if request.headers.get("HX-Request"):
        # no fragment: a redirect differing only by its #fragment would not reload the page
        return Response(status_code=200, headers={"HX-Redirect": url.split("#")[0]})
    return RedirectResponse(url, status_code=303)


# ---- pages ----------------------------------------------------------------------------------------

def _pages(ws: Workspace) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    T = ws.templates

    @r.get("/", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return RedirectResponse("/studies" if request.session.get("uid") else "/login", status_code=303)

    @r.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        return T.TemplateResponse(request, "login.html", _ctx(request, None, error=None))

    @r.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        f = await _form(request)
        with ws.read() as con:
            u = con.execute(sa.select(db.users).where(db.users.c.username == f.get("username", ""),
                                                      db.users.c.active)).mappings().first()
        if u is None or not auth.verify_password(u["password_hash"], f.get("password", "")):
            return T.TemplateResponse(request, "login.html",
                                      _ctx(request, None, error="unknown user or wrong password"),
                                      status_code=401)
        csrf = request.session.get("csrf")
        request.session.clear()
        request.session.update(uid=u["id"], csrf=csrf or auth.csrf_token(request))
        auth.csrf_token(request)
        return RedirectResponse("/studies", status_code=303)

    @r.post("/logout")
    def logout(request: Request) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @r.get("/studies", response_class=HTMLResponse)
    def studies_page(request: Request, user: UserDep) -> Response:
        with ws.read() as con:
            return T.TemplateResponse(request, "studies.html", _ctx(
                request, user, studies=store.studies(con), centres=store.centres(con)))

    @r.post("/studies/import")
    async def import_study(request: Request, user: UserDep) -> Response:
        _require(user.role == "data_manager", "only a data manager imports a bundle")
        form = await request.form()
        code = str(form.get("code") or "").strip()
        if not code.isidentifier():
            raise HTTPException(400, "study code: letters, digits and underscores")
        with ws.read() as con:
            if any(s["code"] == code for s in store.studies(con)):
                raise HTTPException(400, f"a study {code!r} exists")
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
        with tempfile.TemporaryDirectory() as d:
            for f in files:
                (Path(d) / Path(f.filename or "x").name).write_bytes(await f.read())
            from amlcohort.problems import InputError

            try:
                with ws.write() as con:
                    centre = store.centre_id(con, str(form.get("centre") or "site-1"))
                    store.import_bundle(con, d, code, user.username, centre)
            except InputError as e:
                return _error(ws, request, 422, "the bundle does not validate:\n" + str(e))
        return _redirect(request, f"/s/{code}")

    # ---- administration: users and centres (data manager only) ----------------------------------

    def _admin_page(request: Request, user: store.User, *, status: int = 200, error: str | None = None,
                    created: tuple[str, str] | None = None) -> Response:
        with ws.read() as con:
            return T.TemplateResponse(request, "admin.html", _ctx(
                request, user, accounts=store.users(con), centres=store.centres(con), roles=db.ROLES,
                trail=store.admin_trail(con), error=error, created=created), status_code=status)

    def _admin(user: store.User) -> None:
        _require(user.role == "data_manager", "only a data manager administers users and centres")

    @r.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, user: UserDep) -> Response:
        _admin(user)
        return _admin_page(request, user)

    @r.post("/admin/users", response_class=HTMLResponse)
    async def admin_new_user(request: Request, user: UserDep) -> Response:
        _admin(user)
        f = await _form(request)
        password = f.get("password") or auth.new_password()
        username = f.get("username", "").strip()
        try:
            with ws.write() as con:
                store.admin_create_user(con, user, username, auth.hash_password(password), f.get("role", ""),
                                        f.get("centre") or None, f.get("reason", "").strip())
        except ValueError as e:
            return _admin_page(request, user, status=400, error=str(e))
        # the password is shown once, on this page only (stored hashed; never logged or audited)
        return _admin_page(request, user, created=(username, password) if not f.get("password") else None)

    @r.post("/admin/users/{uid}/{what}", response_class=HTMLResponse)
    async def admin_change_user(request: Request, uid: int, what: str, user: UserDep) -> Response:
        _admin(user)
        f = await _form(request)
        reason = f.get("reason", "")
        try:
            with ws.write() as con:
                if what == "centre":
                    store.admin_set_centre(con, user, uid, f.get("centre") or None, reason)
                elif what in ("deactivate", "activate"):
                    store.admin_set_active(con, user, uid, what == "activate", reason)
                else:
                    raise store.NotFound(f"no account action {what!r}")
        except ValueError as e:
            return _admin_page(request, user, status=400, error=str(e))
        return _redirect(request, "/admin")

    @r.post("/admin/centres", response_class=HTMLResponse)
    async def admin_new_centre(request: Request, user: UserDep) -> Response:
        _admin(user)
        f = await _form(request)
        try:
            with ws.write() as con:
                store.admin_create_centre(con, user, f.get("code", "").strip(), f.get("name", ""),
                                          f.get("reason", "").strip())
        except ValueError as e:
            return _admin_page(request, user, status=400, error=str(e))
        return _redirect(request, "/admin")

    @r.get("/s/{code}", response_class=HTMLResponse)
    def study_page(request: Request, code: str, user: UserDep) -> Response:
        with ws.read() as con:
            st = store.study(con, code)
            locks = con.execute(sa.select(db.locks).where(db.locks.c.study_id == st["id"])
                                .order_by(db.locks.c.id)).mappings().all()
            return T.TemplateResponse(request, "study.html", _ctx(
                request, user, st=st, patients=store.patients(con, st["id"], user), locks=locks,
                centres=store.centres(con), model=store.model("patients"), values={}, problems={},
                choices=_choices(con, st),
                queries=[q for q in store.query_rows(con, st["id"]) if q["status"] != "closed"]))

    @r.post("/s/{code}/lock")
    async def lock(request: Request, code: str, user: UserDep) -> Response:
        f = await _form(request)
        want = f.get("action") == "lock"
        try:
            with ws.write() as con:
                store.lock_study(con, store.study(con, code), user, want, f.get("reason", ""))
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        return _redirect(request, f"/s/{code}")

    def _save(con: Connection, st: dict, model: Table, f: dict[str, str], row_id: int | None,
              user: store.User, patient_id: str | None) -> tuple[dict, dict, list[Problem]]:
        """Check and write one row; returns (values shown, problems by column, the checks across
        tables on the patient) -- empty problems means saved. Problems of the row go beside its
        fields; errors the row would cause on the patient's other rows under the key ``""``."""
        raw = {c.name: f.get(c.name) for c in model.columns}
        if patient_id is not None:
            raw["patient_id"] = patient_id
        checked = check_row(model, raw, store.study_metadata(con, st["id"]))
        problems = checked.by_column()
        if checked.ok and store.key_taken(con, st["id"], model, checked.values, row_id):
            problems.setdefault(model.key[-1], []).append(
                f"duplicate key ({', '.join(model.key)}): another row already has it")
        reason = f.get("reason", "").strip()
        if row_id is not None and not reason:
            problems.setdefault("reason", []).append(
                "a reason is required to change data after its first entry")
        if any(getattr(p, "severity", "error") == "error" for ps in problems.values() for p in ps):
            return raw, problems, []
        pid = str(checked.values["patient_id"])
        added, after = checks.check_change(con, st, pid, checks.Change(model.name, row_id, checked.values))
        if added:
            for p in added:
                here = p in checks.on_row(added, model.name, row_id) and p.column in model.column_names
                problems.setdefault(p.column if here else "", []).append(p)
            return raw, problems, after
        if row_id is None:
            values = dict(checked.values)
            if model.name == "patients":
                values["centre_id"] = user.centre_id if not user.all_centres or not f.get("centre") else \
                    store.centre_id(con, f["centre"])
            store.insert_row(con, st["id"], model, values, user.username, reason or None)
        else:
            store.update_row(con, st["id"], model, row_id, checked.values, user.username, reason)
        return raw, {}, after

    @r.post("/s/{code}/patients", response_class=HTMLResponse)
    async def create_patient(request: Request, code: str, user: UserDep) -> Response:
        _require(user.can_edit, f"a {user.role} does not enter data")
        f = await _form(request)
        return await run_in_threadpool(_create_patient, request, code, user, f)

    def _create_patient(request: Request, code: str, user: store.User, f: dict[str, str]) -> Response:
        model = store.model("patients")
        with ws.write() as con:
            st = store.study(con, code)
            store._check_writable(con, st["id"])
            if store.patient(con, st["id"], (f.get("patient_id") or "").strip()) is not None:
                values, problems, found = f, {"patient_id": ["a patient with this identifier exists"]}, []
            else:
                values, problems, found = _save(con, st, model, f, None, user, None)
            if not problems:
                return _redirect(request, f"/s/{code}/p/{values['patient_id'].strip()}")
            return T.TemplateResponse(request, "_form.html", _ctx(
                request, user, st=st, model=model, values=values, problems=problems, row_id=None,
                action=f"/s/{code}/patients", centres=store.centres(con), choices=_choices(con, st),
                found=found), status_code=422)

    @r.get("/s/{code}/p/{pid}", response_class=HTMLResponse)
    def patient_page(request: Request, code: str, pid: str, user: UserDep) -> Response:
        with ws.read() as con:
            st = store.study(con, code)
            p = store.visible_patient(con, st["id"], pid, user)
            data = {m.name: store.rows(con, st["id"], m, pid) for m in PATIENT_TABLES}
            timeline = patient_timeline(p, data, checks.declared_study(con, st))
            return T.TemplateResponse(request, "patient.html", _ctx(
                request, user, st=st, p=p, data=data, pmodel=store.model("patients"),
                queries=store.query_rows(con, st["id"], pid), timeline=timeline))

    @r.get("/s/{code}/p/{pid}/checks", response_class=HTMLResponse)
    def patient_checks_panel(request: Request, code: str, pid: str, user: UserDep) -> Response:
        """The validator's checks across tables on the patient's rows as they are now."""
        with ws.read() as con:
            st = store.study(con, code)
            store.visible_patient(con, st["id"], pid, user)
            found = checks.patient_problems(con, st, pid)
        by_table: dict[str, list[Problem]] = {}
        for p in found:
            by_table.setdefault(p.table, []).append(p)
        return T.TemplateResponse(request, "_checks.html", _ctx(
            request, user, st=st, pid=pid, found=found, by_table=by_table))

    @r.get("/s/{code}/p/{pid}/rules", response_class=HTMLResponse)
    def patient_rules_panel(request: Request, code: str, pid: str,
                            user: UserDep) -> Response:
        with ws.read() as con:
            st = store.study(con, code)
            store.visible_patient(con, st["id"], pid, user)
            cohort = store.cohort_from_db(con, st, [pid])
            cutoff = cohort.metadata.cutoff_date
        rules = patient_rules(cohort, pid, on=cutoff)
        return T.TemplateResponse(request, "_rules.html", _ctx(request, user, rules=rules, st=st, pid=pid))

    @r.get("/s/{code}/p/{pid}/t/{table}/form", response_class=HTMLResponse)
    def row_form(request: Request, code: str, pid: str, table: str, user: UserDep,
                 row_id: int | None = None) -> Response:
        model = store.model(table)
        with ws.read() as con:
            st = store.study(con, code)
            store.visible_patient(con, st["id"], pid, user)
            values = store.row(con, st["id"], model, row_id) if row_id is not None else {"patient_id": pid}
            if values.get("patient_id") != pid:
                raise store.NotFound("no such row for this patient")
            values = {k: form_text(v) for k, v in values.items()}
            choices = _choices(con, st)
        action = f"/s/{code}/p/{pid}/t/{table}" + (f"/{row_id}" if row_id is not None else "")
        return T.TemplateResponse(request, "_form.html", _ctx(
            request, user, st=st, model=model, values=values, problems={}, row_id=row_id, action=action,
            centres=[], choices=choices))

    async def _write_row(request: Request, code: str, pid: str, table: str, row_id: int | None,
                         user: store.User) -> Response:
        _require(user.can_edit, f"a {user.role} does not enter data")
        model = store.model(table)
        f = await _form(request)
        return await run_in_threadpool(_write_row_now, request, code, pid, model, row_id, user, f)

    def _write_row_now(request: Request, code: str, pid: str, model: Table, row_id: int | None,
                       user: store.User, f: dict[str, str]) -> Response:
        table = model.name
        with ws.write() as con:
            st = store.study(con, code)
            store._check_writable(con, st["id"])
            store.visible_patient(con, st["id"], pid, user)
            if row_id is not None and store.row(con, st["id"], model, row_id)["patient_id"] != pid:
                raise store.NotFound("no such row for this patient")
            values, problems, found = _save(con, st, model, f, row_id, user, pid)
            if not problems:
                return _redirect(request, f"/s/{code}/p/{pid}#{table}")
            action = f"/s/{code}/p/{pid}/t/{table}" + (f"/{row_id}" if row_id is not None else "")
            return T.TemplateResponse(request, "_form.html", _ctx(
                request, user, st=st, model=model, values={**values, "reason": f.get("reason", "")},
                problems=problems, row_id=row_id, action=action, centres=[], choices=_choices(con, st),
                found=found), status_code=422)

    @r.post("/s/{code}/p/{pid}/t/{table}", response_class=HTMLResponse)
    async def create_row(request: Request, code: str, pid: str, table: str,
                         user: UserDep) -> Response:
        return await _write_row(request, code, pid, table, None, user)

    @r.post("/s/{code}/p/{pid}/t/{table}/{row_id}", response_class=HTMLResponse)
    async def update_row(request: Request, code: str, pid: str, table: str, row_id: int,
                         user: UserDep) -> Response:
        return await _write_row(request, code, pid, table, row_id, user)

    @r.post("/s/{code}/p/{pid}/t/{table}/{row_id}/delete")
    async def delete_row(request: Request, code: str, pid: str, table: str, row_id: int,
                         user: UserDep) -> Response:
        _require(user.can_edit, f"a {user.role} does not enter data")
        model = store.model(table)
        f = await _form(request)
        if not f.get("reason", "").strip():
            raise HTTPException(400, "a reason is required to delete data")
        return await run_in_threadpool(_delete_now, request, code, pid, model, row_id, user, f["reason"])

    def _delete_now(request: Request, code: str, pid: str, model: Table, row_id: int, user: store.User,
                    reason: str) -> Response:
        with ws.write() as con:
            st = store.study(con, code)
            store._check_writable(con, st["id"])
            store.visible_patient(con, st["id"], pid, user)
            if store.row(con, st["id"], model, row_id)["patient_id"] != pid:
                raise store.NotFound("no such row for this patient")
            if model.name == "patients":
                raise HTTPException(400, "a patient is not deleted; delete their rows instead")
            added, _ = checks.check_change(con, st, pid, checks.Change(model.name, row_id, None))
            if added:
                return _error(ws, request, 409, "not deleted: the checks of `amlcohort validate` would "
                              "then find\n" + "\n".join(f"{checks.where(p)}: {p.reason}" for p in added))
            store.delete_row(con, st["id"], model, row_id, user.username, reason)
        return _redirect(request, f"/s/{code}/p/{pid}#{model.name}")

    @r.get("/s/{code}/p/{pid}/audit", response_class=HTMLResponse)
    def patient_audit(request: Request, code: str, pid: str, user: UserDep) -> Response:
        with ws.read() as con:
            st = store.study(con, code)
            store.visible_patient(con, st["id"], pid, user)
            return T.TemplateResponse(request, "audit.html", _ctx(
                request, user, st=st, pid=pid, trail=store.audit_trail(con, st["id"], pid)))

    @r.get("/s/{code}/audit.csv")
    def audit_csv(request: Request, code: str, user: UserDep, patient: str | None = None) -> Response:
        import csv

        with ws.read() as con:
            st = store.study(con, code)
            if patient is not None:
                store.visible_patient(con, st["id"], patient, user)
            else:
                _require(user.all_centres, "the study-wide audit trail spans every centre")
            trail = store.audit_trail(con, st["id"], patient)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(store.AUDIT_COLUMNS)
        for a in trail:
            w.writerow([store.as_text(a[c]) if c != "at" else str(a[c]) for c in store.AUDIT_COLUMNS])
        name = f"audit_{code}" + (f"_{patient}" if patient else "") + ".csv"
        return Response(buf.getvalue(), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @r.post("/s/{code}/queries")
    async def new_query(request: Request, code: str, user: UserDep) -> Response:
        f = await _form(request)
        pid = f.get("patient_id", "")
        with ws.write() as con:
            st = store.study(con, code)
            store.visible_patient(con, st["id"], pid, user)
            try:
                store.raise_query(con, st["id"], user, pid, f.get("table", "patients"),
                                  int(f["row_id"]) if f.get("row_id") else None, f.get("field") or None,
                                  f.get("text", ""))
            except ValueError as e:
                raise HTTPException(400, str(e)) from None
        return _redirect(request, f"/s/{code}/p/{pid}#queries")

    @r.post("/s/{code}/queries/{qid}/{what}")
    async def query_action(request: Request, code: str, qid: int, what: str,
                           user: UserDep) -> Response:
        f = await _form(request)
        with ws.write() as con:
            st = store.study(con, code)
            q = store._query(con, st["id"], qid)
            store.visible_patient(con, st["id"], q["patient_id"], user)
            try:
                if what == "answer":
                    store.answer_query(con, st["id"], user, qid, f.get("answer", ""))
                elif what == "close":
                    store.close_query(con, st["id"], user, qid)
                else:
                    raise store.NotFound(f"no query action {what!r}")
            except ValueError as e:
                raise HTTPException(400, str(e)) from None
        return _redirect(request, f"/s/{code}/p/{q['patient_id']}#queries")

    @r.get("/s/{code}/export.zip")
    def export_zip(request: Request, code: str, user: UserDep) -> Response:
        _require(user.can_export, f"a {user.role} does not export the study")
        from amlcohort.io.cohort import validate_bundle

        with ws.read() as con, tempfile.TemporaryDirectory() as d:
            st = store.study(con, code)
            folder = store.write_bundle_files(con, st, Path(d) / code)
            report, _ = validate_bundle(folder)
            if not report.ok:
                return _error(ws, request, 409, "the study does not validate yet:\n" +
                              "\n".join(str(p) for p in report.errors[:50]))
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for p in sorted(folder.rglob("*")):
                    if p.is_file():
                        z.write(p, p.relative_to(folder).as_posix())
        with ws.write() as con:
            store.audit(con, st["id"], user.username, "export", reason="bundle exported")
        return Response(buf.getvalue(), media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{code}.zip"'})

    @r.get("/s/{code}/report", response_class=HTMLResponse)
    def report_page(request: Request, code: str, user: UserDep) -> Response:
        _require(user.can_export, f"a {user.role} does not run the report")
        out = _report_dir(ws, code)
        return FileResponse(out / "report.html", media_type="text/html")

    @r.get("/s/{code}/report/{name}")
    def report_file(request: Request, code: str, name: str, user: UserDep) -> Response:
        _require(user.can_export, f"a {user.role} does not run the report")
        if name not in ("tables.xlsx", "report.pdf", "results.json"):
            raise store.NotFound(f"no report file {name!r}")
        out = _report_dir(ws, code, pdf=name == "report.pdf")
        return FileResponse(out / name, filename=f"{code}_{name}")

    return r


_REPORTS: dict[str, tuple[str, Path]] = {}


def _report_dir(ws: Workspace, code: str, *, pdf: bool = False) -> Path:
    """Export the study as a bundle, load it as ``amlcohort report`` would, and build the report
    (cached until the study changes: keyed by the newest audit record)."""
    from amlcohort.io.cohort import load_cohort
    from amlcohort.report.build import build_report

    with ws.read() as con:
        st = store.study(con, code)
        last = con.execute(sa.select(sa.func.max(db.audit_log.c.id))
                           .where(db.audit_log.c.study_id == st["id"],
                                  db.audit_log.c.action.in_(("create", "update", "delete")))).scalar()
        stamp = f"{last}:{pdf}"
        cached = _REPORTS.get(code)
        if cached and cached[0] == stamp and (cached[1] / "report.html").exists():
            return cached[1]
        root = Path(tempfile.mkdtemp(prefix="amlcohort-report-"))
        bundle = store.write_bundle_files(con, st, root / "bundle")
    try:
        cohort = load_cohort(bundle)
    except Exception as e:
        shutil.rmtree(root, ignore_errors=True)
        raise HTTPException(409, f"the study does not validate yet: {str(e)[:2000]}") from None
    claims = bundle / "claims.yaml"
    build_report(cohort, root / "report", claims_path=claims if claims.exists() else None, pdf=pdf)
    if cached:
        shutil.rmtree(cached[1].parent, ignore_errors=True)
    _REPORTS[code] = (stamp, root / "report")
    return root / "report"


# ---- read-only JSON API -----------------------------------------------------------------------------

def _api(ws: Workspace) -> APIRouter:
    r = APIRouter(tags=["read-only API"])

    def clean(row: dict) -> dict:
        return {k: v for k, v in row.items() if k not in ("study_id",)}

    @r.get("/studies", summary="Studies")
    def api_studies(user: UserDep) -> list[dict]:
        with ws.read() as con:
            return [{"code": s["code"], "name": s["name"], "locked": s["locked"]} for s in store.studies(con)]

    @r.get("/studies/{code}/patients", summary="Patients the user may see")
    def api_patients(code: str, user: UserDep) -> list[dict]:
        with ws.read() as con:
            st = store.study(con, code)
            return [clean(p) for p in store.patients(con, st["id"], user)]

    @r.get("/studies/{code}/patients/{pid}", summary="One patient: a list of rows per cohort table")
    def api_patient(code: str, pid: str, user: UserDep) -> dict:
        with ws.read() as con:
            st = store.study(con, code)
            p = store.visible_patient(con, st["id"], pid, user)
            return {"patient": clean(p),
                    **{m.name: [clean(x) for x in store.rows(con, st["id"], m, pid)] for m in PATIENT_TABLES}}

    @r.get("/studies/{code}/patients/{pid}/audit", summary="The patient's audit trail")
    def api_audit(code: str, pid: str, user: UserDep) -> list[dict]:
        with ws.read() as con:
            st = store.study(con, code)
            store.visible_patient(con, st["id"], pid, user)
            return store.audit_trail(con, st["id"], pid)

    @r.get("/studies/{code}/queries", summary="Queries on the patients the user may see")
    def api_queries(code: str, user: UserDep) -> list[dict]:
        with ws.read() as con:
            st = store.study(con, code)
            seen = {p["patient_id"] for p in store.patients(con, st["id"], user)}
            return [q for q in store.query_rows(con, st["id"]) if q["patient_id"] in seen]

    return r


def _json_error(status: int, message: str) -> JSONResponse:  # pragma: no cover - kept for API clients
    return JSONResponse({"detail": message}, status_code=status)
