"""``xaiq serve``: the read-only web app (:mod:`xaiq.serve`), imported only when it runs."""

from __future__ import annotations

import ipaddress
import os
import secrets
import threading

import typer

from xaiq.cli.app import app
from xaiq.cli.errors import CliError
from xaiq.cli.output import info

TOKEN_ENV = "XAIQ_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` and ``localhost`` are loopback; anything else is not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", "--host", help="address to bind (loopback: no token)"),
    port: int = typer.Option(8050, "--port", help="TCP port", min=0, max=65535),
) -> None:
    """Browse jobs, samples and maps in a browser: a read-only web app over the configured
    store and artifacts. On a non-loopback --host every request needs a token (printed here,
    or taken from XAIQ_SERVE_TOKEN)."""
    token: str | None = None
    if not is_loopback(host):
        token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
        if len(token) < 16:
            raise CliError(f"{TOKEN_ENV} must be at least 16 characters, got {len(token)}")
    import uvicorn

    from xaiq.db.session import get_engine
    from xaiq.db.urls import redact_url
    from xaiq.serve.app import create_app

    engine = get_engine()
    web = create_app(engine, token=token)
    shown = "localhost" if is_loopback(host) else host
    where = redact_url(engine.url.render_as_string(hide_password=False))
    info(f"xaiq serve: store {where}")
    if token is None:
        info(f"open http://{shown}:{port}/ (loopback only; Ctrl-C stops)")
    else:
        how = "from " + TOKEN_ENV if os.environ.get(TOKEN_ENV) else "generated"
        info(f"open http://{shown}:{port}/?token={token}  (token {how}; Ctrl-C stops)")
    threading.Thread(target=_warm_up, name="xaiq-serve-warm-up", daemon=True).start()
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False)


def _warm_up() -> None:
    """Import the report's modules (Matplotlib) while the first page is being opened, so the
    first job page and the first figure do not pay for it."""
    import contextlib
    import importlib

    for name in ("xaiq.report.html", "xaiq.report.show", "xaiq.serve.pictures"):
        with contextlib.suppress(Exception):
            importlib.import_module(name)
