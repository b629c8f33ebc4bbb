"""Bring your own generator: a class outside the package, named by class_path in the config, with a
plain state_dict as its weights; through the command line, gymnasium and the quality tool; and each
kind of bad input named in one short message."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import gymnasium
import lightning as L
import pytest
import torch

from palm_lightning.checkpoints import CheckpointError, load_weights, save_network
from palm_lightning.cli import condense_union_report
from palm_lightning.envs import LATENT_MANIFOLD_ID, LatentManifold, to_uint8
from palm_lightning.generators import GeneratorConfigError, resolve_generator
from palm_lightning.nn.protocols import GeneratorProtocolError
from palm_lightning.nn.stylegan import StyleGANGenerator
from palm_lightning.tools import generator_quality
from tests.palm_fixtures import TINY_GENERATOR, tiny_generator
from tests.test_palm_cli import TINY

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "own_generator"
# the example's decoder at the size of TINY (1×16×16 images, 8-d latents), untrained
TINY_CVAE = {"latent_dim": 8, "num_classes": 10, "image_size": 16, "channels": 1, "width": 4}
TINY_CVAE_ARGS = [arg for k, v in TINY_CVAE.items() for arg in (f"--data.init_args.generator.init_args.{k}", str(v))]


@pytest.fixture
def cvae_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example's ``cvae`` module, imported from its folder as a user's own code would be."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module("cvae")


def tiny_cvae_weights(cvae: ModuleType, path: Path, seed: int = 0, **overrides: int) -> dict[str, torch.Tensor]:
    """A plain ``state_dict`` of an untrained tiny decoder, saved to ``path``."""
    torch.manual_seed(seed)
    state: dict[str, torch.Tensor] = cvae.CVAEDecoder(**{**TINY_CVAE, **overrides}).state_dict()
    torch.save(state, path)
    return state


def run_fit(
    *args: str, cwd: Path, pythonpath: list[Path], overlay: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m palm_lightning fit --config configs/palm.yaml [--config overlay] TINY... args...``"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [REPO, *pythonpath])
    env.pop("JSONARGPARSE_DEBUG", None)
    configs = ["--config", str(REPO / "configs/palm.yaml"), *(["--config", str(overlay)] if overlay else [])]
    command = [sys.executable, "-m", "palm_lightning", "fit", *configs, *TINY, *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def error_tail(result: subprocess.CompletedProcess[str], *phrases: str) -> str:
    """Non-zero exit, and the last five non-empty lines of stderr hold ``phrases`` and no dump."""
    assert result.returncode != 0, result.stderr[-3000:]
    tail = "\n".join([line for line in result.stderr.splitlines() if line.strip()][-5:])
    for phrase in phrases:
        assert phrase in tail, tail
    for noise in ("Union", "Traceback", "Subtypes", "Given value"):
        assert noise not in tail, tail
    return tail


class SaveGeneratorState(L.Callback):
    """Saves the data module's generator weights at the end of fit (``out``)."""

    def __init__(self, out: str) -> None:
        self.out = out

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        generator = trainer.datamodule.generator  # type: ignore[attr-defined]
        torch.save({"class": type(generator).__qualname__, "state_dict": generator.state_dict()}, self.out)


# --- the worked example's path, as CI runs it ------------------------------------------------------


