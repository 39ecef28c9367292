"""Alembic migrations, configured programmatically (no alembic.ini needed).

``run_upgrade(engine)`` brings a database to the latest revision. To author a new revision
against a scratch database: ``python -m xaiq.db.migrations revision -m "what" URL``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if engine is not None:
        config.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def run_upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade ``engine``'s database to ``revision`` in one (immediate, on SQLite) transaction.
    An unknown ``revision`` is a :class:`~xaiq.db.errors.QueryError` naming the known ones."""
    from xaiq.db.errors import QueryError
    from xaiq.db.session import writer

    known = revisions()
    if revision not in ("head", "heads", *known):
        raise QueryError(f"unknown revision {revision!r}; known: head, {', '.join(known)}")
    config = alembic_config(engine)
    with writer(engine).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def main(argv: list[str]) -> None:  # pragma: no cover - authoring helper
    from xaiq.db.session import get_engine

    if len(argv) < 4 or argv[0] != "revision" or argv[1] != "-m":
        raise SystemExit("usage: python -m xaiq.db.migrations revision -m MESSAGE URL")
    engine = get_engine(argv[3], migrate=False)
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=argv[2], autogenerate=True)
