"""The StyleGAN generator trained as the decoder of a conditional VAE–GAN.

Why: a class-conditional GAN on Fashion-MNIST collapses *within* each class (the shipped
:class:`~palm_lightning.models.generators.stylegan.ConditionalStyleGAN` draws about one garment per class:
within-class diversity 0.19 of the real data's), which leaves PALM's latent environment little to
explore. A GAN's loss never asks every training image to be reachable; a VAE's does. Here an
encoder q(z | x, c) maps every real image to a posterior over the generator's z, and the generator
must reconstruct the image from a sample of it (as in VAE/GAN, Larsen et al. 2016, and
BicycleGAN's cVAE-GAN path, Zhu et al. 2017). The KL term keeps the posteriors near the N(0, I)
prior the environment draws from, and the GAN loss on prior samples keeps those samples sharp and
on the manifold. The generator itself is unchanged: same network, same protocol, same w-space, so
the environment and its speed do not change.

Generator loss per iteration (the discriminator step is the base class's)::

    softplus(-D(G(z), c))                          z ~ N(0, I)      (base: prior samples look real)
  + reconstruction_weight · mean(m ⊙ |G(ẑ, c) − x|)  ẑ ~ q(z | x, c)  (every real image is reachable)
  + kl_weight · KL(q(z | x, c) ‖ N(0, I))                           (posteriors stay where z is drawn)
  + reconstruction_adversarial_weight · softplus(-D(G(ẑ, c), c))    (reconstructions look real too)

where m = 1 everywhere unless ``foreground_weight`` > 0: then m = 1 + foreground_weight on the
pixels that differ from their class's background (see :meth:`VAEStyleGAN.foreground_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from palm_lightning.checkpoints import CheckpointError, load_network
from palm_lightning.models.generators.stylegan import ConditionalStyleGAN
from palm_lightning.nn.latent_encoder import ConditionalLatentEncoder, gaussian_kl
from palm_lightning.training.config_groups import typed_view


@dataclass(frozen=True)
class VAEStyleGANHParams:
    """The VAE half's hyperparameters (the GAN's are in :class:`ConditionalStyleGANHParams`)."""

    encoder_width: int
    reconstruction_weight: float
    kl_weight: float
    reconstruction_adversarial_weight: float
    init_generator: str | None
    encoder_lr: float | None
    encoder_betas: tuple[float, float] | None
    foreground_weight: float
    foreground_threshold: float
    background_momentum: float


class VAEStyleGAN(ConditionalStyleGAN):
    """Class-conditional StyleGAN2 whose generator is also the decoder of a conditional VAE.

    Every argument of :class:`ConditionalStyleGAN` is accepted (``**kwargs``); ``mode_seeking_weight``
    defaults to 0 here because the reconstruction term already ties the image to z.

    Args:
        encoder_width: channels of the encoder's first convolution
            (:class:`~palm_lightning.nn.latent_encoder.ConditionalLatentEncoder`).
        reconstruction_weight: weight of the per-pixel L1 reconstruction (mean over pixels, images
            in [-1, 1]). BicycleGAN's 10; our choice too (the papers of this package are silent).
        kl_weight: weight of the KL term (summed over z's dimensions, mean over the batch).
            BicycleGAN's 0.01. Larger: samples from the prior look more like reconstructions but
            the posteriors carry less of the image.
        reconstruction_adversarial_weight: weight of the non-saturating GAN loss on
            reconstructions (the discriminator is not trained on them; it only judges).
        init_generator: optional network file or checkpoint of a generator with the same
            configuration, copied into the generator and its EMA before training (a warm start,
            e.g. from the shipped StyleGAN). Ignored when resuming: the checkpoint's weights win.
        encoder_lr: Adam learning rate of the encoder; ``None`` = the generator's ``lr``. Why apart:
            StyleGAN's Adam (lr 0.0025, β₁ 0) suits a generator under an adversarial loss, but on Atari
            frames it makes the encoder unstable: the KL spikes and the posteriors end far from the
            prior, so prior samples decode to one average frame per game. A VAE encoder's usual
            settings are a lower rate with momentum.
        encoder_betas: Adam betas of the encoder; ``None`` = the generator's ``betas``.
        foreground_weight: extra reconstruction weight on foreground pixels (0 = plain L1). Why: on
            Atari the state is in a few small sprites over a static screen (Pong's ball and paddles
            cover ~1% of the pixels), so a plain per-pixel L1 is nearly met by one background frame
            per game, and the decoder learns to ignore z: reconstructions *and* samples show no
            sprites. Weighting the pixels that differ from the class's background makes every sprite
            cost what the rest of the frame does. Our choice; not in the papers.
        foreground_threshold: a pixel is foreground when it differs from its class's background by
            more than this (images in [-1, 1]; 0.1 = 5% of the range).
        background_momentum: the background of a class is a running mean of its real images
            (a buffer, saved in checkpoints), updated with this momentum at every iteration; moving
            sprites average out of it, static screens stay.
    """

    class_backgrounds: Tensor  # (classes, C, H, W) running means of the real images (buffers)
    class_background_seen: Tensor  # (classes,) bool: set by the first batch that held the class

    def __init__(
        self,
        encoder_width: int = 32,
        reconstruction_weight: float = 10.0,
        kl_weight: float = 0.01,
        reconstruction_adversarial_weight: float = 1.0,
        init_generator: str | None = None,
        encoder_lr: float | None = None,
        encoder_betas: tuple[float, float] | None = None,
        foreground_weight: float = 0.0,
        foreground_threshold: float = 0.1,
        background_momentum: float = 0.99,
        mode_seeking_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(mode_seeking_weight=mode_seeking_weight, **kwargs)
        self.vae_hp = typed_view(VAEStyleGANHParams, locals())
        if foreground_weight < 0 or foreground_threshold < 0 or not 0 <= background_momentum < 1:
            raise ValueError(
                "foreground_weight and foreground_threshold must be >= 0 and background_momentum in [0, 1), got "
                f"{foreground_weight}, {foreground_threshold}, {background_momentum}"
            )
        shape = (max(self.hp.num_classes, 1), self.hp.img_channels, self.hp.img_resolution, self.hp.img_resolution)
        self.register_buffer("class_backgrounds", torch.zeros(shape))
        self.register_buffer("class_background_seen", torch.zeros(shape[0], dtype=torch.bool))
        self.encoder = ConditionalLatentEncoder(
            z_dim=self.hp.z_dim,
            num_classes=self.hp.num_classes,
            img_resolution=self.hp.img_resolution,
            img_channels=self.hp.img_channels,
            width=encoder_width,
        )
        if init_generator is not None:
            self.warm_start(init_generator)

    def warm_start(self, path: str) -> None:
        """Copy a saved generator's weights into the generator and its EMA (same configuration)."""
        source = load_network(path, kind="generator")
        own = self.generator.config
        theirs = getattr(source, "config", None)
        if theirs != own:
            raise CheckpointError(
                f"init_generator {path}: its configuration {theirs} differs from this model's {own}; "
                "set the model's z_dim / w_dim / channel_base / channel_max / mapping_layers to match it"
            )
        state = source.state_dict()
        self.generator.load_state_dict(state)
        self.generator_ema.load_state_dict(state)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """The base optimisers, with the encoder trained by the generator's Adam (one more param group,
        with its own rate and betas when ``encoder_lr`` / ``encoder_betas`` are set)."""
        opt_g, opt_d = super().configure_optimizers()
        group: dict[str, Any] = {"params": list(self.encoder.parameters())}
        if self.vae_hp.encoder_lr is not None:
            group["lr"] = self.vae_hp.encoder_lr
        if self.vae_hp.encoder_betas is not None:
            group["betas"] = tuple(self.vae_hp.encoder_betas)
        opt_g.add_param_group(group)
        return [opt_g, opt_d]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before the class backgrounds existed load too (their backgrounds start empty)."""
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("state_dict", {})
        for name in ("class_backgrounds", "class_background_seen"):
            state.setdefault(name, getattr(self, name).clone())

    @torch.no_grad()
    def update_backgrounds(self, real: Tensor, labels: Tensor) -> None:
        """Move each class's background towards the mean of its images in this batch (the first
        batch that holds a class sets it)."""
        labels = labels.long() if self.hp.num_classes > 0 else torch.zeros_like(labels, dtype=torch.long)
        for label in labels.unique().tolist():
            batch_mean = real[labels == label].mean(dim=0)
            if bool(self.class_background_seen[label]):
                momentum = self.vae_hp.background_momentum
                self.class_backgrounds[label].mul_(momentum).add_(batch_mean, alpha=1 - momentum)
            else:
                self.class_backgrounds[label].copy_(batch_mean)
                self.class_background_seen[label] = True

    def foreground_mask(self, real: Tensor, labels: Tensor) -> Tensor:
        """``(N, 1, H, W)`` floats: 1 where an image differs from its class's background by more than
        ``foreground_threshold`` in any channel, else 0. Subclassing point for another notion of
        foreground (e.g. a fixed per-game background frame)."""
        labels = labels.long() if self.hp.num_classes > 0 else torch.zeros_like(labels, dtype=torch.long)
        difference = (real - self.class_backgrounds[labels]).abs().amax(dim=1, keepdim=True)
        return (difference > self.vae_hp.foreground_threshold).to(real.dtype)

    def extra_generator_loss(self, real: Tensor, labels: Tensor) -> Tensor:
        mean, log_variance = self.encoder(real, labels)
        z = mean + torch.randn_like(mean) * (0.5 * log_variance).exp()
        reconstruction = self.generator.generate(z, labels)
        self.update_backgrounds(real, labels)
        foreground = self.foreground_mask(real, labels)
        error = (reconstruction - real).abs()
        loss_rec = (error * (1.0 + self.vae_hp.foreground_weight * foreground)).mean()
        foreground_pixels = foreground.sum() * real.shape[1]
        loss_rec_foreground = (error * foreground).sum() / foreground_pixels.clamp_min(1.0)
        loss_kl = gaussian_kl(mean, log_variance).mean()
        loss = self.vae_hp.reconstruction_weight * loss_rec + self.vae_hp.kl_weight * loss_kl
        if self.vae_hp.reconstruction_adversarial_weight > 0:
            loss_adv = F.softplus(-self.discriminator(reconstruction, labels)).mean()
            loss = loss + self.vae_hp.reconstruction_adversarial_weight * loss_adv
            self.log("train/loss_g_reconstruction_adversarial", loss_adv.detach())
        self.log_dict(
            {
                "train/loss_reconstruction_l1": error.detach().mean(),
                "train/loss_reconstruction_foreground_l1": loss_rec_foreground.detach(),
                "train/foreground_fraction": foreground.detach().mean(),
                "train/kl": loss_kl.detach(),
                "train/posterior_std": (0.5 * log_variance.detach()).exp().mean(),
            }
        )
        return loss
