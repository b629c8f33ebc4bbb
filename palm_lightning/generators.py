"""Which generator the latent environment decodes with, and with which weights.

A generator is given in one of four forms (:data:`GeneratorSource`):

- ``None``: the package's default shipped generator (Fashion-MNIST, 32×32), or the *name* of a
  shipped one (``"fmnist_vaegan"``, ``"fmnist_stylegan"``; see :data:`palm_lightning.SHIPPED_GENERATORS`);
- a path to a network file or a Lightning checkpoint of one of the package's modules (see
  :mod:`palm_lightning.checkpoints`; classes are imported only from ``palm_lightning.``);
- a ``{"class_path": "my_pkg.MyGenerator", "init_args": {...}}`` mapping naming *any* importable
  ``nn.Module`` (the user's own code, as in a config file), instantiated with ``init_args``;
- an ``nn.Module`` object (what the command line passes once jsonargparse has instantiated a
  ``class_path``).

Separately, ``weights`` (a plain ``state_dict`` file, or a network file) are loaded into it with
``torch.load(weights_only=True)``: a weights file never imports code, and missing or unexpected
keys and shape mismatches are named (:func:`palm_lightning.checkpoints.load_weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from palm_lightning import class_paths
from palm_lightning.checkpoints import CheckpointError, load_network, load_weights

GeneratorSource = nn.Module | str | Path | Mapping[str, Any] | None
"""A generator object, a network file, a ``class_path``/``init_args`` mapping, or ``None`` (shipped)."""

_FILE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".tar"}


class GeneratorConfigError(ValueError):
    """A generator's ``class_path`` cannot be imported, or its ``init_args`` do not fit the class."""


def import_class(class_path: str) -> type[nn.Module]:
    """The ``nn.Module`` subclass at ``class_path`` (``"my_pkg.module.MyGenerator"``), or a
    :class:`GeneratorConfigError` naming the module that cannot be imported or the missing class."""
    return class_paths.import_class(class_path, nn.Module, GeneratorConfigError, base_name="torch.nn.Module")


def instantiate_generator(spec: Mapping[str, Any]) -> nn.Module:
    """``spec["class_path"](**spec["init_args"])``, with errors naming the class and the arguments."""
    unknown = sorted(set(spec) - {"class_path", "init_args"})
    if "class_path" not in spec or unknown:
        raise GeneratorConfigError(
            f"a generator given as a mapping needs 'class_path' (and optionally 'init_args'), got keys {sorted(spec)}"
        )
    class_path = str(spec["class_path"])
    init_args = spec.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise GeneratorConfigError(f"{class_path}: init_args must be a mapping, got {type(init_args).__name__}")
    cls = import_class(class_path)
    try:
        return cls(**init_args)
    except TypeError as err:
        raise GeneratorConfigError(f"{class_path}: init_args {dict(init_args)} do not fit: {err}") from err


def _load_file(path: str | Path) -> nn.Module:
    try:
        return load_network(path, kind="generator")
    except CheckpointError as err:
        text = str(path)
        if not Path(text).exists() and class_paths.DOTTED.match(text) and Path(text).suffix not in _FILE_SUFFIXES:
            raise CheckpointError(
                f"{err} If {text!r} is a class, give it as the generator's class_path "
                f"(generator: {{class_path: {text}}}, or --data.init_args.generator.class_path {text})."
            ) from err
        raise


def _is_shipped_name(text: str) -> bool:
    """``text`` names a shipped generator and no file of that name exists (a file always wins)."""
    from palm_lightning import SHIPPED_GENERATORS

    return text in SHIPPED_GENERATORS and not Path(text).exists()


def resolve_generator(generator: GeneratorSource = None, weights: str | Path | None = None) -> nn.Module:
    """The generator ``generator`` describes (see :data:`GeneratorSource`), with ``weights`` loaded.

    The result is not yet checked against the protocol: :func:`palm_lightning.nn.protocols.check_generator`
    does that (the latent environment calls it).
    """
    if generator is None:
        from palm_lightning import load_shipped_generator

        network = load_shipped_generator()
    elif isinstance(generator, str) and _is_shipped_name(generator):
        from palm_lightning import load_shipped_generator

        network = load_shipped_generator(generator)
    elif isinstance(generator, (str, Path)):
        network = _load_file(generator)
    elif isinstance(generator, Mapping):
        network = instantiate_generator(generator)
    else:
        network = generator
    if weights is not None:
        if not isinstance(network, nn.Module):
            raise GeneratorConfigError(
                f"generator weights {weights} need an nn.Module generator, got {type(network).__name__}"
            )
        load_weights(network, weights)
    return network
