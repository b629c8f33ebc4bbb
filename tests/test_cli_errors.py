"""Bad input files through the command line: each ends in a short message naming the file and what
is wrong (no jsonargparse Union dump, no raw pickle traceback), a non-zero exit code, and nothing
already saved is touched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from palm_lightning.checkpoints import CheckpointError, read_description, read_lightning_checkpoint
from palm_lightning.cli import PalmCLI, user_error
from tests.cli_runner import run_cli
from tests.palm_fixtures import tiny_generator_file

REPO = Path(__file__).resolve().parents[1]
CORRUPT = bytes(range(256)) * 8  # neither a zip archive nor a pickle


def assert_clear_error(result: subprocess.CompletedProcess, path: Path, *phrases: str) -> str:
    """Non-zero exit, and the last five non-empty lines of stderr name ``path`` and ``phrases``."""
    assert result.returncode != 0, result.stderr[-3000:]
    tail = "\n".join([line for line in result.stderr.splitlines() if line.strip()][-5:])
    assert str(path) in tail, result.stderr[-3000:]
    for phrase in phrases:
        assert phrase in tail, tail
    for noise in ("Union", "Traceback", "UnpicklingError", "Weights only load failed"):
        assert noise not in tail, tail
    return tail


def saved_run(runs: Path, name: str) -> dict[Path, bytes]:
    """A previous run's files, to check that a failed command leaves them alone."""
    files = {
        runs / name / "version_0" / "checkpoints" / "last.ckpt": b"an earlier run's checkpoint",
        runs / name / "version_0" / "config.yaml": b"an earlier run's config",
    }
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return files


def assert_untouched(files: dict[Path, bytes]) -> None:
    for path, content in files.items():
        assert path.read_bytes() == content, path


def probe_args(config: str, fmnist_root: Path, tmp_path: Path, encoder: Path) -> list[str]:
    data_dir = "--data.init_args.in_data.init_args.data_dir" if "ood" in config else "--data.init_args.data_dir"
    download = "--data.init_args.in_data.init_args.download" if "ood" in config else "--data.init_args.download"
    return [
        "--config",
        str(REPO / config),
        "--model.init_args.encoder",
        str(encoder),
        data_dir,
        str(fmnist_root),
        download,
        "false",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
    ]


def palm_args(fmnist_root: Path, tmp_path: Path) -> list[str]:
    return [
        "--config",
        str(REPO / "configs/palm.yaml"),
        "--data.init_args.probe_data.init_args.data_dir",
        str(fmnist_root),
        "--data.init_args.probe_data.init_args.download",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.max_steps",
        "1",
        "--trainer.enable_progress_bar",
        "false",
    ]


# --- the command line, in a subprocess as a user runs it ----------------------------------------


@pytest.mark.parametrize(
    "config", ["configs/eval/linear_fmnist.yaml", "configs/eval/knn_fmnist.yaml", "configs/eval/ood_fmnist.yaml"]
)
def test_corrupt_encoder_file(config: str, fmnist_root: Path, tmp_path: Path) -> None:
    encoder = tmp_path / "corrupt.pt"
    encoder.write_bytes(CORRUPT)
    result = run_cli("test", *probe_args(config, fmnist_root, tmp_path, encoder), cwd=tmp_path)
    assert_clear_error(result, encoder, "--model.init_args.encoder", "corrupt or not a PyTorch file")
    assert not (tmp_path / "runs").exists()  # refused before any run directory was made


def test_missing_encoder_file(fmnist_root: Path, tmp_path: Path) -> None:
    encoder = tmp_path / "no_such_encoder.pt"
    args = probe_args("configs/eval/linear_fmnist.yaml", fmnist_root, tmp_path, encoder)
    result = run_cli("test", *args, cwd=tmp_path)
    assert_clear_error(result, encoder, "--model.init_args.encoder", "does not exist")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("problem", ["corrupt", "missing"])
