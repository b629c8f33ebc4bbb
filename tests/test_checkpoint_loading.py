"""Loading a trained module for a tool (``load_lightning_module``): the file is read once, never
unpickles code, and every way it can be wrong gets an error that names the problem."""

from __future__ import annotations

import builtins
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from palm_lightning.models.ear.ear import EAR
from palm_lightning.models.ear.multitask_sac import TASK_INFO_KEY
from palm_lightning.models.meta_rl.maml_trpo import MAMLTRPO
from palm_lightning.models.meta_rl.pearl import PEARL
from palm_lightning.training.checkpoint_loading import load_lightning_module


class Tiny(L.LightningModule):
    """The smallest module with hyperparameters, so a real Trainer can write its checkpoint."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Pickled:
    """A Python object that only ``weights_only=False`` would unpickle."""


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint as the Trainer writes it (loops, callbacks, optimiser state), after 2 steps."""
    root = tmp_path_factory.mktemp("tiny_ckpt")
    trainer = L.Trainer(
        max_steps=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=root,
    )
    trainer.fit(Tiny(width=4), DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=4))
    path = root / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Records every ``open`` of a file (by resolved path) and the ``weights_only`` of every
    ``torch.load``, whoever calls them (our helper, torch, Lightning's fsspec)."""
    seen: dict[str, list[Any]] = {"opened": [], "weights_only": []}
    real_open, real_load = builtins.open, torch.load

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, Path)):
            seen["opened"].append(Path(file).resolve())
        return real_open(file, *args, **kwargs)

    def counting_load(*args: Any, **kwargs: Any) -> Any:
        seen["weights_only"].append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(torch, "load", counting_load)
    return seen


def test_the_module_is_rebuilt_from_one_read_of_the_file(tiny_checkpoint: Path, reads: dict[str, list[Any]]) -> None:
    """Issue 43: the tools read each checkpoint twice, once with ``weights_only=False``."""
    seen: list[Mapping[str, Any]] = []
    model = load_lightning_module(Tiny, tiny_checkpoint, check=seen.append)
    assert reads["opened"].count(tiny_checkpoint.resolve()) == 1, reads["opened"]
    assert reads["weights_only"] and all(w is True for w in reads["weights_only"]), reads["weights_only"]
    assert len(seen) == 1 and "state_dict" in seen[0] and seen[0]["hyper_parameters"]["width"] == 4
    assert isinstance(model, Tiny) and model.hparams["width"] == 4
    torch.testing.assert_close(model.layer.weight, seen[0]["state_dict"]["layer.weight"])


