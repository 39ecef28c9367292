"""TorchScript is code: refused unless the user opts in (XAIQ_TRUST_TORCHSCRIPT=1); with the
opt-in, shapes it cannot serve are one line, as is fetching weights without a usable cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xaiq.scheduler.errors import SpecError
from xaiq.scheduler.spec import validate_spec
from xaiq.xai.errors import ModelLoadError
from xaiq.xai.models import load_model

from .faults import USAGE, one_line, sqlite_procs

MARK = "XAIQ-SCRIPT-RAN"
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:FutureWarning")


class Loud(torch.nn.Module):
    """A scripted model with a side effect (it prints) every time it runs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        print("XAIQ-SCRIPT-RAN")
        return x.mean(dim=(2, 3)).repeat(1, 4)[:, :10]


class OneD(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3))


class GreyOnly(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


def _script(module: torch.nn.Module, path: Path) -> Path:
    torch.jit.script(module).save(str(path))
    return path


def test_a_torchscript_model_is_refused_without_the_opt_in_and_never_runs(
    tmp_path: Path,
) -> None:
    path = _script(Loud(), tmp_path / "loud.pt")
    procs = sqlite_procs(tmp_path)
    args = ("explain", "digits:1", "--model", f"torchscript:{path}", "--out", str(tmp_path / "m"))
    refused = procs.run(*args, XAIQ_TRUST_TORCHSCRIPT="")
    one_line(refused, USAGE, "XAIQ_TRUST_TORCHSCRIPT", str(path))
    assert MARK not in refused.stdout + refused.stderr
    trusted = procs.run(*args, "--methods", "saliency", XAIQ_TRUST_TORCHSCRIPT="1")
    assert MARK in trusted.stdout + trusted.stderr, trusted.stderr  # the check is not vacuous


def test_a_job_with_a_torchscript_model_is_refused_at_submit_without_the_opt_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _script(Loud(), tmp_path / "loud.pt")
    monkeypatch.delenv("XAIQ_TRUST_TORCHSCRIPT", raising=False)
    spec = {
        "kind": "attribution", "dataset": "digits", "model": f"torchscript:{path}",
        "methods": ["saliency"], "limit": 2,
    }  # fmt: skip
    with pytest.raises(SpecError, match="XAIQ_TRUST_TORCHSCRIPT"):
        validate_spec(spec)
    with pytest.raises(ModelLoadError, match="XAIQ_TRUST_TORCHSCRIPT"):
        load_model(f"torchscript:{path}", device="cpu")  # a worker refuses it too


@pytest.mark.parametrize(
    ("module", "said"),
    [(OneD(), "must return [N, classes] logits"), (GreyOnly(), "must take [N, 3, 224, 224]")],
)
def test_a_trusted_torchscript_of_the_wrong_shape_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: torch.nn.Module, said: str
) -> None:
    monkeypatch.setenv("XAIQ_TRUST_TORCHSCRIPT", "1")
    path = _script(module, tmp_path / "odd.pt")
    with pytest.raises(ModelLoadError) as err:
        load_model(f"torchscript:{path}", device="cpu")
    assert said in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_models_fetch_without_a_usable_cache_is_one_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    procs = sqlite_procs(tmp_path)
    proc = procs.run("models", "fetch", "resnet18", TORCH_HOME=str(not_a_dir))
    one_line(proc, USAGE, "resnet18", "TORCH_HOME")
