"""PALM with CURL's contrastive objective in place of SimSiam: the objective ablation.

Everything else is PALM's — the stream, APT's reward, the DDPG agent, the online probe, the
exported encoder — and the ``pairing`` hyperparameter still decides the two views, so the default
(``pairing: temporal``) is CURL on consecutive generated frames, and ``pairing: augmentation`` is
CURL as published (two random shifts of one frame).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from palm_lightning.losses.curl import curl_loss
from palm_lightning.losses.simsiam import output_std
from palm_lightning.models.palm.palm import PALM
from palm_lightning.nn.blocks import polyak_update
from palm_lightning.nn.heads import Projector


class PALMCURL(PALM):
    """PALM whose representation is trained with CURL (Srinivas et al., 2020).

    The anchor view goes through the encoder and the *query projection* (PALM's ``projector``,
    so the two rows of the comparison share every network but the objective's last piece); the
    positive view goes through momentum copies of both (the *key* networks, no gradient,
    Polyak-averaged after every update with ``key_tau``; CURL: 0.05 for its key encoder). The
    logits ``q W kᵀ / temperature`` use CURL's learned bilinear ``W``; the loss is InfoNCE with the
    other keys of the batch as negatives. SimSiam's predictor is not built; the key networks are out of
    the optimiser and
    are sub-modules, so checkpoints carry them and a resume continues them exactly.

    APT's particles live in the objective's space: :meth:`reward_features` is the ℓ2-normalised
    query projection (CURL compares unnormalised vectors through ``W``; normalising keeps the kNN
    distances on one scale however ``W`` grows — our choice).

    Args:
        key_tau: Polyak rate of the key encoder and key projection (CURL's encoder rate, 0.05).
        normalize: ℓ2-normalise queries and keys before ``W`` (our choice, default on). CURL's
            raw logits work on its 50-d tanh-bounded codes; on PALM's 256-d batch-normalised
            projections they have a scale of ~16–256 and saturate the softmax: without
            normalisation (``configs/palm.yaml`` + ``curl.yaml``) the loss grows, the contrastive
            accuracy stays at chance (1/256) and the online kNN probe collapses. Normalised codes
            with a temperature are MoCo/SimCLR's remedy.
        temperature: divides the logits (0.1 with ``normalize``, SimCLR's value; CURL has none:
            use 1.0 with ``normalize: false`` for the published form).
        **kwargs: :class:`~palm_lightning.models.palm.palm.PALM`'s arguments.
    """

    def __init__(
        self, *args, key_tau: float = 0.05, normalize: bool = True, temperature: float = 0.1, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        if not 0.0 < key_tau <= 1.0:
            raise ValueError(f"key_tau must be in (0, 1], got {key_tau}")
        if temperature <= 0.0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.key_tau, self.normalize, self.temperature = key_tau, normalize, temperature
        self.key_encoder = copy.deepcopy(self.encoder).requires_grad_(False)

    def build_heads(self) -> None:
        """The query projection (PALM's ``projector``), its momentum copy and CURL's bilinear ``W``;
        no predictor."""
        hp = self.hp
        self.projector = Projector(self.encoder.out_dim, hp.projector_hidden, hp.projector_dim)
        self.key_projector = copy.deepcopy(self.projector).requires_grad_(False)
        # CURL's code draws W from U(0, 1); we start at the identity so the first logits are plain
        # dot products (our choice).
        self.bilinear = nn.Parameter(torch.eye(hp.projector_dim))

    def representation_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.projector.parameters(), self.bilinear]

    def representation_loss(self, obs: Tensor, next_obs: Tensor, actions: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """CURL's InfoNCE with ``obs`` as anchors and ``next_obs`` (through the key networks) as
        positives; logs ``train/ssl_loss``, ``train/z_std`` (of the queries) and
        ``train/contrastive_acc`` (the positive ranked first among the batch)."""
        query = self.projector(self.encoder(obs))
        with torch.no_grad():
            key = self.key_projector(self.key_encoder(next_obs))
        if self.normalize:
            query, key = F.normalize(query.float(), dim=1), F.normalize(key.float(), dim=1)
        loss, accuracy = curl_loss(query, key, self.bilinear, self.temperature)
        logs = {"train/ssl_loss": loss.detach(), "train/z_std": output_std(query), "train/contrastive_acc": accuracy}
        return loss, logs

    @torch.no_grad()
    def reward_features(self, features: Tensor) -> Tensor:
        return F.normalize(self.projector(features).float(), dim=1)

    @torch.no_grad()
    def after_update(self) -> None:
        """Polyak step of the key networks towards the online ones (weights; batch-norm running
        statistics of the key projection follow its own forward passes)."""
        polyak_update(self.key_encoder, self.encoder, self.key_tau)
        polyak_update(self.key_projector, self.projector, self.key_tau)
