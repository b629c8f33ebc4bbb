"""PALM with an inverse-dynamics objective in place of SimSiam: the "encode what the action changed" ablation.

SimSiam (and CURL) pull the representations of consecutive frames together, so whatever moves between
them is what the encoder is free to drop; on PALM-Atari every such objective leaves the AtariARI probe at
the untrained encoder's score (docs/results/atari.md). An inverse model (Pathak et al. 2017's, here
shaping the encoder itself) must tell from ``(o_t, o_{t+1})`` which action the agent took, so the encoder
has to keep what the action moved: in PALM's environment the action displaces the latent, and the latent
is where the sprites are. The action is the agent's own knowledge, so this stays learning from interaction.
Everything else is PALM's: the stream, the reward, the agent, the online probe, the exported encoder.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from palm_lightning.losses.simsiam import output_std
from palm_lightning.models.palm.palm import PALM
from palm_lightning.nn.blocks import mlp, orthogonal_init_
from palm_lightning.nn.siamese import simsiam_heads


class PALMInverseDynamics(PALM):
    """PALM whose encoder is trained to predict the action ``a_t`` from ``(o_t, o_{t+1})``.

    The inverse head (sub-module ``inverse_model``) reads ``[f(o_t), f(o_{t+1})]``, the encoder's
    outputs, through an MLP with a ``tanh`` output (actions live in ``[-1, 1]``); the loss is the
    mean squared error per action dimension, and ``train/inverse_r2`` (``1 − MSE / Var(a)`` over the
    batch) says how much of the action the frames give away: 0 is a head that predicts the mean.

    Why the random policy goes with it: APT's actor is deterministic plus σ = 0.2 noise, so its
    ``a_t`` is mostly a function of ``o_t`` and a head could predict it without looking at what
    changed. With ``policy: random`` (``configs/palm_variants/random_policy.yaml``) the actions are
    independent of the frames, and only the change between them tells. We do not forbid APT: a
    researcher may want that shortcut measured.

    ``siamese_weight`` adds SimSiam's loss on the same pair (0, the default, is the inverse loss
    alone: SimSiam's projector and predictor are then not built). APT's particles live in the
    encoder's own space (:meth:`reward_features` is the identity, as in
    :class:`~palm_lightning.models.palm.stdim.PALMSTDIM`).

    Args:
        inverse_hidden: width of the inverse head's hidden layers (our choice: 256, ICM's size here).
        inverse_layers: number of hidden layers (our choice: 1; 0 is a linear head).
        siamese_weight: weight of SimSiam's loss added to the inverse loss (our choice: 0).
        **kwargs: :class:`~palm_lightning.models.palm.palm.PALM`'s arguments; ``pairing`` must be
            ``temporal`` (two shifts of one frame have no action between them).
    """

    def __init__(
        self,
        *args: Any,
        inverse_hidden: int = 256,
        inverse_layers: int = 1,
        siamese_weight: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.hp.pairing != "temporal":
            raise ValueError(
                f"PALMInverseDynamics needs pairing: temporal (an action lies between o_t and o_t+1), got "
                f"{self.hp.pairing!r}"
            )
        if inverse_hidden < 1 or inverse_layers < 0:
            raise ValueError(
                f"inverse_hidden must be >= 1 and inverse_layers >= 0, got {inverse_hidden} and {inverse_layers}"
            )
        if siamese_weight < 0.0:
            raise ValueError(f"siamese_weight must be >= 0, got {siamese_weight}")
        self.inverse_hidden, self.inverse_layers, self.siamese_weight = inverse_hidden, inverse_layers, siamese_weight
        width = self.encoder.out_dim
        head = mlp(2 * width, inverse_hidden, inverse_layers, self.hp.action_dim)
        self.inverse_model = nn.Sequential(head, nn.Tanh())
        orthogonal_init_(self.inverse_model)

    def build_heads(self) -> None:
        """SimSiam's heads only when its loss is added (``siamese_weight > 0``)."""
        if self.siamese_weight > 0:
            super().build_heads()

    def representation_parameters(self) -> list[nn.Parameter]:
        siamese = [*self.projector.parameters(), *self.predictor.parameters()] if self.siamese_weight > 0 else []
        return [*self.encoder.parameters(), *self.inverse_model.parameters(), *siamese]

    def representation_loss(self, obs: Tensor, next_obs: Tensor, actions: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Inverse dynamics on ``(obs, next_obs)`` and the action between them ``(B, |A|)`` (plus
        ``siamese_weight`` × SimSiam); logs ``train/ssl_loss`` (the total), ``train/inverse_mse``,
        ``train/inverse_r2`` and ``train/z_std`` (of the encoder outputs)."""
        if actions.shape != (obs.shape[0], self.hp.action_dim):
            raise ValueError(
                f"PALMInverseDynamics.representation_loss needs the actions of its pairs, shape "
                f"({obs.shape[0]}, {self.hp.action_dim}), got {tuple(actions.shape)}"
            )
        features, next_features = self.encoder(obs), self.encoder(next_obs)
        self.view_features = (features.detach(), next_features.detach())
        predicted = self.inverse_model(torch.cat([features, next_features], dim=1).float())
        mse = F.mse_loss(predicted, actions)
        with torch.no_grad():
            variance = actions.var(dim=0, unbiased=False).mean().clamp_min(1e-8)
        logs = {"train/inverse_mse": mse.detach(), "train/inverse_r2": 1.0 - mse.detach() / variance}
        loss = mse
        if self.siamese_weight > 0:
            siamese, siamese_logs = simsiam_heads(self.projector, self.predictor, features, next_features)
            loss = loss + self.siamese_weight * siamese
            logs["train/siamese_loss"] = siamese_logs["train/ssl_loss"]
        logs["train/ssl_loss"] = loss.detach()
        logs["train/z_std"] = output_std(features)
        return loss, logs

    @torch.no_grad()
    def reward_features(self, features: Tensor) -> Tensor:
        return features