def test_bad_generator_file(problem: str, fmnist_root: Path, tmp_path: Path) -> None:
    generator = tmp_path / "generator.pt"
    if problem == "corrupt":  # a real generator file, cut short
        data = tiny_generator_file(tmp_path).read_bytes()
        generator.write_bytes(data[: len(data) // 2])
    earlier = saved_run(tmp_path / "runs", "palm")
    result = run_cli(
        "fit", *palm_args(fmnist_root, tmp_path), "--data.init_args.generator", str(generator), cwd=tmp_path
    )
    expected = "cut short or damaged" if problem == "corrupt" else "does not exist"
    assert_clear_error(result, generator, "--data.init_args.generator", expected)
    assert_untouched(earlier)
    assert sorted(p.name for p in (tmp_path / "runs" / "palm").iterdir()) == ["version_0"]  # no new run folder


@pytest.mark.parametrize("problem", ["corrupt", "missing", "network file"])
def test_bad_ckpt_path(problem: str, fmnist_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "resume.ckpt"
    if problem == "corrupt":
        ckpt.write_bytes(CORRUPT)
    elif problem == "network file":
        ckpt = tiny_generator_file(tmp_path)
    earlier = saved_run(tmp_path / "runs", "palm")
    result = run_cli("fit", *palm_args(fmnist_root, tmp_path), "--ckpt_path", str(ckpt), cwd=tmp_path)
    expected = {
        "corrupt": "corrupt or not a PyTorch file",
        "missing": "does not exist",
        "network file": "not a Lightning checkpoint",
    }[problem]
    assert_clear_error(result, ckpt, "--ckpt_path", expected)
    assert_untouched(earlier)
    assert sorted(p.name for p in (tmp_path / "runs" / "palm").iterdir()) == ["version_0"]  # no new run


# --- the pieces, in process -------------------------------------------------------------------


def test_module_init_errors_are_not_wrapped_in_a_union(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cause of the Union dump: ``model`` typed ``Optional[LightningModule]``. The probe's own
    error must come out of the parser as raised."""
    monkeypatch.setattr(sys, "argv", ["palm_lightning"])
    missing = tmp_path / "missing.pt"
    with pytest.raises(CheckpointError, match="does not exist") as err:
        PalmCLI(
            args=[
                "--model",
                "palm_lightning.models.LinearProbe",
                "--model.init_args.encoder",
                str(missing),
                "--data",
                "palm_lightning.datamodules.FashionMNISTDataModule",
                "--data.init_args.data_dir",
                str(tmp_path),
            ],
            run=False,
        )
    assert type(err.value) is CheckpointError
    assert err.value.option == "--model.init_args.encoder"  # type: ignore[attr-defined]  # set by the CLI on the error


def test_user_error_finds_the_cause() -> None:
    cause = CheckpointError("cannot read x.pt")

    def validate() -> None:
        try:
            raise cause
        except CheckpointError as inner:
            raise ValueError("Does not validate against any of the Union subtypes") from inner

    with pytest.raises(ValueError, match="Union subtypes") as wrapped:
        validate()
    assert user_error(wrapped.value) is cause
    assert user_error(ValueError("unrelated")) is None


@pytest.mark.parametrize(
    "content, phrase",
    [
        (b"", "the file is empty"),
        (b"<html>404 Not Found</html>\n", "it starts with the text '<html>404 Not "),
        ("truncated", "cut short or damaged"),
    ],
)
def test_unreadable_files_say_why(content: bytes | str, phrase: str, tmp_path: Path) -> None:
    path = tmp_path / "file.pt"
    if content == "truncated":
        data = tiny_generator_file(tmp_path).read_bytes()
        content = data[:200]
    path.write_bytes(content)
    for read in (read_description, read_lightning_checkpoint):
        with pytest.raises(CheckpointError, match=f"cannot read {path}: ") as err:
            read(path)
        message = str(err.value)
        assert phrase in message and "\n" not in message and len(message) < 400, message


def test_pickled_objects_are_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "module.pt"
    torch.save({"net": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(
        CheckpointError, match=r"holds pickled Python objects \(GLOBAL torch\.nn\.modules\.linear\.Linear"
    ):
        read_description(path)


def test_lightning_checkpoint_checks(tmp_path: Path) -> None:
    plain = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match=r"weights\.pt is not a Lightning checkpoint \(no 'state_dict'"):
        read_lightning_checkpoint(plain)
    good = tmp_path / "good.ckpt"
    torch.save({"state_dict": {"w": torch.ones(3)}, "pytorch-lightning_version": "2.6.6"}, good)
    assert torch.equal(read_lightning_checkpoint(good)["state_dict"]["w"], torch.ones(3))
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*: it is a directory"):
        read_lightning_checkpoint(tmp_path)
