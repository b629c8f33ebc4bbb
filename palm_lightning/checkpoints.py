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
import zipfile
from collections.abc import Mapping
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


def describe(network: nn.Module, kind: str, meta: dict[str, Any] | None = None, half: bool = False) -> dict[str, Any]:
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


NETWORK_FILE_HINT = (
    "Give the path of a network file (exported with `python -m palm_lightning.tools.export`) or of a "
    "Lightning .ckpt written by one of the package's modules."
)
LIGHTNING_CKPT_HINT = "Give a .ckpt written by the Trainer, e.g. runs/<name>/version_<n>/checkpoints/last.ckpt."
NETWORK_FILE_REDO = "Re-export or re-download it."
LIGHTNING_CKPT_REDO = "Give another checkpoint, e.g. an earlier one from the same checkpoints/ folder."
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive (since PyTorch 1.6)
_LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # pickle protocol 2, then the 10-byte magic number of older torch.save


def _unreadable_reason(path: Path, err: Exception, redo: str = NETWORK_FILE_REDO) -> str:
    """Why ``torch.load`` failed on ``path`` and (``redo`` for a damaged file) what to do, in a
    sentence or two: from the file itself where possible, since torch's own messages run to
    paragraphs about ``weights_only``."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as os_err:
        return f"it cannot be opened ({os_err.strerror or os_err}). Check its permissions."
    if size == 0:
        return f"it is corrupt: the file is empty (0 bytes). {redo}"
    if head.startswith(_ZIP_MAGIC) and not zipfile.is_zipfile(path):
        return (
            f"it is corrupt: a PyTorch archive cut short or damaged ({size} bytes; an interrupted save, "
            f"copy or download?). {redo}"
        )
    if head.startswith(_LEGACY_MAGIC):
        return f"it is corrupt: a legacy-format PyTorch file cut short or damaged ({size} bytes). {redo}"
    if not head.startswith(_ZIP_MAGIC):
        text = head.decode("ascii", errors="replace")
        if all(c.isprintable() or c in "\r\n\t" for c in text):  # e.g. an error page saved by a failed download
            start = f"the text {text.splitlines()[0]!r}"
        else:
            start = f"the bytes {head[:8]!r}"
        return f"it is corrupt or not a PyTorch file (it starts with {start}; a PyTorch file is a zip archive). {redo}"
    message = str(err)
    if "Unsupported global" in message:  # a sound file that pickles classes, refused by weights_only=True
        found = message[message.index("Unsupported global") :].split(" was not")[0].split(": ", 1)[-1]
        return (
            f"it holds pickled Python objects ({found}), which are not loaded for safety "
            "(torch.load with weights_only=True). Save only tensors and plain containers in it."
        )
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    detail = f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__
    return f"it is corrupt ({detail}). {redo}"


def _read(
    path: Path, hint: str = NETWORK_FILE_HINT, redo: str = NETWORK_FILE_REDO, mmap: bool = False
) -> dict[str, Any]:
    """The dictionary stored in ``path``, or a :class:`CheckpointError` naming the file, what is wrong
    and what to do (``hint``: which file to give; ``redo``: how to replace a damaged one). ``mmap``
    maps tensor storages instead of reading them (a cheap check of a large checkpoint; only for
    files in the zip format)."""
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the file does not exist. {hint}")
    if not path.is_file():
        what = "a directory" if path.is_dir() else "not a regular file"
        raise CheckpointError(f"no checkpoint at {path}: it is {what}. {hint}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as err:  # truncated file, not a torch file, unsafe pickle, no permission
        raise CheckpointError(f"cannot read {path}: {_unreadable_reason(path, err, redo)}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint dictionary. {hint}")
    return obj


def read_lightning_checkpoint(path: str | Path, mmap: bool = True) -> dict[str, Any]:
    """The Lightning checkpoint in ``path`` (what ``--ckpt_path`` takes), checked to be one.

    Raises :class:`CheckpointError` for a missing, unreadable or corrupt file, and for a file that
    is not a Lightning checkpoint (e.g. an exported network file, which belongs in a probe's
    ``encoder`` or a data module's ``generator``). With ``mmap`` (the default) tensors are mapped,
    not read, so checking a large checkpoint costs little.
    """
    path = Path(path)
    obj = _read(path, hint=LIGHTNING_CKPT_HINT, redo=LIGHTNING_CKPT_REDO, mmap=mmap)
    if obj.get("format") == FORMAT:
        raise CheckpointError(
            f"{path} is a palm_lightning network file (a {obj.get('kind', 'network')!r}), not a Lightning "
            "checkpoint: give it as a probe's encoder or a data module's generator, not as a checkpoint "
            f"to resume from. {LIGHTNING_CKPT_HINT}"
        )
    if "state_dict" not in obj:
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint (no 'state_dict' entry; keys: {sorted(map(str, obj))[:5]}). "
            f"{LIGHTNING_CKPT_HINT}"
        )
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
    load_state(network, description.get("state_dict", {}), source, f"{class_path}({description.get('config')})")
    return network


def _listed(items: list[str], limit: int = 5) -> str:
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return f"{items[:limit]}{more}"


def state_mismatch(network: nn.Module, state: Mapping[str, Any]) -> str:
    """What keeps ``state`` from loading into ``network`` exactly: missing and unexpected keys and
    shape mismatches, each named (the first five of each), or ``""`` when it fits."""
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and isinstance(state[k], torch.Tensor) and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    parts = (
        f"missing {_listed(missing)}" if missing else "",
        f"unexpected {_listed(unexpected)}" if unexpected else "",
        f"shape mismatch {_listed(mismatched)}" if mismatched else "",
    )
    return "; ".join(part for part in parts if part)


def load_state(network: nn.Module, state: Mapping[str, Any], source: str, target: str | None = None) -> nn.Module:
    """Load ``state`` into ``network`` (strictly), or raise a :class:`CheckpointError` naming
    ``source``, the network (``target``, default its class) and every key or shape that does not fit."""
    details = state_mismatch(network, state)
    if details:
        cls = type(network)
        raise CheckpointError(
            f"{source}: weights do not fit {target or f'{cls.__module__}.{cls.__qualname__}'}: {details}"
        )
    network.load_state_dict(state)
    return network


STATE_DICT_HINT = "Save the generator's weights with torch.save(generator.state_dict(), PATH)."


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], str | None]:
    """The weights in ``path`` and the class they were saved from, if the file names it.

    ``path`` is a plain ``state_dict`` (``torch.save(module.state_dict(), path)``), a network file,
    or a Lightning checkpoint of one of the package's modules; it is read with
    ``weights_only=True``, so it never imports code.
    """
    path = Path(path)
    obj = _read(path, hint=STATE_DICT_HINT)
    if obj.get("format") == FORMAT or CKPT_KEY in obj:
        description = obj if obj.get("format") == FORMAT else obj[CKPT_KEY]
        return dict(description.get("state_dict", {})), description.get("class_path")
    if "state_dict" in obj and "pytorch-lightning_version" in obj:
        raise CheckpointError(
            f"{path} is a Lightning checkpoint of a whole module, not a generator's weights. {STATE_DICT_HINT}"
        )
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        nested = " (its 'state_dict' entry alone may be one)" if "state_dict" in obj else ""
        raise CheckpointError(
            f"{path} is not a plain state_dict: {_listed(not_tensors, 3)} hold no tensors{nested}. {STATE_DICT_HINT}"
        )
    return {str(k): v for k, v in obj.items()}, None


def load_weights(network: nn.Module, path: str | Path) -> nn.Module:
    """Load the weights in ``path`` (see :func:`read_weights`) into ``network``, strictly: missing or
    unexpected keys and shape mismatches are named in a :class:`CheckpointError`."""
    state, saved_from = read_weights(path)
    cls = type(network)
    target = f"{cls.__module__}.{cls.__qualname__}"
    if saved_from is not None and saved_from != target and state_mismatch(network, state):
        target += f" (the file holds the weights of a {saved_from})"
    return load_state(network, state, str(path), target)


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
    for attr, wanted in (expect or {}).items():
        actual = getattr(network, attr, None)
        expected = wanted
        if isinstance(wanted, (list, tuple)):
            actual, expected = tuple(actual) if actual is not None else None, tuple(wanted)
        if actual != expected:
            raise CheckpointError(f"{path}: {attr} is {actual!r}, expected {expected!r}")
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
