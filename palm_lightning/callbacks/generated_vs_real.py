"""A TensorBoard picture of a conditional generator beside the real data, one row per class.

The environment of PALM is only as good as its generator: if the generated frames of a game (or a
Fashion-MNIST class) do not look like the real ones, what the encoder learns is about another
world. :class:`GeneratedVsRealGrid` puts the two side by side where the run's curves are: each row
is a class, its left half ``samples_per_class`` generated images ``G(z, c)`` (fresh ``z``), a grey
gap, then as many real images of that class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torch.utils.data import Dataset

from palm_lightning.datamodules.images.base import ImageDataModule
from palm_lightning.envs.latent_manifold import to_uint8
from palm_lightning.generators import resolve_generator

Split = Literal["train", "test"]
GAP = 128  # the grey of the column between the halves and of missing real images


def real_images_by_class(source: Any, num_classes: int, per_class: int, split: Split, seed: int) -> list[Tensor]:
    """``per_class`` real images ``uint8 (n, C, H, W)`` of each class ``0 … num_classes−1`` (fewer
    when the data holds fewer), drawn with ``seed``.

    ``source``: an image DataModule (set up here if needed; its ``split`` set is used), or a dataset
    with ``images`` ``uint8 (N, C, H, W)`` and ``labels`` tensors (:class:`UInt8ImageDataset`,
    the Atari frames), or any dataset of ``(image, label)`` pairs (images in ``uint8`` or in
    ``[-1, 1]``).
    """
    dataset = source
    if isinstance(source, L.LightningDataModule):
        name = f"{split}_set"
        if getattr(source, name, None) is None:
            source.setup("fit" if split == "train" else "test")
        dataset = getattr(source, name, None)
        if dataset is None:
            raise ValueError(f"{type(source).__name__} has no {split} split after setup")
    images = getattr(dataset, "images", None)
    labels = getattr(dataset, "labels", None)
    if not (isinstance(images, Tensor) and isinstance(labels, Tensor)):
        pairs = [dataset[i] for i in range(len(dataset))]
        images = torch.stack([torch.as_tensor(p[0]) for p in pairs])
        labels = torch.as_tensor([int(p[1]) for p in pairs])
    if images.dtype != torch.uint8:
        images = to_uint8(images)
    generator = torch.Generator().manual_seed(seed)
    picked = []
    for k in range(num_classes):
        members = (labels == k).nonzero().flatten()
        order = members[torch.randperm(members.numel(), generator=generator)[:per_class]]
        picked.append(images[order])
    return picked


class GeneratedVsRealGrid(L.Callback):
    """Logs ``samples/generated_vs_real``: per class, generated samples (left) beside real images
    (right), to every logger with a TensorBoard ``add_image``, at the start of fit and every
    ``every_n_train_steps`` optimiser steps (0: only at the start — PALM's generator is frozen,
    one picture says it all).

    Args:
        generator: the generator (a network file or checkpoint, a shipped name, an ``nn.Module``);
            ``None``: the attached DataModule's ``generator`` (PALM's environment generator).
        real_data: labelled real images — an image DataModule or a dataset (see
            :func:`real_images_by_class`); ``None``: the attached DataModule's ``probe_data``
            (PALM's online-probe images: no second copy of the data in memory).
        samples_per_class: images per class on each side.
        split: which split the real images come from.
        truncation_psi: ψ of the generated samples; ``None``: the environment's
            (``LatentManifoldDataModule``'s ``truncation_psi``), else 1.
        every_n_train_steps: log again every that many optimiser steps (0: only at fit start).
        seed: seed of the latents and of the choice of real images (the same picture every time
            for a frozen generator).
        tag: the image's name in TensorBoard.
    """

    def __init__(
        self,
        generator: str | nn.Module | None = None,
        real_data: ImageDataModule | Dataset | None = None,
        samples_per_class: int = 8,
        split: Split = "train",
        truncation_psi: float | None = None,
        every_n_train_steps: int = 0,
        seed: int = 0,
        tag: str = "samples/generated_vs_real",
    ) -> None:
        super().__init__()
        if samples_per_class < 1:
            raise ValueError(f"samples_per_class must be ≥ 1, got {samples_per_class}")
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be ≥ 0, got {every_n_train_steps}")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.generator_source = generator
        self.real_data = real_data
        self.samples_per_class = samples_per_class
        self.split: Split = split
        self.truncation_psi = truncation_psi
        self.every_n_train_steps = every_n_train_steps
        self.seed = seed
        self.tag = tag
        self._generator: nn.Module | None = None
        self._real: list[Tensor] | None = None
        self._logged_step = -1

    # --- what is drawn ----------------------------------------------------------------------------
    def generator(self, trainer: L.Trainer) -> nn.Module:
        """The generator to draw from (see ``generator``)."""
        if self.generator_source is None:
            found = getattr(datamodule_of(trainer), "generator", None)
            if not isinstance(found, nn.Module):
                raise ValueError(
                    "GeneratedVsRealGrid: no generator given and the DataModule has none "
                    "(give generator: <network file>)"
                )
            return found
        if self._generator is None:
            self._generator = resolve_generator(self.generator_source).eval().requires_grad_(False)
        return self._generator

    def psi(self, trainer: L.Trainer) -> float:
        if self.truncation_psi is not None:
            return self.truncation_psi
        settings = getattr(datamodule_of(trainer), "env_settings", None)  # a LatentManifoldDataModule's
        return float(settings["truncation_psi"]) if isinstance(settings, dict) else 1.0

    @torch.no_grad()
    def generated(self, generator: nn.Module, psi: float) -> Tensor:
        """``uint8 (K, samples_per_class, C, H, W)``: fresh samples of each of the K classes."""
        g: Any = generator  # the protocol's fields (num_classes, latent_dim) are untyped on nn.Module
        k, n = int(g.num_classes), self.samples_per_class
        device = next(generator.parameters(), torch.zeros(())).device
        noise = torch.Generator().manual_seed(self.seed)
        z = torch.randn(k * n, int(g.latent_dim), generator=noise).to(device)
        c = torch.arange(k, device=device).repeat_interleave(n)
        images = g(z, c) if psi == 1.0 else g(z, c, truncation_psi=psi)
        return to_uint8(images.clamp(-1, 1)).cpu().view(k, n, *images.shape[1:])

    def real(self, trainer: L.Trainer, num_classes: int) -> list[Tensor]:
        """The real images of every class, chosen once."""
        if self._real is None:
            source = (
                self.real_data if self.real_data is not None else getattr(datamodule_of(trainer), "probe_data", None)
            )
            if source is None:
                rank_zero_warn("GeneratedVsRealGrid: no real images (no real_data, no probe_data): generated only")
                self._real = [torch.zeros(0, dtype=torch.uint8) for _ in range(num_classes)]
            else:
                self._real = real_images_by_class(source, num_classes, self.samples_per_class, self.split, self.seed)
        return self._real

    def grid(self, trainer: L.Trainer) -> Tensor:
        """The picture: ``float (3, H', W')`` in ``[0, 1]``, one row per class."""
        from torchvision.utils import make_grid

        generator = self.generator(trainer)
        fake = self.generated(generator, self.psi(trainer))
        k, n, shape = fake.shape[0], fake.shape[1], tuple(fake.shape[2:])
        real = self.real(trainer, k)
        for label, images in enumerate(real):
            if images.numel() and tuple(images.shape[1:]) != shape:
                raise ValueError(
                    f"GeneratedVsRealGrid: real images of class {label} are {tuple(images.shape[1:])}, the "
                    f"generator makes {shape}: give real data at the generator's resolution"
                )
        gap = torch.full((1, *shape), GAP, dtype=torch.uint8)
        rows = []
        for label in range(k):
            images = real[label] if label < len(real) else torch.zeros(0, *shape, dtype=torch.uint8)
            filler = gap.expand(n - images.shape[0], *shape)
            rows.append(torch.cat([fake[label], gap, images, filler]))
        tiles = torch.cat(rows).float() / 255.0
        return make_grid(tiles, nrow=2 * n + 1, padding=1, pad_value=0.5)

    # --- when -------------------------------------------------------------------------------------
    def log_grid(self, trainer: L.Trainer) -> None:
        if not trainer.is_global_zero:
            return
        experiments: list[Any] = [getattr(logger, "experiment", None) for logger in trainer.loggers]
        writers = [w for w in experiments if hasattr(w, "add_image")]
        if not writers:
            return
        self._logged_step = trainer.global_step
        grid = self.grid(trainer)
        for writer in writers:
            writer.add_image(self.tag, grid, global_step=trainer.global_step)
            names = class_names(trainer, self.real_data)
            if names and hasattr(writer, "add_text"):
                rows = ", ".join(f"{i}: {name}" for i, name in enumerate(names))
                writer.add_text(f"{self.tag}/rows", f"rows (classes): {rows}", global_step=trainer.global_step)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.log_grid(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        due = self.every_n_train_steps and step > 0 and step % self.every_n_train_steps == 0
        if due and step != self._logged_step:  # manual optimisation: several batches can end on one step
            self.log_grid(trainer)


def datamodule_of(trainer: L.Trainer) -> Any:
    """The trainer's DataModule (Lightning sets the attribute without declaring it), or ``None``."""
    return getattr(trainer, "datamodule", None)


def class_names(trainer: L.Trainer, real_data: Any) -> Sequence[str]:
    """The class names of the real data, where it has them (an image DataModule's ``class_names``)."""
    source = real_data if real_data is not None else getattr(datamodule_of(trainer), "probe_data", None)
    return tuple(getattr(source, "class_names", ()) or ())
