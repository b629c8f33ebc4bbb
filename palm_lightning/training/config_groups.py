"""Settings grouped by concern: frozen dataclasses taken as constructor parameters.

Why: a setting's name, type and default are written once, in the dataclass of the part that owns it
(an agent owns its ``*Config``), and a LightningModule that composes the part takes the whole group
(``agent: DDPGConfig = DDPGConfig()``) instead of restating its fields. jsonargparse and LightningCLI
read a group as nested keys (``--model.init_args.agent.lr 1e-4``, or ``agent: {lr: 1e-4}`` in YAML)
and ``--print_config`` shows every field.

A checkpoint stores each group as a plain dict (:func:`record_groups`), so it loads with
``torch.load(weights_only=True)``; the constructor turns the dict back into the dataclass
(:func:`as_config`). A checkpoint saved while the settings were flat still loads
(:class:`UpgradesGroupedSettings`).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

C = TypeVar("C")


def as_config(cls: type[C], value: C | Mapping[str, Any] | None, name: str) -> C:
    """``value`` as a ``cls`` dataclass: the instance itself, the dataclass's defaults for ``None``,
    or built from a mapping (a checkpoint's hyperparameters, a YAML block). An unknown key is a
    ``ValueError`` naming it, the group ``name`` and the valid keys."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]  # cls is a dataclass
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"{name}: unknown setting(s) {unknown}; {cls.__name__} has {sorted(fields)}")
        return cls(**value)
    raise TypeError(f"{name} must be a {cls.__name__} or a mapping of its fields, got {type(value).__name__}")


def record_groups(hparams: Any, **groups: object) -> None:
    """Store each dataclass group in ``hparams`` (a LightningModule's ``self.hparams``) as a dict."""
    for key, group in groups.items():
        hparams[key] = dataclasses.asdict(group)  # type: ignore[call-overload]  # a dataclass instance


def upgrade_grouped_settings(hparams: dict[str, Any], renames: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Rewrite a checkpoint's hyperparameters saved before settings were grouped, in place: each old
    flat key of ``renames`` present in ``hparams`` is copied to its targets (``"agent.lr"``: field
    ``lr`` of group ``agent``; a target without a dot is a flat key kept as it is) and removed
    unless it is one of its own targets. Returns the old keys it moved."""
    moved = []
    for old, targets in renames.items():
        if old not in hparams:
            continue
        value = hparams[old]
        for target in targets:
            group, _, field = target.rpartition(".")
            if group:
                existing = hparams.get(group)
                hparams[group] = {**(existing if isinstance(existing, Mapping) else {}), field: value}
        if old not in targets:
            del hparams[old]
        moved.append(old)
    return moved


class UpgradesGroupedSettings:
    """Mixin for a LightningModule whose settings were once flat: ``load_from_checkpoint`` reads an
    older checkpoint too, by moving its flat keys into their groups (``legacy_settings``: old key →
    targets, see :func:`upgrade_grouped_settings`) before Lightning rebuilds the module. A current
    checkpoint is passed on untouched."""

    legacy_settings: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        source = checkpoint_path
        if cls.legacy_settings and isinstance(checkpoint_path, (str, Path, io.IOBase)):
            data = (
                Path(checkpoint_path).read_bytes()
                if not isinstance(checkpoint_path, io.IOBase)
                else checkpoint_path.read()
            )
            raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            hparams = raw.get("hyper_parameters") if isinstance(raw, dict) else None
            if isinstance(hparams, dict) and upgrade_grouped_settings(hparams, cls.legacy_settings):
                buffer = io.BytesIO()
                torch.save(raw, buffer)
                data = buffer.getvalue()
            source = io.BytesIO(data)
        return super().load_from_checkpoint(source, *args, **kwargs)  # type: ignore[misc]  # LightningModule's


def typed_view(cls: type[C], arguments: Mapping[str, Any]) -> C:
    """The module's typed settings view ``cls`` (a dataclass whose fields are some of the
    constructor's parameters, same names and types) from the constructor's ``locals()``: the
    arguments are not copied by hand, and ``tests/test_typed_views.py`` checks that every view's
    fields match its constructor's signature."""
    return cls(**{f.name: arguments[f.name] for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
