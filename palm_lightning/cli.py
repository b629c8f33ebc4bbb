"""Command line: ``python -m palm_lightning {fit,validate,test,predict} --config FILE``.

A thin :class:`~lightning.pytorch.cli.LightningCLI`: any LightningModule / LightningDataModule of
the package (or of your own code) is chosen with ``class_path`` / ``init_args``; TensorBoard is
the default logger (``runs/<name>``), the resolved config is saved next to the logs, and
``--ckpt_path`` resumes. ``--print_config`` prints the full, resolved configuration.

Bad input files end in one short message naming the file and what is wrong, with a non-zero exit
code: a missing or corrupt ``--ckpt_path`` is refused before anything is instantiated or written,
and a :class:`~palm_lightning.checkpoints.CheckpointError` raised later (an encoder or generator
file) is printed without its traceback (set ``JSONARGPARSE_DEBUG=1`` to see it).
"""

from __future__ import annotations

import inspect
import os
import re
import sys
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from palm_lightning.checkpoints import CheckpointError, read_lightning_checkpoint

TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "default"},
    },
}
# ckpt_path values that Lightning resolves itself rather than reading them as file names
CKPT_PATH_KEYWORDS = ("best", "last", "hpc", "registry")


class PalmArgumentParser(LightningArgumentParser):
    """Lightning's parser, with the model and the data module as required classes, not ``Optional``.

    LightningCLI adds ``model`` and ``data`` with a ``None`` default, which jsonargparse turns into
    ``Optional[LightningModule]``, a Union; the modules are instantiated while the value is matched
    against the Union's members, so any error raised in a module's ``__init__`` (a corrupt encoder
    file, say) came out as ~100 lines of "Does not validate against any of the Union subtypes" with
    the real error buried in the middle. Without the default there is no Union, and the error
    propagates as raised. Both keys were required anyway.
    """

    def add_lightning_class_args(self, lightning_class, nested_key, subclass_mode=False, required=True):
        if (
            subclass_mode
            and required
            and isinstance(lightning_class, type)
            and issubclass(lightning_class, (LightningModule, LightningDataModule))
        ):
            return self.add_subclass_arguments(
                lightning_class, nested_key, fail_untyped=False, required=True, default=inspect.Parameter.empty
            )
        return super().add_lightning_class_args(lightning_class, nested_key, subclass_mode, required)


class PalmCLI(LightningCLI):
    """LightningCLI with the package's defaults (subclass mode for models and data)."""

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_kwargs", {"default_env": False})
        kwargs.setdefault("parser_class", PalmArgumentParser)
        try:
            super().__init__(
                LightningModule,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                args=args,
                **kwargs,
            )
        except Exception as err:
            error = user_error(err)
            if error is not None and getattr(error, "option", None) is None:
                error.option = self.option_for(error)  # type: ignore[attr-defined]  # read back by main() with getattr
            raise

    def option_for(self, error: CheckpointError) -> str | None:
        """The option (``--model.init_args.encoder``, ...) whose file ``error`` is about, if one of
        the configuration's path values appears in its message as a path."""
        config = getattr(self, "config", None)
        if config is None:
            return None
        message = str(error)
        subcommand = config.get("subcommand")
        for key, value in config.items():
            if not isinstance(value, str) or not (os.sep in value or Path(value).suffix):
                continue
            for form in {value, str(Path(value)), str(Path(value).expanduser())}:
                if re.search(rf"(?:^|\s){re.escape(form)}(?=[:\s]|$)", message):
                    in_subcommand = subcommand and key.startswith(subcommand + ".")
                    return "--" + (key[len(subcommand) + 1 :] if in_subcommand else key)
        return None

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        super().parse_arguments(parser, args)
        self.check_ckpt_path()

    def check_ckpt_path(self) -> None:
        """Refuse a missing, corrupt or wrong ``--ckpt_path`` with a :class:`CheckpointError`, before
        Lightning reads it (its raw ``UnpicklingError`` would be the last word) and before any run
        directory is created. Lightning's keywords (``last``, ``best``, …), URLs and directories
        (sharded checkpoints) are left to Lightning."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if ckpt_path is None:
            return
        text = str(ckpt_path)
        if text in CKPT_PATH_KEYWORDS or text.startswith("registry:") or "://" in text or os.path.isdir(text):
            return
        try:
            read_lightning_checkpoint(text)
        except CheckpointError as err:
            err.option = "--ckpt_path"  # type: ignore[attr-defined]  # read back by main() with getattr
            raise


def user_error(err: BaseException) -> CheckpointError | None:
    """The :class:`CheckpointError` that ``err`` is, or that caused it (jsonargparse re-raises errors
    from a module's ``__init__`` inside its own, ``from`` the original), else ``None``."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, CheckpointError):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def main(args: list[str] | None = None) -> None:
    # Deterministic-enough matmuls on CPU and TF32 on recent GPUs; a no-op elsewhere.
    torch.set_float32_matmul_precision("high")
    try:
        PalmCLI(args=args)
    except Exception as err:
        error = user_error(err)
        if error is None or os.environ.get("JSONARGPARSE_DEBUG"):
            raise
        option = getattr(error, "option", None)
        print(f"error: {option + ': ' if option else ''}{error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
