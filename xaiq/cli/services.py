"""What the long-running services check at start, and ``xaiq flower``.

``.env.example`` ships placeholder passwords (:data:`EXAMPLE_PASSWORDS`) so that a copy of it
is a complete ``.env``; docker compose's ``${VAR:?}`` refuses only empty values, so the
services refuse the placeholders themselves (:func:`refuse_example_passwords`): ``xaiq db
upgrade``, ``scheduler``, ``worker`` and ``flower`` exit 2 naming the variable. The compose
stack's every xaiq service waits for the migration, so none of them starts.
"""

from __future__ import annotations

import os
from urllib.parse import unquote

import typer

from xaiq.cli.app import app
from xaiq.cli.errors import CliError

# the placeholder passwords of .env.example (tests/test_compose.py keeps the two in step)
EXAMPLE_PASSWORDS = frozenset({"change-me"})
FLOWER_AUTH_ENV = "FLOWER_BASIC_AUTH"


def _example_in_url(url: str | None) -> bool:
    from xaiq.db.urls import secrets_of

    return bool(url) and any(unquote(s) in EXAMPLE_PASSWORDS for s in secrets_of(str(url)))


def _flower_passwords(auth: str) -> list[str]:
    """The passwords of ``user:password[,user:password...]``."""
    return [pair.partition(":")[2] for pair in auth.split(",") if pair]


def refuse_example_passwords(*, flower: bool = False) -> None:
    """Raise :class:`CliError` (exit 2) when the store, the broker (or, with ``flower``,
    Flower's login) uses a placeholder password of ``.env.example``."""
    from xaiq.broker.urls import BROKER_PASSWORD_ENV

    hint = "is the example password of .env.example; set your own (in .env for compose)"
    if _example_in_url(os.environ.get("XAIQ_DB_URL")):
        raise CliError(f"the password in XAIQ_DB_URL {hint}")
    if os.environ.get(BROKER_PASSWORD_ENV) in EXAMPLE_PASSWORDS:
        raise CliError(f"{BROKER_PASSWORD_ENV} {hint}")
    if _example_in_url(os.environ.get("XAIQ_BROKER_URL")):
        raise CliError(f"the password in XAIQ_BROKER_URL {hint}")
    auth = os.environ.get(FLOWER_AUTH_ENV) or ""
    if flower and any(p in EXAMPLE_PASSWORDS for p in _flower_passwords(auth)):
        raise CliError(f"the password in {FLOWER_AUTH_ENV} {hint}")


@app.command("flower")
def flower_cmd(
    address: str = typer.Option(
        "127.0.0.1", "--address", help="interface to listen on (0.0.0.0: every interface)"
    ),
    port: int = typer.Option(5555, "--port", help="port to listen on", min=1, max=65535),
) -> None:
    """Run Flower, the Celery dashboard, on xaiq's broker (needs `pip install 'xaiq[flower]'`).

    The login comes from FLOWER_BASIC_AUTH (user:password, several comma-separated): Flower
    shows every task's arguments and can shut workers down, so it does not start without one,
    nor with the example password of .env.example."""
    import importlib.util

    from xaiq.scheduler.submit import broker_url

    refuse_example_passwords(flower=True)
    auth = os.environ.get(FLOWER_AUTH_ENV) or ""
    if not all(
        user and password for user, _, password in (p.partition(":") for p in auth.split(","))
    ):
        raise CliError(f"{FLOWER_AUTH_ENV} must be user:password (several: comma-separated)")
    url = broker_url()
    if url is None:
        raise CliError("XAIQ_BROKER_URL is not set; Flower watches the broker")
    if importlib.util.find_spec("flower") is None:
        raise CliError("Flower is not installed here: pip install 'xaiq[flower]'")
    from xaiq.broker.app import make_app

    # Flower reads FLOWER_BASIC_AUTH itself (its FLOWER_* environment options)
    make_app(url).start(argv=["flower", f"--address={address}", f"--port={port}"])
