"""Command line: ``python -m palm_lightning {fit,validate,test,predict} --config FILE``.

A thin :class:`~lightning.pytorch.cli.LightningCLI`: any LightningModule / LightningDataModule of
the package (or of your own code) is chosen with ``class_path`` / ``init_args``; TensorBoard is
the default logger (``runs/<name>``), the resolved config is saved next to the logs, and
``--ckpt_path`` resumes. ``--print_config`` prints the full, resolved configuration.

Bad input files end in one short message naming the file and what is wrong, with a non-zero exit
code: a missing or corrupt ``--ckpt_path`` is refused before anything is instantiated or written,
and a :class:`~palm_lightning.checkpoints.CheckpointError` raised later (an encoder or generator
file) is printed without its traceback (set ``JSONARGPARSE_DEBUG=1`` to see it), as are a
generator that does not follow the protocol
(:class:`~palm_lightning.nn.protocols.GeneratorProtocolError`) and a generator ``class_path`` that
cannot be used (:class:`~palm_lightning.generators.GeneratorConfigError`). jsonargparse's
"Does not validate against any of the Union subtypes" reports, which an option typed
``str | nn.Module | None`` (a data module's ``generator``) produces for a ``class_path`` that cannot
be imported or for ``init_args`` the class refuses, are cut down to the one error that matters,
after the option's name.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import torch
from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from palm_lightning.checkpoints import CheckpointError, read_lightning_checkpoint
from palm_lightning.generators import GeneratorConfigError
from palm_lightning.nn.protocols import GeneratorProtocolError

TRAINER_DEFAULTS = {
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "runs", "name": "default"},
    },
}
# ckpt_path values that Lightning resolves itself rather than reading them as file names
CKPT_PATH_KEYWORDS = ("best", "last", "hpc", "registry")
UNION_DUMP = "Does not validate against any of the Union subtypes"


class ConfigValueError(ValueError):
    """A configuration value that could not be used, reported in one line (a cut-down jsonargparse
    Union report)."""


USER_ERRORS: tuple[type[Exception], ...] = (
    CheckpointError,
    GeneratorProtocolError,
    GeneratorConfigError,
    ConfigValueError,
)
"""Errors about the user's input, printed by :func:`main` as one line without a traceback."""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _union_errors(lines: list[str], start: int) -> list[str]:
    """The members' errors of the Union report whose first line is ``lines[start]``, one line each,
    without the trivial ``Expected a <class 'str'>`` of the members the value was never meant for."""
    indent = _indent(lines[start])
    items: list[list[str]] = []
    for line in lines[start + 1 :]:
        text = line.strip()
        if not text:
            continue
        if _indent(line) <= indent and text.startswith("Given value"):
            break
        if _indent(line) <= indent + 2 and text.startswith("- "):
            items.append([text[2:]])
        elif items:
            items[-1].append(text)
    joined = [re.sub(r'Parser key "([^"]+)": ', r"\1: ", " ".join(item)) for item in items]
    meaningful = [item for item in joined if not re.fullmatch(r"Expected a <class '[\w.]+'>", item)]
    return meaningful or joined


def condense_union_report(message: str) -> tuple[str, str | None]:
    """jsonargparse's multi-line "Does not validate against any of the Union subtypes" report, cut
    down to ``(the errors that matter in one line, the option's dotted key or None)``.

    The key comes from the report's ``Parser key "…"`` lines (a class's ``init_args`` in between);
    a ``class_path`` that cannot be imported gets a hint about ``PYTHONPATH``.
    """
    lines = message.splitlines()
    start = next((i for i, line in enumerate(lines) if UNION_DUMP in line), None)
    if start is None:
        return message, None
    keys: list[str] = []
    for line in lines[:start]:
        text = line.strip().removeprefix("error: ")
        key = re.fullmatch(r'Parser key "([^"]+)":', text)
        if key:
            keys.append(key[1])
        elif text.startswith("Problem with given class_path") and keys:
            keys.append("init_args")
    detail = "; ".join(_union_errors(lines, start))
    detail = re.sub(
        r"Problem with given class_path '([^']+)': (No module named '[^']+'|module '[^']+' has no attribute '[^']+')",
        r"cannot import class_path '\1': \2",
        detail,
    )
    if "No module named" in detail:
        detail += ". Is the folder that holds it on PYTHONPATH?"
    option = ".".join(keys) or None
    if re.search(r"class_path 'torch\.nn\.(modules\.module\.)?Module': Option '[^']+' is not accepted", detail):
        # init_args given before the class_path: jsonargparse checked them against the base class
        detail += f". Give --{option or '<key>'}.class_path before its init_args"
    return detail, option