def test_palm_fits_on_the_examples_generator_by_class_path(cvae_module: ModuleType, tmp_path: Path) -> None:
    weights = tmp_path / "decoder.pt"
    state = tiny_cvae_weights(cvae_module, weights)
    result = run_fit(
        *TINY_CVAE_ARGS,  # the example's overlay, sized down
        "--data.init_args.generator_weights",
        str(weights),
        "--trainer.max_steps",
        "3",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.callbacks+=tests.test_own_generator.SaveGeneratorState",
        f"--trainer.callbacks.out={tmp_path / 'generator.pt'}",
        cwd=tmp_path,
        pythonpath=[EXAMPLE],
        overlay=EXAMPLE / "palm_cvae.yaml",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    used = torch.load(tmp_path / "generator.pt", weights_only=True)
    assert used["class"] == "CVAEDecoder"
    assert all(torch.equal(used["state_dict"][k], v) for k, v in state.items())  # the file's weights, not an init
    run = tmp_path / "runs" / "palm_cvae" / "version_0"
    assert "class_path: cvae.CVAEDecoder" in (run / "config.yaml").read_text()  # the run says what it used
    # the checkpoint pickles no user class: it loads with weights_only=True, as the probes read it
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["global_step"] > 0


def test_gymnasium_takes_a_class_path_and_a_state_dict(cvae_module: ModuleType, tmp_path: Path) -> None:
    weights = tmp_path / "decoder.pt"
    tiny_cvae_weights(cvae_module, weights, seed=1)
    spec = {"class_path": "cvae.CVAEDecoder", "init_args": TINY_CVAE}
    env = gymnasium.make(LATENT_MANIFOLD_ID, generator=spec, generator_weights=str(weights), episode_length=3)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1, 16, 16) and env.action_space.shape == (8,)
    manifold = env.unwrapped.manifold  # type: ignore[attr-defined]
    assert type(manifold.generator).__name__ == "CVAEDecoder"
    with torch.no_grad():
        expected = to_uint8(manifold.generator(manifold.latent, manifold.labels))[0].numpy()
    assert (obs == expected).all()
    assert torch.equal(manifold.generator.project.weight, torch.load(weights)["project.weight"])