def test_a_rejected_checkpoint_is_never_built(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's check runs on the raw dictionary first, so its message is the one the user
    sees, not an error from building the wrong module."""

    def refuse(raw: Mapping[str, Any]) -> None:
        raise ValueError("not the module you want")

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("built although the check refused it")

    monkeypatch.setattr(Tiny, "load_from_checkpoint", never)
    with pytest.raises(ValueError, match="not the module you want"):
        load_lightning_module(Tiny, tiny_checkpoint, check=refuse)


def _write(kind: str, path: Path) -> Path:
    if kind == "garbage":
        path.write_bytes(b"<html>404 Not Found</html>")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "list":
        torch.save([torch.zeros(2)], path)
    elif kind == "network file":
        torch.save({"format": "palm_lightning/network", "state_dict": {}}, path)
    elif kind == "pickled object":
        torch.save({"state_dict": {}, "pytorch-lightning_version": L.__version__, "extra": Pickled()}, path)
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("garbage", r"is not a readable checkpoint \(UnpicklingError"),
        ("empty", "is not a readable checkpoint"),
        ("list", r"is not a Lightning checkpoint .*it holds a list"),
        ("network file", r"is not a Lightning checkpoint .*keys \['format', 'state_dict'\]"),
        ("pickled object", r"is not a readable checkpoint \(it pickles Python objects.*Pickled"),
    ],
)
def test_unusable_files_name_the_problem(tmp_path: Path, kind: str, message: str) -> None:
    """Each failure says which file and what is wrong with it, in one sentence."""
    path = _write(kind, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match=message) as error:
        load_lightning_module(Tiny, path)
    assert str(path) in str(error.value)


def test_a_missing_file_names_the_fix(tmp_path: Path) -> None:
    """A wrong path is the commonest mistake: say it does not exist and what to pass instead."""
    missing = r"no checkpoint at .*missing\.ckpt \(the file does not exist\): pass X"
    with pytest.raises(FileNotFoundError, match=missing):
        load_lightning_module(Tiny, tmp_path / "missing.ckpt", hint="pass X")
    with pytest.raises(FileNotFoundError, match=r"\(it is a directory\)"):
        load_lightning_module(Tiny, tmp_path)


def _checkpoint_of(model: L.LightningModule, path: Path, state: dict[str, Any] | None = None) -> Path:
    """``model``'s checkpoint in the Trainer's layout, written without a run (MAML-TRPO's and
    PEARL's need the locomotion environments); ``state`` replaces its weights."""
    torch.save(
        {
            "state_dict": model.state_dict() if state is None else state,
            "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": L.__version__,
            TASK_INFO_KEY: {"family": "halfcheetah_vel", "tasks": [0, 1]},
        },
        path,
    )
    return path


META_RL: dict[str, tuple[Callable[[], L.LightningModule], str]] = {
    "maml": (lambda: MAMLTRPO(obs_dim=5, action_dim=2, hidden_dim=8), "MAML-TRPO"),
    "pearl": (
        lambda: PEARL(obs_dim=5, action_dim=2, num_tasks=2, agent={"hidden_dim": 8}, encoder_hidden_dim=8),
        "PEARL",
    ),
}


@pytest.mark.parametrize("name", list(META_RL))
def test_meta_rl_from_checkpoint_reads_once_and_keeps_its_messages(
    tmp_path: Path, reads: dict[str, list[Any]], name: str
) -> None:
    """The tools' ``from_checkpoint`` go through the helper: one read, ``weights_only=True``,
    the module's own message for another module's checkpoint or a missing file."""
    build, label = META_RL[name]
    cls = type(build())
    path = _checkpoint_of(build(), tmp_path / f"{name}.ckpt")
    reads["opened"].clear()
    reads["weights_only"].clear()
    model = cls.from_checkpoint(path)  # type: ignore[attr-defined]
    assert reads["opened"].count(path.resolve()) == 1, reads["opened"]
    assert reads["weights_only"] and all(w is True for w in reads["weights_only"])
    assert not model.training and model.task_info["family"] == "halfcheetah_vel"
    other = _checkpoint_of(build(), tmp_path / "other.ckpt", state={"agent.other.w": torch.zeros(1)})
    with pytest.raises(ValueError, match=f"is not a {label} checkpoint"):
        cls.from_checkpoint(other)  # type: ignore[attr-defined]
    with pytest.raises(FileNotFoundError, match=f"pass the .ckpt of a {label} run"):
        cls.from_checkpoint(tmp_path / "missing.ckpt")  # type: ignore[attr-defined]


def test_ear_from_checkpoint_reads_once_and_checks_the_family(tmp_path: Path, reads: dict[str, list[Any]]) -> None:
    """EAR's loader on a checkpoint the Trainer wrote: one read, and the family check still runs
    on the raw checkpoint before anything is built."""
    from tests.test_ear_tools import train

    path = train(tmp_path, EAR, "ear")
    reads["opened"].clear()
    reads["weights_only"].clear()
    model = EAR.from_checkpoint(path, family="halfcheetah_vel")
    assert reads["opened"].count(path.resolve()) == 1, reads["opened"]
    assert reads["weights_only"] and all(w is True for w in reads["weights_only"])
    assert not model.training
    with pytest.raises(ValueError, match="was trained on 'halfcheetah_vel', not 'ant_dir'"):
        EAR.from_checkpoint(path, family="ant_dir")
