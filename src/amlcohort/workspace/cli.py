"""``amlcohort serve``: start the study workspace."""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def serve(
    db: str = typer.Option(None, "--db", help="Database URL (default: SQLite file "
                           "amlcohort_workspace.db in the working folder), e.g. postgresql+psycopg://..."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="Port."),
) -> None:
    """Start the study workspace (web application). First start: demo study and demo users."""
    import uvicorn

    from amlcohort.workspace.app import create_app
    from amlcohort.workspace.db import make_engine
    from amlcohort.workspace.setup import default_db_url, prepare

    url = db or default_db_url(str(Path.cwd()))
    engine = make_engine(url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    accounts = prepare(engine)
    if accounts:
        typer.echo("First start: demo study 'demo' loaded. Demo users (passwords shown ONCE, stored hashed):")
        for a in accounts:
            typer.echo(f"  {a.username:<14} {a.role:<13} centre={a.centre or 'all'}  password: {a.password}")
    typer.echo(f"Workspace on http://{host}:{port}/  (research software, not a medical device)")
    uvicorn.run(create_app(engine), host=host, port=port, access_log=False, log_level="info")
