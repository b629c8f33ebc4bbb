"""Load a trained LightningModule for a tool, with errors that say what is wrong with the file.

:func:`load_lightning_module` reads the checkpoint from disk once and deserialises it with
``torch.load(weights_only=True)``, so loading a checkpoint never runs code stored in it. The
package's Lightning checkpoints (written by the ``Trainer`` and by ``LightningCLI``) hold only
tensors and plain containers of numbers and strings: the model and optimiser state, the loops'
and callbacks' progress, the hyperparameters (``LightningCLI`` adds the strings
``_instantiator`` and ``_class_path``) and the package's own task and network descriptions. So
there is no ``weights_only=False`` fallback: a file that pickles Python objects is refused with a
``ValueError`` naming the object.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import lightning as L
import torch

ModuleT = TypeVar("ModuleT", bound=L.LightningModule)
CheckpointCheck = Callable[[Mapping[str, Any]], None]
"""Looks at the raw checkpoint dictionary and raises ``ValueError`` if it is not what the caller
can load (e.g. another module's checkpoint, another task family)."""


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def load_lightning_module(
    cls: type[ModuleT],
    path: str | Path,
    map_location: str | torch.device = "cpu",
    check: CheckpointCheck | None = None,
    hint: str = "pass the .ckpt of a training run (runs/<name>/version_<n>/checkpoints/)",
) -> ModuleT:
    """``cls`` rebuilt from the Lightning checkpoint at ``path``, its tensors on ``map_location``.

    The file is read from disk once, into memory. Those bytes are deserialised
    (``weights_only=True``) into the raw checkpoint for ``check`` (if given) to inspect, and
    ``cls.load_from_checkpoint`` then rebuilds the module from the same bytes (also with
    ``weights_only=True``): Lightning's public loader, so its hyperparameter, ``LightningCLI``
    and version-migration handling applies unchanged. The price is a second deserialisation in
    memory, small beside building the module for the checkpoints the tools load.

    Raises:
        FileNotFoundError: ``path`` is not a file (the message ends with ``hint``, what to pass).
        ValueError: the file cannot be deserialised (corrupt, not a PyTorch file, or pickled
            Python objects), it is not a Lightning checkpoint, or ``check`` rejects it.
    """
    path = Path(path)
    if not path.is_file():
        what = "it is a directory" if path.is_dir() else "the file does not exist"
        raise FileNotFoundError(f"no checkpoint at {path} ({what}): {hint}")
    data = path.read_bytes()
    try:
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, not a torch file, or an unsafe pickle: one message
        message, reason = str(error), _first_line(error)
        if "Unsupported global" in message:  # a sound file that pickles a class: name the class
            found = message[message.index("Unsupported global") :].split(" was not")[0].split(": ", 1)[-1]
            reason = f"it pickles Python objects ({found}), which are not loaded for safety (weights_only=True)"
        raise ValueError(f"{path} is not a readable checkpoint ({reason})") from error
    if not isinstance(raw, dict) or not {"state_dict", "pytorch-lightning_version"} <= raw.keys():
        found = f"keys {sorted(map(str, raw))[:5]}" if isinstance(raw, dict) else f"a {type(raw).__name__}"
        raise ValueError(
            f"{path} is not a Lightning checkpoint (it has no 'state_dict' and 'pytorch-lightning_version'; "
            f"it holds {found}): {hint}"
        )
    if check is not None:
        check(raw)
    return cls.load_from_checkpoint(io.BytesIO(data), map_location=map_location, weights_only=True)


__all__ = ["CheckpointCheck", "load_lightning_module"]
