"""Network files: the arrows between pipeline stages (generator → environment, encoder → probe).

A *network file* holds one plain ``nn.Module`` — its import path, constructor arguments and
weights — and nothing executable, so it loads with ``torch.load(weights_only=True)``::

    {"format": "palm_lightning/network", "version": 1, "kind": "generator",
     "class_path": "palm_lightning.nn.stylegan.StyleGANGenerator",
     "config": {...constructor kwargs...}, "state_dict": {...}, "meta": {...}}

:func:`load_network` also reads Lightning checkpoints of the package's modules: they carry the
same description under the ``"palm_lightning_network"`` key (see
:meth:`ExportableMixin.on_save_checkpoint`). Every failure — missing file, unreadable file,
another kind of network, shapes that differ — is one :class:`CheckpointError` naming the file and
what was expected.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "palm_lightning/network"
VERSION = 1
CKPT_KEY = "palm_lightning_network"
ALLOWED_PREFIX = "palm_lightning."  # network classes are only imported from this package
PACKAGED_WEIGHTS = Path(__file__).resolve().parent / "weights"


class CheckpointError(RuntimeError):
    """A network file or checkpoint is missing, unreadable or not what was expected."""


def describe(
    network: nn.Module, kind: str, meta: dict[str, Any] | None = None, half: bool = False
) -> dict[str, Any]:
    """The network-file dictionary for ``network`` (which must have a ``config`` dict).

    ``half`` stores floating-point tensors as float16 (half the size); loading casts them back
    to the network's own dtype.
    """
    config = getattr(network, "config", None)
    if not isinstance(config, dict):
        raise TypeError(f"{type(network).__name__} needs a `config` dict of its constructor arguments")
    cls = type(network)
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "class_path": f"{cls.__module__}.{cls.__qualname__}",
        "config": dict(config),
        "state_dict": {
            k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu().clone())
            for k, v in network.state_dict().items()
        },
        "meta": dict(meta or {}),
    }


def save_network(
    network: nn.Module, path: str | Path, kind: str, meta: dict[str, Any] | None = None, half: bool = False
) -> Path:
    """Write ``network`` as a network file, atomically (a failed write never clobbers ``path``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(describe(network, kind, meta, half), partial)
    partial.replace(path)
    return path


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: the file does not exist. Give the path of a network file "
            "(exported with `python -m palm_lightning.tools.export`) or of a Lightning .ckpt "
            "written by one of the package's modules."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, not a torch file, unsafe pickle
        raise CheckpointError(
            f"cannot read {path}: it is corrupt or not a PyTorch checkpoint ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Re-export or re-download it."
        ) from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dictionary")
    return obj


def read_description(path: str | Path) -> dict[str, Any]:
    """The network description inside a network file or a package Lightning checkpoint."""
    path = Path(path)
    obj = _read(path)
    if obj.get("format") == FORMAT:
        return obj
    if CKPT_KEY in obj:
        return obj[CKPT_KEY]
    if "state_dict" in obj and "pytorch-lightning_version" in obj:
        raise CheckpointError(
            f"{path} is a Lightning checkpoint without a palm_lightning network description "
            "(it was not written by one of this package's modules). Export its network with "
            "`python -m palm_lightning.tools.export --module CLASS --checkpoint PATH --out FILE`."
        )
    raise CheckpointError(f"{path} is not a palm_lightning network file (no '{FORMAT}' format tag)")


def build_network(description: dict[str, Any], source: str = "<description>", load_weights: bool = True) -> nn.Module:
    """Instantiate the described network and load its weights, with errors naming ``source``.

    With ``load_weights=False`` the network keeps its fresh initialisation (drawn from the current
    RNG state, e.g. after ``seed_everything``): the same architecture, none of the stored weights.
    """
    class_path = description.get("class_path", "")
    if not class_path.startswith(ALLOWED_PREFIX):
        raise CheckpointError(f"{source}: refusing to import network class {class_path!r} (outside palm_lightning)")
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise CheckpointError(f"{source}: network class {class_path} does not exist in this version") from err
    try:
        network = cls(**description.get("config", {}))
    except TypeError as err:
        raise CheckpointError(f"{source}: config does not fit {class_path}: {err}") from err
    if not load_weights:
        return network
    state = description.get("state_dict", {})
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        details = "; ".join(
            part
            for part in (
                f"missing {missing[:5]}" if missing else "",
                f"unexpected {unexpected[:5]}" if unexpected else "",
                f"shape mismatch {mismatched[:5]}" if mismatched else "",
            )
            if part
        )
        raise CheckpointError(f"{source}: weights do not fit {class_path}({description.get('config')}): {details}")
    network.load_state_dict(state)
    return network


def load_network(path: str | Path, kind: str | None = None, expect: dict[str, Any] | None = None) -> nn.Module:
    """Load the network stored in ``path``, checking its ``kind`` and expected attributes.

    Args:
        path: a network file or a Lightning checkpoint of one of the package's modules.
        kind: required kind (``"generator"``, ``"classifier"``, ``"encoder"``), or ``None``.
        expect: attribute values the network must have, e.g. ``{"latent_dim": 64}``.
    """
    description = read_description(path)
    found = description.get("kind")
    if kind is not None and found != kind:
        raise CheckpointError(f"{path} holds a {found!r} network, but a {kind!r} was expected")
    network = build_network(description, source=str(path))
    for attr, value in (expect or {}).items():
        actual = getattr(network, attr, None)
        if isinstance(value, (list, tuple)):
            actual, value = tuple(actual) if actual is not None else None, tuple(value)
        if actual != value:
            raise CheckpointError(f"{path}: {attr} is {actual!r}, expected {value!r}")
    return network.eval()


def packaged(name: str) -> Path:
    """Path of a network file shipped inside the package (``palm_lightning/weights/``)."""
    path = PACKAGED_WEIGHTS / name
    if not path.is_file():
        raise CheckpointError(f"packaged weights {name!r} are missing from {PACKAGED_WEIGHTS}; reinstall the package")
    return path


class ExportableMixin:
    """For LightningModules: put a network description into every checkpoint they save.

    Subclasses implement :meth:`exported_network` (which ``nn.Module`` to export, e.g. the EMA
    generator) and set ``network_kind``. Their ``.ckpt`` files then load with :func:`load_network`.
    """

    network_kind: str = "network"

    def exported_network(self) -> nn.Module:
        raise NotImplementedError

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CKPT_KEY] = describe(self.exported_network(), self.network_kind)
