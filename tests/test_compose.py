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
    env = COMPOSE["x-xaiq"]["environment"]
    flower = SERVICES["flower"]
    assert flower["command"][0] == "flower"  # `xaiq flower`: the broker URL of xaiq's config
    for name in ("XAIQ_BROKER_URL", "XAIQ_BROKER_PASSWORD"):
        assert flower["environment"][name] == env[name], name


def test_flower_is_published_on_this_host_only_by_default() -> None:
    ports = SERVICES["flower"]["ports"]
    assert ports, "flower publishes its port"
    for entry in ports:
        assert str(entry).startswith(("127.0.0.1:", "${FLOWER_HOST:-127.0.0.1}:")), entry
    argv = [str(a) for a in SERVICES["flower"]["command"]]
    command, _ = _resolve(argv)
    address = next(p for p in command.params if p.name == "address")
    assert address.default == "127.0.0.1"  # outside compose too, `xaiq flower` is local


def test_the_flower_image_has_flower_from_the_projects_extra() -> None:
    import tomllib

    build = SERVICES["flower"]["build"]
    assert "flower" in build["args"]["XAIQ_EXTRAS"].split(",")
    assert SERVICES["flower"]["image"] != COMPOSE["x-xaiq"]["image"]  # not the plain image
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(r.startswith("flower") for r in extras["flower"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG XAIQ_EXTRAS" in dockerfile and "[$XAIQ_EXTRAS]" in dockerfile


def test_redis_requires_the_password_the_services_use() -> None:
    redis = SERVICES["redis"]
    script = " ".join(str(a) for a in redis["command"])
    assert '--requirepass "$$REDISCLI_AUTH"' in script
    password = redis["environment"]["REDISCLI_AUTH"]  # redis-cli (the healthcheck) reads it
    assert password.startswith("${REDIS_PASSWORD:?")
    assert COMPOSE["x-xaiq"]["environment"]["XAIQ_BROKER_PASSWORD"] == password
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])


def _example_values() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_example_passwords_are_the_ones_the_services_refuse() -> None:
    from xaiq.cli.services import EXAMPLE_PASSWORDS

    values = _example_values()
    passwords = [values["POSTGRES_PASSWORD"], values["REDIS_PASSWORD"]]
    passwords += [pair.partition(":")[2] for pair in values["FLOWER_BASIC_AUTH"].split(",")]
    assert set(passwords) <= EXAMPLE_PASSWORDS
    script = " ".join(str(a) for a in SERVICES["redis"]["command"])
    for password in EXAMPLE_PASSWORDS:  # redis-server itself would take it: the script refuses
        assert f'"$$REDISCLI_AUTH" = {password} ]' in script and "exit 2" in script


@pytest.mark.parametrize(
    ("argv", "variable"),
    [
        (["db", "upgrade"], "XAIQ_DB_URL"),
        (["scheduler"], "XAIQ_BROKER_PASSWORD"),
        (["worker", "--queues", "cpu"], "XAIQ_BROKER_PASSWORD"),
        (["flower"], "FLOWER_BASIC_AUTH"),
    ],
)
def test_the_services_refuse_to_start_with_the_example_passwords(
    argv: list[str], variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from xaiq.cli.main import main

    values = _example_values()
    good = "x9#Qv?/w@"
    env = {
        "XAIQ_DB_URL": f"postgresql://xaiq:{good}@127.0.0.1:1/xaiq",
        "XAIQ_BROKER_URL": "redis://127.0.0.1:1/0",
        "XAIQ_BROKER_PASSWORD": good,
        "FLOWER_BASIC_AUTH": f"admin:{good}",
    }
    if variable == "XAIQ_DB_URL":
        env[variable] = f"postgresql://xaiq:{values['POSTGRES_PASSWORD']}@postgres:5432/xaiq"
    elif variable == "XAIQ_BROKER_PASSWORD":
        env[variable] = values["REDIS_PASSWORD"]
    else:
        env[variable] = values["FLOWER_BASIC_AUTH"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and variable in err[0] and "example password" in err[0], err


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
    assert env["XAIQ_BROKER_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert "@" not in env["XAIQ_BROKER_URL"]  # the password is added (percent-encoded) by xaiq
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    example = (ROOT / ".env.example").read_text()
    for name in ("POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH"):
        assert re.search(rf"^{name}=", example, re.M), name
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_the_docker_build_context_leaves_out_the_virtualenv_and_local_stores() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", ".git", "*.sqlite", "demo-out", ".env"):
        assert entry in ignored, entry