def test_generator_quality_reads_the_examples_overlay(
    cvae_module: ModuleType, fmnist_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "decoder.pt"
    tiny_cvae_weights(cvae_module, weights, image_size=32)  # the overlay's 32×32, 16-d decoder ...
    overlay = tmp_path / "overlay.yaml"  # ... named in a copy of the overlay, with the width and latent of the test
    text = (EXAMPLE / "palm_cvae.yaml").read_text().replace("latent_dim: 16", "latent_dim: 8")
    text = text.replace("width: 32", "width: 4").replace("examples/own_generator/cvae_decoder.pt", str(weights))
    overlay.write_text(text)
    code = generator_quality.main(
        ["--generator", str(overlay), "--data-dir", str(fmnist_root), "--num-samples", "20", "--threads", "1"]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"| {overlay} (ψ=1) | 20 |" in out.out
    tiny_cvae_weights(cvae_module, tmp_path / "wrong.pt", image_size=32, latent_dim=16)  # --generator-weights wins
    code = generator_quality.main(["--generator", str(overlay), "--generator-weights", str(tmp_path / "wrong.pt")])
    assert code == 2 and "wrong.pt: weights do not fit cvae.CVAEDecoder" in capsys.readouterr().err


def test_network_file_weights_load_into_an_instance(tmp_path: Path) -> None:
    path = save_network(tiny_generator(seed=0), tmp_path / "g.pt", kind="generator")
    torch.manual_seed(5)
    fresh = StyleGANGenerator(**TINY_GENERATOR)
    resolve_generator(fresh, weights=path)
    saved = tiny_generator(seed=0).state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in fresh.state_dict().items())


# --- bad input ----------------------------------------------------------------------------------

BROKEN = '''
import torch
from torch import nn


class NoImageShape(nn.Module):
    """Has latent_dim and num_classes, forgets image_shape."""

    latent_dim = 8
    num_classes = 10

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, z, c):
        return torch.tanh(self.scale * z.new_zeros(z.shape[0], 1, 16, 16))
'''


def test_cli_a_class_without_the_protocol_names_the_missing_member(tmp_path: Path) -> None:
    (tmp_path / "broken_generators.py").write_text(BROKEN)
    result = run_fit(
        "--data.init_args.generator.class_path",
        "broken_generators.NoImageShape",
        "--data.init_args.truncation_psi",
        "1.0",
        "--trainer.max_steps",
        "1",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
        pythonpath=[tmp_path],
    )
    tail = error_tail(result, "error: --data.init_args.generator: NoImageShape is not a conditional generator")
    assert "missing image_shape" in tail.splitlines()[-1]
    assert not (tmp_path / "runs").exists()  # refused before the run's folder was made


def test_cli_weights_that_do_not_fit_name_keys_and_shapes(cvae_module: ModuleType, tmp_path: Path) -> None:
    weights = tmp_path / "other_latent.pt"
    tiny_cvae_weights(cvae_module, weights, latent_dim=6)  # saved from a 6-d decoder; the config asks for 8
    result = run_fit(
        "--data.init_args.generator.class_path",
        "cvae.CVAEDecoder",
        *TINY_CVAE_ARGS,
        "--data.init_args.generator_weights",
        str(weights),
        "--data.init_args.truncation_psi",
        "1.0",
        "--trainer.max_steps",
        "1",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
        pythonpath=[EXAMPLE],
    )
    error_tail(
        result,
        f"error: --data.init_args.generator_weights: {weights}: weights do not fit cvae.CVAEDecoder",
        "shape mismatch ['project.weight: file (64, 16) vs model (64, 18)']",
    )
    assert not (tmp_path / "runs").exists()


def test_weights_name_missing_and_unexpected_keys(cvae_module: ModuleType, tmp_path: Path) -> None:
    state = tiny_cvae_weights(cvae_module, tmp_path / "ok.pt")
    state["extra.bias"] = state.pop("project.bias")
    torch.save(state, tmp_path / "renamed.pt")
    decoder = cvae_module.CVAEDecoder(**TINY_CVAE)
    with pytest.raises(CheckpointError, match=r"renamed\.pt: weights do not fit cvae\.CVAEDecoder: ") as err:
        load_weights(decoder, tmp_path / "renamed.pt")
    assert "missing ['project.bias']; unexpected ['extra.bias']" in str(err.value)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pt")  # not a plain state_dict
    not_plain = r"wrapped\.pt is not a plain state_dict: \['state_dict', 'epoch'\] hold no tensors \(its 'state_dict'"
    with pytest.raises(CheckpointError, match=not_plain):
        load_weights(decoder, tmp_path / "wrapped.pt")


@pytest.mark.parametrize("form", ["option", "config file"])
def test_cli_a_class_path_that_cannot_be_imported_names_the_module(form: str, tmp_path: Path) -> None:
    if form == "option":
        args = ["--data.init_args.generator.class_path", "my_missing_pkg.MyGenerator"]
    else:
        overlay = tmp_path / "overlay.yaml"
        overlay.write_text("data:\n  init_args:\n    generator:\n      class_path: my_missing_pkg.MyGenerator\n")
        args = ["--config", str(overlay)]
    result = run_fit(*args, "--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), cwd=tmp_path, pythonpath=[])
    error_tail(
        result,
        "error: --data.init_args.generator: cannot import class_path 'my_missing_pkg.MyGenerator': "
        "No module named 'my_missing_pkg'. Is the folder that holds it on PYTHONPATH?",
    )
    assert result.returncode == 2 and not (tmp_path / "runs").exists()


def test_python_class_path_errors_name_the_module_and_the_class(cvae_module: ModuleType) -> None:
    with pytest.raises(GeneratorConfigError, match=r"cannot import module 'my_missing_pkg'.*PYTHONPATH"):
        resolve_generator({"class_path": "my_missing_pkg.MyGenerator"})
    with pytest.raises(GeneratorConfigError, match=r"module 'cvae' has no 'Decoder'"):
        resolve_generator({"class_path": "cvae.Decoder"})
    with pytest.raises(GeneratorConfigError, match=r"cvae\.CVAEDecoder: init_args \{'depth': 3\} do not fit"):
        resolve_generator({"class_path": "cvae.CVAEDecoder", "init_args": {"depth": 3}})
    with pytest.raises(CheckpointError, match=r"If 'cvae\.CVAEDecoder' is a class, give it as the generator's"):
        resolve_generator("cvae.CVAEDecoder")  # a class named where a file was expected


def test_w_space_of_a_generator_without_it_names_what_is_missing(cvae_module: ModuleType) -> None:
    decoder = cvae_module.CVAEDecoder(**TINY_CVAE)
    LatentManifold(decoder, num_envs=1)  # z-space: the base protocol is enough
    missing = "CVAEDecoder has no w-space: missing w_dim, mapping, synthesis, broadcast"
    with pytest.raises(GeneratorProtocolError, match=missing):
        LatentManifold(decoder, num_envs=1, latent_space="w")
    env = LatentManifold(tiny_generator(), num_envs=2, latent_space="w")  # StyleGAN follows both protocols
    assert env.action_dim == TINY_GENERATOR["w_dim"]


def test_gymnasium_bad_class_path_is_named() -> None:
    with pytest.raises(GeneratorConfigError, match="my_missing_pkg"):
        gymnasium.make(LATENT_MANIFOLD_ID, generator={"class_path": "my_missing_pkg.G"})
    with pytest.raises(GeneratorProtocolError, match="Identity is not a conditional generator: missing latent_dim"):
        gymnasium.make(LATENT_MANIFOLD_ID, generator={"class_path": "torch.nn.Identity"})


def test_cli_init_args_the_class_refuses_are_one_line(tmp_path: Path) -> None:
    result = run_fit(
        "--data.init_args.generator.class_path",
        "cvae.CVAEDecoder",
        "--data.init_args.generator.init_args.image_size",
        "30",  # CVAEDecoder.__init__ raises ValueError, inside jsonargparse's Union
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
        pythonpath=[EXAMPLE],
    )
    refused = "error: --data.init_args.generator: cvae.CVAEDecoder: image_size must be a multiple of 8, got 30"
    error_tail(result, refused)
    assert not (tmp_path / "runs").exists()


UNION_REPORT = """Parser key "data":
  Problem with given class_path 'palm_lightning.datamodules.LatentManifoldDataModule':
    Parser key "generator":
      Does not validate against any of the Union subtypes
      Subtypes: [<class 'str'>, <class 'torch.nn.modules.module.Module'>, <class 'NoneType'>]
      Errors:
        - Expected a <class 'str'>
        - Problem with given class_path '{class_path}':
            {error}
        - Expected a <class 'NoneType'>
      Given value type: <class 'jsonargparse._util.NestedArg'>
      Given value: NestedArg(key='class_path', val='{class_path}')"""


@pytest.mark.parametrize(
    "class_path, error, expected",
    [
        (
            "my_pkg.G",
            "No module named 'my_pkg'",
            "cannot import class_path 'my_pkg.G': No module named 'my_pkg'. Is the folder that holds it on PYTHONPATH?",
        ),
        (
            "torch.nn.Module",
            "Option 'latent_dim' is not accepted",
            (
                "Problem with given class_path 'torch.nn.Module': Option 'latent_dim' is not accepted. "
                "Give --data.init_args.generator.class_path before its init_args"
            ),
        ),
        (
            "cvae.CVAEDecoder",
            "Parser key \"image_size\":\n              Expected a <class 'int'>. Got value: abc",
            "Problem with given class_path 'cvae.CVAEDecoder': image_size: Expected a <class 'int'>. Got value: abc",
        ),
    ],
)
def test_union_reports_are_cut_to_the_error_that_matters(class_path: str, error: str, expected: str) -> None:
    report = UNION_REPORT.format(class_path=class_path, error=error)
    assert condense_union_report(report) == (expected, "data.init_args.generator")
    assert condense_union_report("Parser key \"x\": Expected a <class 'int'>") == (
        "Parser key \"x\": Expected a <class 'int'>",
        None,
    )  # anything else is left alone
