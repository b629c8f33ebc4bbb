"""Command line: ``python -m palm_lightning {fit,validate,test,predict} --config FILE``.

A thin :class:`~lightning.pytorch.cli.LightningCLI`: any LightningModule / LightningDataModule of
the package (or of your own code) is chosen with ``class_path`` / ``init_args``; TensorBoard is
the default logger (``runs/<name>``), the resolved config is saved next to the logs, and
``--ckpt_path`` resumes. ``--print_config`` prints the full, resolved configuration.
"""

from __future__ import annotations

import sys

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "default"},
    },
}


class PalmCLI(LightningCLI):
    """LightningCLI with the package's defaults (subclass mode for models and data)."""

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("parser_kwargs", {"default_env": False})
        super().__init__(
            LightningModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            args=args,
            **kwargs,
        )


def main(args: list[str] | None = None) -> None:
    # Deterministic-enough matmuls on CPU and TF32 on recent GPUs; a no-op elsewhere.
    torch.set_float32_matmul_precision("high")
    PalmCLI(args=args)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