class PalmArgumentParser(LightningArgumentParser):
    """Lightning's parser, with the model and the data module as required classes, not ``Optional``.

    LightningCLI adds ``model`` and ``data`` with a ``None`` default, which jsonargparse turns into
    ``Optional[LightningModule]``, a Union; the modules are instantiated while the value is matched
    against the Union's members, so any error raised in a module's ``__init__`` (a corrupt encoder
    file, say) comes out as a long "Does not validate against any of the Union subtypes" trace with
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

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        """jsonargparse's error exit, with a Union report cut down to one line after the option."""
        if not self.exit_on_error:  # a nested parser, whose message the exiting one reports
            super().error(message, ex)
        detail, key = condense_union_report(message)
        super().error(f"--{key}: {detail}" if key else detail, ex)


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
            if error is None and UNION_DUMP in str(err):  # a class's __init__ failed inside a Union
                error = self.instantiation_error(str(err))
                error.option = self.option_for(error)  # type: ignore[attr-defined]
                raise error from err
            if error is not None and getattr(error, "option", None) is None:
                error.option = self.option_for(error)  # type: ignore[attr-defined]  # read back by main() with getattr
            raise

    def instantiation_error(self, report: str) -> ConfigValueError:
        """A one-line error for a Union report raised while instantiating a class: the class's own
        error, after its class path (found in the report's ``Given value``)."""
        detail, _ = condense_union_report(report)
        class_path = re.search(r"^Given value: .*?class_path='([^']+)'", report, re.MULTILINE)
        return ConfigValueError(f"{class_path[1]}: {detail}" if class_path else detail)

    def _option(self, key: str, subcommand: str | None) -> str:
        in_subcommand = subcommand and key.startswith(subcommand + ".")
        return "--" + (key[len(subcommand) + 1 :] if subcommand and in_subcommand else key)

    def option_for(self, error: Exception) -> str | None:
        """The option (``--model.init_args.encoder``, ...) that ``error`` is about: the one whose
        path value appears first in its message as a path, else the ``class_path`` option whose
        class is named at the start of the message (a generator that does not follow the protocol)."""
        config: Namespace | None = getattr(self, "config", None)
        if config is None:
            return None
        message = str(error)
        subcommand = config.get("subcommand")
        found: list[tuple[int, str]] = []
        for key, value in config.items():
            if key.endswith(".class_path") or not isinstance(value, str):
                continue
            if not (os.sep in value or Path(value).suffix):
                continue
            for form in {value, str(Path(value)), str(Path(value).expanduser())}:
                match = re.search(rf"(?:^|\s){re.escape(form)}(?=[:\s]|$)", message)
                if match:
                    found.append((match.start(), self._option(key, subcommand)))
        if found:
            return min(found)[1]
        classes: list[tuple[int, str]] = []
        for key, value in config.items():
            if not key.endswith(".class_path") or not isinstance(value, str):
                continue
            for name in (value, value.rpartition(".")[2]):
                match = re.search(rf"(?:^|[\s'(]){re.escape(name)}\b", message)
                if match:
                    classes.append((match.start(), self._option(key.removesuffix(".class_path"), subcommand)))
        return min(classes)[1] if classes else None

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        super().parse_arguments(parser, args)
        self.check_ckpt_path()
        self.drop_checkpoint_callbacks_when_checkpointing_is_off()

    def drop_checkpoint_callbacks_when_checkpointing_is_off(self) -> None:
        """``--trainer.enable_checkpointing false`` on a config that lists ``ModelCheckpoint``
        callbacks (``configs/palm.yaml`` does) means "save nothing": drop those callbacks, say so,
        instead of Lightning's ``MisconfigurationException`` about the contradiction."""
        subcommand = self.config.get("subcommand")
        trainer = self.config[subcommand].get("trainer") if subcommand else self.config.get("trainer")
        if trainer is None or trainer.get("enable_checkpointing") is not False:
            return
        callbacks = trainer.get("callbacks") or []
        kept = [c for c in callbacks if not str(getattr(c, "class_path", "")).endswith(".ModelCheckpoint")]
        if len(kept) != len(callbacks):
            trainer["callbacks"] = kept
            print(
                f"note: --trainer.enable_checkpointing false: dropped the config's {len(callbacks) - len(kept)} "
                "ModelCheckpoint callback(s); nothing will be saved",
                file=sys.stderr,
            )

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


def user_error(err: BaseException) -> Exception | None:
    """The error about the user's input (one of :data:`USER_ERRORS`: a :class:`CheckpointError`, a
    generator that does not follow the protocol, ...) that ``err`` is, or that caused it
    (jsonargparse re-raises errors from a module's ``__init__`` inside its own, ``from`` the
    original), else ``None``."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, USER_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


MANUAL_OPTIMIZATION_CHECKPOINT_WARNING = "Using ModelCheckpoint with manual optimization and every_n_train_steps"
"""Lightning warns (with a 12-line code sample) that a manual-optimization module's periodic checkpoint
holds the weights *after* that step's update. For our RL and GAN modules that is the state to resume
from (the step counter already counts the update), so the CLI silences this one message."""


def main(args: list[str] | None = None) -> None:
    # Deterministic-enough matmuls on CPU and TF32 on recent GPUs; a no-op elsewhere.
    torch.set_float32_matmul_precision("high")
    warnings.filterwarnings("ignore", message=MANUAL_OPTIMIZATION_CHECKPOINT_WARNING)
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
