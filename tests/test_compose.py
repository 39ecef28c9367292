"""docker-compose.yml agrees with the code: commands and options exist, env names are read."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from xaiq.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
XAIQ_SERVICES = [n for n, s in SERVICES.items() if str(s.get("image", "")).startswith("xaiq:")]
LONG_RUNNING = [n for n in XAIQ_SERVICES if SERVICES[n].get("restart") == "unless-stopped"]
WORKERS = [n for n in XAIQ_SERVICES if n.startswith("worker")]
CODE = "\n".join(p.read_text() for p in (ROOT / "xaiq").rglob("*.py"))


def _resolve(argv: list[str]) -> tuple[Any, list[str]]:
    # typer may ship its own click: groups are recognised by their ``commands``
    command: Any = typer.main.get_command(app)
    rest = list(argv)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        assert name in command.commands, f"`xaiq {' '.join(argv)}`: no command {name!r}"
        command = command.commands[name]
    return command, rest


def test_the_stack_has_every_component() -> None:
    for name in ("redis", "postgres", "migrate", "scheduler", "worker-cpu", "flower"):
        assert name in SERVICES
    assert any(n.startswith("worker-gpu") for n in SERVICES)


@pytest.mark.parametrize("service", XAIQ_SERVICES)
def test_each_xaiq_service_runs_an_existing_command_with_existing_options(service: str) -> None:
    argv = [str(a) for a in SERVICES[service]["command"]]
    command, rest = _resolve(argv)
    assert not hasattr(command, "commands"), f"{service}: {argv} names a group"
    known = {opt for p in command.params for opt in p.opts + p.secondary_opts}
    for token in rest:
        if token.startswith("-"):
            assert token.split("=")[0] in known, f"{service}: unknown option {token}"


def test_every_xaiq_environment_name_is_read_by_the_code() -> None:
    env = COMPOSE["x-xaiq"]["environment"]
    for name in env:
        assert name.startswith("XAIQ_")
        assert f'"{name}"' in CODE, f"{name} is set in compose but never read"
    for needed in ("XAIQ_DB_URL", "XAIQ_BROKER_URL", "XAIQ_ARTIFACTS"):
        assert needed in env


def test_gpu_workers_reserve_one_nvidia_gpu_each_and_use_it() -> None:
    gpu = [n for n in SERVICES if n.startswith("worker-gpu")]
    seen = set()
    for name in gpu:
        svc = SERVICES[name]
        devices = svc["deploy"]["resources"]["reservations"]["devices"]
        assert len(devices) == 1 and devices[0]["driver"] == "nvidia"
        assert len(devices[0]["device_ids"]) == 1
        seen.add(devices[0]["device_ids"][0])
        argv = svc["command"]
        assert argv[argv.index("--queues") + 1] == "gpu"
        assert re.fullmatch(r"cuda(:\d+)?", argv[argv.index("--device") + 1])
    assert len(seen) == len(gpu), "two GPU services share a device"


def test_flower_watches_the_broker_the_workers_use() -> None:
    broker = COMPOSE["x-xaiq"]["environment"]["XAIQ_BROKER_URL"]
    assert f"--broker={broker}" in SERVICES["flower"]["command"]


def test_services_start_after_the_migration() -> None:
    for name in ("scheduler", "worker-cpu"):
        deps = SERVICES[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"


def _seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smh])", text))


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_long_running_xaiq_service_has_a_healthcheck_that_exists(service: str) -> None:
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "xaiq"
    command, rest = _resolve(test[2:])
    assert not hasattr(command, "commands")
    assert rest and rest[0] in ("scheduler", "worker")


def test_workers_get_a_stop_grace_period_longer_than_a_batch_and_default() -> None:
    assert WORKERS
    for name in WORKERS:
        # SIGTERM stops the shard after its current batch; docker's default is 10 s
        assert _seconds(SERVICES[name]["stop_grace_period"]) >= 60, name


def test_gpu_workers_are_built_with_a_cuda_torch_and_the_cpu_image_without() -> None:
    gpu = [n for n in SERVICES if n.startswith("worker-gpu")]
    for name in gpu:
        build = SERVICES[name]["build"]
        variant = build["args"]["TORCH_VARIANT"]
        assert re.fullmatch(r"(\$\{TORCH_VARIANT_GPU:-)?cu\d+\}?", variant), variant
        assert SERVICES[name]["image"] != COMPOSE["x-xaiq"]["image"]
    assert COMPOSE["x-xaiq"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG TORCH_VARIANT" in dockerfile and "whl/${TORCH_VARIANT}" in dockerfile


def test_flower_requires_a_login_from_the_environment() -> None:
    auth = SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert auth.startswith("${FLOWER_BASIC_AUTH:?")  # refuses to start without one


def test_no_password_is_written_in_the_compose_file() -> None:
    env = COMPOSE["x-xaiq"]["environment"]
    assert "${POSTGRES_PASSWORD" in env["XAIQ_DB_URL"]
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    example = (ROOT / ".env.example").read_text()
    for name in ("POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH"):
        assert re.search(rf"^{name}=", example, re.M), name
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_docker_build_context_leaves_out_the_virtualenv_and_local_stores() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "*.sqlite", "demo-out", ".env"):
        assert entry in ignored, entry
