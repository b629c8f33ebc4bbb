"""Training a class-conditional StyleGAN2 as a LightningModule.

One *iteration* is one discriminator step (plus, every ``r1_interval`` iterations, the lazy R1
penalty folded into it) followed by one generator step and an EMA update of the sampling
generator. Manual optimisation: Lightning's ``global_step`` counts optimiser steps, so it is **two
per iteration** — ``trainer.max_steps: 20000`` trains 10 000 iterations. The module keeps its own
``iterations`` and ``images_seen`` counters (saved in checkpoints) and logs them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.utils import make_grid

from palm_lightning.checkpoints import ExportableMixin
from palm_lightning.nn.stylegan import ProjectionDiscriminator, StyleGANGenerator
from palm_lightning.training.config_groups import typed_view
from palm_lightning.training.typed_lightning import module_optimizers


@dataclass(frozen=True)
class ConditionalStyleGANHParams:
    """The GAN's hyperparameters, typed: its constructor's arguments (the values
    ``self.hparams`` holds)."""

    num_classes: int
    img_resolution: int
    img_channels: int
    z_dim: int
    w_dim: int
    mapping_layers: int
    channel_base: int
    channel_max: int
    lr: float
    betas: tuple[float, float]
    r1_gamma: float
    r1_interval: int
    ema_half_life_images: float
    ema_rampup: float | None
    mode_seeking_weight: float
    sample_every_n_iterations: int
    samples_per_class: int
    sample_truncation_psi: float


class ConditionalStyleGAN(ExportableMixin, L.LightningModule):
    """Class-conditional StyleGAN2 with a projection discriminator.

    Loss: non-saturating logistic (``softplus``) for both players; lazy R1 on real images
    (γ/2·‖∇D(x)‖², applied every ``r1_interval`` iterations and scaled by it, with Adam's
    hyperparameters corrected for the lazy schedule as in StyleGAN2). The EMA generator
    ``generator_ema`` is the one to sample and to ship.

    Args:
        num_classes: number of class labels (must match the data).
        img_resolution, img_channels: image shape (must match the data).
        z_dim, w_dim, mapping_layers, channel_base, channel_max: generator size, see
            :class:`~palm_lightning.nn.stylegan.StyleGANGenerator` (the discriminator uses the same
            channel schedule).
        lr: Adam learning rate of both networks (StyleGAN2: 0.0025).
        betas: Adam betas (StyleGAN2: (0, 0.99)).
        r1_gamma: R1 weight γ. Our default 0.1 for 32×32 grayscale (StyleGAN2-ADA's heuristic,
            ``0.0002·res²/batch``, gives ~0.006; a larger γ keeps training stable at this size).
        r1_interval: lazy-regularisation interval in iterations (StyleGAN2: 16).
        ema_half_life_images: half-life of the generator EMA in images (StyleGAN2: 10k images).
        ema_rampup: during early training the half-life is at most ``ema_rampup × images_seen``.
        mode_seeking_weight: weight λ of the mode-seeking term (Mao et al., MSGAN, CVPR 2019) added
            to the generator loss: pairs of samples share a label, and ``λ / (mean|G(z₁)−G(z₂)| /
            mean|z₁−z₂|)`` is minimised. Without it (λ = 0) a 32×32 Fashion-MNIST generator collapses
            *within* each class — the image barely depends on z while conditional accuracy looks
            fine — which would leave the latent environment nothing to explore. StyleGAN's
            minibatch-std layer does not see this collapse: its groups mix classes.
        sample_every_n_iterations: how often to log a grid of EMA samples (one row per class).
        samples_per_class: columns of that grid.
        sample_truncation_psi: truncation used for the logged grid.

    Its checkpoints carry the EMA generator as a network description, so a ``.ckpt`` loads
    directly with :func:`palm_lightning.checkpoints.load_network` (kind ``"generator"``).
    """

    iterations: Tensor  # buffers (registered in __init__)
    images_seen: Tensor
    sample_z: Tensor

    network_kind = "generator"

    def __init__(
        self,
        num_classes: int = 10,
        img_resolution: int = 32,
        img_channels: int = 1,
        z_dim: int = 64,
        w_dim: int = 128,
        mapping_layers: int = 4,
        channel_base: int = 512,
        channel_max: int = 128,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.0, 0.99),
        r1_gamma: float = 0.1,
        r1_interval: int = 16,
        ema_half_life_images: float = 10_000,
        ema_rampup: float | None = 0.05,
        mode_seeking_weight: float = 1.0,
        sample_every_n_iterations: int = 500,
        samples_per_class: int = 10,
        sample_truncation_psi: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hp = typed_view(ConditionalStyleGANHParams, locals())
        self.automatic_optimization = False
        self.generator = StyleGANGenerator(
            z_dim=z_dim,
            w_dim=w_dim,
            num_classes=num_classes,
            img_resolution=img_resolution,
            img_channels=img_channels,
            mapping_layers=mapping_layers,
            channel_base=channel_base,
            channel_max=channel_max,
        )
        self.discriminator = ProjectionDiscriminator(
            num_classes=num_classes,
            img_resolution=img_resolution,
            img_channels=img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
        )
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self.register_buffer("iterations", torch.zeros((), dtype=torch.long))
        self.register_buffer("images_seen", torch.zeros((), dtype=torch.long))
        fixed = torch.Generator().manual_seed(1234)
        self.register_buffer("sample_z", torch.randn(samples_per_class, z_dim, generator=fixed), persistent=False)

    # --- set-up -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None:
            return
        expected = (self.hp.img_channels, self.hp.img_resolution, self.hp.img_resolution)
        shape = tuple(getattr(datamodule, "image_shape", expected))
        classes = getattr(datamodule, "num_classes", self.hp.num_classes)
        if shape != expected or classes != self.hp.num_classes:
            raise ValueError(
                f"model/data mismatch: the model is built for {self.hp.num_classes} classes of "
                f"{expected} images but {type(datamodule).__name__} gives {classes} classes of {shape}. "
                "Set model.init_args.num_classes / img_channels / img_resolution to match the data."
            )

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        lr, (b1, b2) = self.hp.lr, self.hp.betas
        ratio = self.hp.r1_interval / (self.hp.r1_interval + 1) if self.hp.r1_gamma > 0 else 1.0
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(b1, b2), eps=1e-8)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=lr * ratio, betas=(b1**ratio, b2**ratio), eps=1e-8)
        return [opt_g, opt_d]

    def exported_network(self) -> StyleGANGenerator:
        return self.generator_ema

    # --- training -----------------------------------------------------------------------------
    def sample_labels(self, real_labels: Tensor) -> Tensor:
        """Labels for fake images: a shuffle of the real batch's labels (the data's class mix)."""
        return real_labels[torch.randperm(real_labels.shape[0], device=real_labels.device)]

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        real, labels = batch
        n = real.shape[0]
        opt_g, opt_d = module_optimizers(self)
        z_dim = self.hp.z_dim

        # Discriminator: logistic loss, plus lazy R1 on this iteration's real batch.
        do_r1 = self.hp.r1_gamma > 0 and int(self.iterations) % self.hp.r1_interval == 0
        self.discriminator.requires_grad_(True)
        with torch.no_grad():
            c_fake = self.sample_labels(labels)
            fake = self.generator.generate(torch.randn(n, z_dim, device=self.device), c_fake)
        real_in = real.detach().requires_grad_(do_r1)
        d_real = self.discriminator(real_in, labels)
        d_fake = self.discriminator(fake, c_fake)
        loss_d = F.softplus(d_fake).mean() + F.softplus(-d_real).mean()
        loss_total = loss_d
        if do_r1:
            (grad,) = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
            r1 = grad.square().sum(dim=(1, 2, 3)).mean()
            loss_total = loss_d + r1 * (self.hp.r1_gamma / 2) * self.hp.r1_interval
            self.log("train/r1_penalty", r1.detach())
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_total)
        opt_d.step()

        # Generator: non-saturating loss; D's parameters need no gradients here.
        self.discriminator.requires_grad_(False)
        c_gen = self.sample_labels(labels)
        pairs = n // 2 if self.hp.mode_seeking_weight > 0 else 0
        if pairs:
            c_gen = torch.cat([c_gen[:pairs], c_gen[:pairs], c_gen[2 * pairs :]])  # pair i ↔ i + pairs
        z = torch.randn(n, z_dim, device=self.device)
        fake = self.generator.generate(z, c_gen, update_w_avg=True)
        loss_g = F.softplus(-self.discriminator(fake, c_gen)).mean()
        loss_g_total = loss_g + self.extra_generator_loss(real, labels)
        if pairs:
            loss_ms = mode_seeking_loss(fake[:pairs], fake[pairs : 2 * pairs], z[:pairs], z[pairs : 2 * pairs])
            loss_g_total = loss_g_total + self.hp.mode_seeking_weight * loss_ms
            self.log("train/loss_mode_seeking", loss_ms.detach())
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g_total)
        opt_g.step()
        self.discriminator.requires_grad_(True)

        self.iterations += 1
        self.images_seen += n
        self.update_ema(n)
        self.log_dict(
            {
                "train/loss_d": loss_d.detach(),
                "train/loss_g": loss_g.detach(),
                "train/d_real": d_real.detach().mean(),
                "train/d_fake": d_fake.detach().mean(),
                "train/iterations": self.iterations.float(),
                "train/kimg": self.images_seen.float() / 1000.0,
            },
            prog_bar=False,
        )
        self.log("loss_g", loss_g.detach(), prog_bar=True, logger=False)
        self.log("loss_d", loss_d.detach(), prog_bar=True, logger=False)
        if int(self.iterations) % self.hp.sample_every_n_iterations == 0:
            self.log_samples()

    def extra_generator_loss(self, real: Tensor, labels: Tensor) -> Tensor:
        """Subclassing point: a term added to the generator's loss at every iteration (logged by the
        subclass). Its gradients reach every parameter of the generator optimiser (``opt_g``), so a
        subclass that trains more networks with the generator (an encoder) adds them there in
        :meth:`configure_optimizers`. The base GAN adds nothing."""
        return real.new_zeros(())

    @torch.no_grad()
    def update_ema(self, batch_size: int) -> None:
        """EMA of the generator's weights with a half-life in images (ramped up early on)."""
        half_life = self.hp.ema_half_life_images
        if self.hp.ema_rampup is not None:
            half_life = min(half_life, float(self.images_seen) * self.hp.ema_rampup)
        beta = 0.5 ** (batch_size / max(half_life, 1e-8))
        for p_ema, p in zip(self.generator_ema.parameters(), self.generator.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - beta)
        for b_ema, b in zip(self.generator_ema.buffers(), self.generator.buffers(), strict=True):
            b_ema.copy_(b)

    # --- monitoring ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self, truncation_psi: float | None = None) -> Tensor:
        """A ``(C, H, W)`` grid in [0, 1] of EMA samples: one row per class, fixed z per column."""
        psi = self.hp.sample_truncation_psi if truncation_psi is None else truncation_psi
        return render_class_grid(self.generator_ema, self.sample_z, psi)

    def log_samples(self) -> None:
        logger = self.logger
        experiment = getattr(logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_image"):
            return
        experiment.add_image("samples/ema_by_class", self.sample_grid(), int(self.iterations))

    def on_train_end(self) -> None:
        self.log_samples()


def mode_seeking_loss(images_a: Tensor, images_b: Tensor, z_a: Tensor, z_b: Tensor, eps: float = 1e-5) -> Tensor:
    """MSGAN's term: the inverse of image distance per latent distance, averaged over pairs.

    Small when different latents of the same class give different images."""
    ratio = (images_a - images_b).abs().flatten(1).mean(1) / (z_a - z_b).abs().mean(1)
    return (1.0 / (ratio + eps)).mean()


@torch.no_grad()
def render_class_grid(generator: Any, z: Tensor, truncation_psi: float = 1.0, padding: int = 2) -> Tensor:
    """Grid in [0, 1] of ``generator(z_j, class i)``: row i = class i, column j = latent j."""
    k = generator.num_classes
    m = z.shape[0]
    zz = z.repeat(k, 1)
    cc = torch.arange(k, device=z.device).repeat_interleave(m)
    images = generator(zz, cc, truncation_psi=truncation_psi)
    return make_grid((images + 1) / 2, nrow=m, padding=padding, pad_value=0.5).clamp(0, 1)
