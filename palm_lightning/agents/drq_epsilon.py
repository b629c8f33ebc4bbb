"""DrQ(ε) for discrete actions (Atari-100k): DrQ (Kostrikov et al., 2020) with the ε-greedy
settings Agarwal et al. (2021, "Deep RL at the edge of the statistical precipice") found to work
better — an Efficient-DQN: double DQN, dueling head, 10-step returns, no noisy nets, no
distributional head, random-shift augmentation of every observation at every update.

Defaults are the published ones, read from Dopamine's ``labs/atari_100k/configs/DrQ_eps.gin`` and
``atari_100k_rainbow_agent.py`` (the reference implementation of Agarwal et al.):

=================================  ===============  =========================================
setting                            default          source
=================================  ===============  =========================================
discount γ                         0.99             DrQ_eps.gin
n-step (``update_horizon``)        10               DrQ_eps.gin (the stream's ``nstep``)
min replay history                 1 600            DrQ_eps.gin (the stream's ``seed_frames``)
update period                      1 per step       DrQ_eps.gin (the stream's replay ratio)
target update period               1 update         DrQ_eps.gin
ε train / decay period             0.01 / 5 000     DrQ_eps.gin (linear from 1.0 after warm-up)
ε eval                             0.001            DrQ_eps.gin
Adam lr / eps                      1e-4 / 1.5e-4    DrQ_eps.gin (from DER, van Hasselt 2019)
batch size                         32               DrQ_eps.gin (the stream's ``batch_size``)
double DQN, dueling                yes, yes         DrQ_eps.gin
loss                               Huber            atari_100k_rainbow_agent (``mse_loss=False``)
augmentation                       shift pad 4      atari_100k_rainbow_agent (edge padding,
                                   + intensity 0.05 per-image crop, then SPR's intensity noise)
dueling hidden width               512              Dopamine's ``FullRainbowNetwork``
=================================  ===============  =========================================

The ε schedule is Dopamine's ``linearly_decaying_epsilon``: 1.0 for the first ``epsilon_warmup``
agent steps (the min replay history, when the stream acts uniformly anyway), then linear to
``epsilon_train`` over ``epsilon_decay_period`` steps. ``step`` is what the experience stream
passes: agent steps summed over its environments (one environment in the Atari-100k protocol).

A target update period of 1 (Dopamine copies the online weights into the target after every
update) makes the target the online network as it was *before* the current update: the bootstrap
is a stop-gradient of the online Q. It stays a parameter (``target_update_period``; 8 000 is
Nature DQN's).

Chosen here, not published:

- the encoder is someone else's (any module of the package's encoder contract, so a PALM
  checkpoint can initialise it); Dopamine's DrQ(ε) uses the Nature-DQN CNN on 84×84×4 frames;
- ``freeze_encoder``: the encoder gets no gradient (features under ``no_grad``), only the dueling
  head learns — the "frozen features" arm of the fine-tuning study. See "A frozen encoder" below;
- observations reach the encoder in ``[-1, 1]`` (the package's encoder contract), not ``[0, 1]``;
  the intensity noise is applied in ``[0, 1]`` before that rescaling, as Dopamine does;
- ``grad_clip`` (``None``: Dopamine does not clip).

A frozen encoder
----------------
With ``freeze_encoder`` the update never differentiates through the encoder, and the target
network's encoder is the online one (both frozen): the features of ``obs`` and ``next_obs`` are
computed once, under ``no_grad``, in one batched forward; the online and target heads read them;
only the head is copied into the target. The encoder is kept in eval mode (a frozen network's
batch-norm statistics, if it has any, stay fixed), so its features are a function of the frames.

``frozen_augmentation`` decides whether DrQ's augmentation still reaches a frozen encoder. It is
**off by default**: the augmentation is part of DrQ(ε)'s recipe for an encoder that *learns*
(invariance to small shifts is learned by the encoder); in front of a frozen encoder it only makes
every observation's features a new random draw at every update, i.e. feature noise for the head,
which is not the question a frozen row asks ("how good are these features as they are"). And
without it the features are a pure function of the stored frame, so they can be cached: the
experience stream's replay buffer keeps them per slot
(:meth:`~palm_lightning.datamodules.streams.replay.ReplayBuffer.cache_features`), each frame is encoded once
and an update is head-only, an order of magnitude cheaper on a CPU than an uncached or fine-tuned
update (``benchmarks/atari.py --sections frozen`` times them; docs/results/benchmarks.md). ``frozen_augmentation:
true`` restores the recipe's augmentation (``shift_pad``, ``intensity_scale``) in front of the
frozen encoder, at the uncached cost (two encoder forwards per update, no backward).
:meth:`DrQEpsilonAgent.update` takes the cached features as ``features``; without them a frozen
update encodes the batch itself, with the same numbers. The fine-tuned path is unaffected.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import gymnasium
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from palm_lightning.agents.base import Agent, Backward, FiniteCheck, ParamGroups, Stepper, Transition, optimizer_step
from palm_lightning.nn.feature_standardizer import FeatureStandardizer

Loss = Literal["huber", "mse"]


def random_shift(images: Tensor, pad: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """DrQ's random shift: pad every image by ``pad`` pixels repeating its edge, then crop a window
    of the original size at an integer offset drawn per image (uniform in ``[0, 2·pad]``²).

    ``images`` ``(B, C, H, W)`` float; returns the same shape and dtype. ``pad=0`` is the identity.
    """
    if pad == 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    shift = torch.randint(0, 2 * pad + 1, (b, 2), device=images.device, generator=generator)
    rows = torch.arange(h, device=images.device)[None, :] + shift[:, :1]  # (B, H)
    cols = torch.arange(w, device=images.device)[None, :] + shift[:, 1:]  # (B, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return cropped.permute(0, 3, 1, 2).contiguous()


def intensity_noise(images: Tensor, scale: float = 0.05, generator: torch.Generator | None = None) -> Tensor:
    """SPR's intensity augmentation (Dopamine's DrQ applies it after the shift): each image is
    multiplied by ``1 + scale · clip(N(0, 1), −2, 2)``. ``scale=0`` is the identity."""
    if scale == 0:
        return images
    noise = torch.randn(images.shape[0], 1, 1, 1, device=images.device, generator=generator)
    return images * (1.0 + scale * noise.clamp(-2.0, 2.0))


def linearly_decaying_epsilon(step: int, warmup: int, decay_period: int, final: float) -> float:
    """Dopamine's ``linearly_decaying_epsilon``: 1.0 for ``warmup`` steps, then linear to ``final``
    over ``decay_period`` steps, then ``final``."""
    if decay_period <= 0:
        return final if step >= warmup else 1.0
    left = decay_period + warmup - step
    bonus = (1.0 - final) * left / decay_period
    return final + min(max(bonus, 0.0), 1.0 - final)


class DuelingHead(nn.Module):
    """Dueling Q head (Wang et al., 2016) as Dopamine's ``FullRainbowNetwork`` builds it: value and
    advantage streams of one hidden ReLU layer each, ``Q = V + A − mean(A)``."""

    def __init__(self, in_dim: int, num_actions: int, hidden_dim: int = 512) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, 1))
        self.advantage = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, num_actions))

    def forward(self, features: Tensor) -> Tensor:
        advantage: Tensor = self.advantage(features)
        value: Tensor = self.value(features)
        return value + advantage - advantage.mean(1, keepdim=True)


class QNetwork(nn.Module):
    """``encoder → [standardizer →] DuelingHead``: images in ``[-1, 1]`` to ``(B, num_actions)``
    Q-values. A frozen encoder runs under ``no_grad`` and stays in eval mode whatever ``train()`` is
    called with (its features are then a fixed function of the images: see the module docstring);
    ``standardize_features`` (frozen only) puts a :class:`FeatureStandardizer` between it and the head."""

    def __init__(
        self,
        encoder: nn.Module,
        num_actions: int,
        hidden_dim: int,
        freeze_encoder: bool,
        standardize_features: bool = False,
    ) -> None:
        super().__init__()
        if standardize_features and not freeze_encoder:
            raise ValueError(
                "standardize_features needs freeze_encoder: a learning encoder's features move away from "
                "statistics taken once"
            )
        self.encoder = encoder
        self.freeze_encoder = freeze_encoder
        self.out_dim = int(getattr(encoder, "out_dim"))  # noqa: B009  (the encoder contract's field)
        self.head = DuelingHead(self.out_dim, num_actions, hidden_dim)
        # None unless asked for: the default network's state_dict (and older checkpoints) stay as they were
        self.standardizer = FeatureStandardizer(self.out_dim) if standardize_features else None
        if freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> QNetwork:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def features(self, images: Tensor) -> Tensor:
        """The encoder's features of ``images`` (without gradient when the encoder is frozen)."""
        if self.freeze_encoder:
            with torch.no_grad():
                features: Tensor = self.encoder(images)
            return features.detach()
        out: Tensor = self.encoder(images)
        return out

    def q_values(self, features: Tensor) -> Tensor:
        """The head's Q-values of encoder ``features`` (standardized first, with a standardizer)."""
        if self.standardizer is not None:
            features = self.standardizer(features)
        q: Tensor = self.head(features)
        return q

    def forward(self, images: Tensor) -> Tensor:
        return self.q_values(self.features(images))


@dataclass(frozen=True)
class DrQEpsilonConfig:
    """DrQ(ε)'s settings (defaults: the published ones, see the module docstring). A module that
    trains with DrQ(ε) takes this whole group (:class:`~palm_lightning.models.AtariFinetune`'s
    ``agent:``), so each setting is written here only. The stream holds batch size, n-step, γ and
    the min replay history; the module owns the encoder (and whether it is frozen).

    Args:
        hidden_dim: width of the dueling streams (Dopamine: 512).
        lr, adam_eps: Adam's learning rate and epsilon (DrQ(ε)/DER: 1e-4, 1.5e-4).
        target_update_period: copy the online network into the target every that many updates
            (DrQ(ε): 1; Nature DQN: 8 000).
        double_dqn: the next action is the online network's argmax, valued by the target (yes).
        loss: ``"huber"`` (Dopamine's default) or ``"mse"``.
        epsilon_train, epsilon_eval: final training ε and evaluation ε (DrQ(ε): 0.01, 0.001;
            the original DrQ: 0.1, 0.01).
        epsilon_decay_period: agent steps of the linear decay from 1.0 (5 000).
        epsilon_warmup: agent steps at ε = 1 before the decay (Dopamine: the min replay history,
            1 600).
        shift_pad: random-shift padding in pixels (DrQ: 4 on 84×84; 0 turns it off).
        intensity_scale: intensity-noise scale (Dopamine: 0.05; 0 turns it off).
        grad_clip: max gradient norm (``None``: no clipping, as Dopamine).
        frozen_augmentation: with a frozen encoder, augment the frames in front of it too
            (``shift_pad``, ``intensity_scale``). Off by default: the features are then a function
            of the frames and can be cached (see the module docstring).
        standardize_features: with a frozen encoder, standardize the features per dimension
            before the head, with statistics taken once
            (:meth:`DrQEpsilonAgent.fit_feature_standardizer`, which the caller runs before the
            first update; until then features pass unchanged). Off by default (the published
            recipe has no such step); why it exists: :mod:`palm_lightning.nn.feature_standardizer`.

    Raises:
        ValueError: an unknown ``loss``, ``target_update_period`` < 1, or an ε outside ``[0, 1]``.
    """

    hidden_dim: int = 512
    lr: float = 1e-4
    adam_eps: float = 1.5e-4
    target_update_period: int = 1
    double_dqn: bool = True
    loss: Loss = "huber"
    epsilon_train: float = 0.01
    epsilon_eval: float = 0.001
    epsilon_decay_period: int = 5000
    epsilon_warmup: int = 1600
    shift_pad: int = 4
    intensity_scale: float = 0.05
    grad_clip: float | None = None
    frozen_augmentation: bool = False
    standardize_features: bool = False

    def __post_init__(self) -> None:
        if self.loss not in ("huber", "mse"):
            raise ValueError(f"loss must be 'huber' or 'mse', got {self.loss!r}")
        if self.target_update_period < 1:
            raise ValueError(f"target_update_period must be ≥ 1, got {self.target_update_period}")
        if not (0.0 <= self.epsilon_train <= 1.0 and 0.0 <= self.epsilon_eval <= 1.0):
            raise ValueError(f"ε must be in [0, 1], got train {self.epsilon_train}, eval {self.epsilon_eval}")


class DrQEpsilonAgent(Agent):
    """DrQ(ε) on image observations (uint8 frames ``(B, C, H, W)`` as the replay stores them).

    Args:
        encoder: the image encoder (the package's encoder contract: ``image_shape``, ``out_dim``,
            images in ``[-1, 1]``); trained with the head unless ``freeze_encoder``.
        num_actions: size of the ``Discrete`` action space.
        config: the agent's settings (:class:`DrQEpsilonConfig`; its ``__post_init__`` validates
            them).
        freeze_encoder: keep the encoder fixed (no gradients, not in the optimiser, eval mode).
            No default here: the module that owns the encoder decides (``AtariFinetune``'s
            ``freeze_encoder``) and passes it.

    Raises:
        ValueError: ``config.standardize_features`` without ``freeze_encoder``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_actions: int,
        config: DrQEpsilonConfig = DrQEpsilonConfig(),
        *,
        freeze_encoder: bool,
    ) -> None:
        super().__init__()
        self.action_space = gymnasium.spaces.Discrete(num_actions)
        self.num_actions = num_actions
        self.config = config
        self.freeze_encoder = freeze_encoder
        self.q = QNetwork(encoder, num_actions, config.hidden_dim, freeze_encoder, config.standardize_features)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.updates: Tensor
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # in checkpoints

    # --- acting ---------------------------------------------------------------------------------
    def epsilon(self, step: int, eval_mode: bool = False) -> float:
        """ε of the ε-greedy policy at agent step ``step``."""
        if eval_mode:
            return self.config.epsilon_eval
        return linearly_decaying_epsilon(
            step, self.config.epsilon_warmup, self.config.epsilon_decay_period, self.config.epsilon_train
        )

    @staticmethod
    def preprocess(obs: Tensor) -> Tensor:
        """uint8 frames (or floats in ``[0, 255]``) to the encoder's ``[-1, 1]``."""
        return obs.float() / 127.5 - 1.0

    def augment(self, obs: Tensor) -> Tensor:
        """Random shift (on ``[0, 255]``), intensity noise (on ``[0, 1]``), then to ``[-1, 1]``."""
        x = random_shift(obs.float(), self.config.shift_pad) / 255.0
        return intensity_noise(x, self.config.intensity_scale) * 2.0 - 1.0

    @property
    def caches_features(self) -> bool:
        """A frozen encoder without augmentation: the features of a frame are a function of it, so
        the replay buffer can cache them (:meth:`encode` is that function)."""
        return self.freeze_encoder and not self.config.frozen_augmentation

    @torch.no_grad()
    def encode(self, obs: Tensor) -> Tensor:
        """The encoder's features of uint8 frames ``(B, C, H, W)``, without augmentation: what the
        replay buffer caches for a frozen encoder (:attr:`caches_features`)."""
        return self.q.features(self.preprocess(obs))

    @property
    def needs_feature_standardizer_fit(self) -> bool:
        """``standardize_features`` is on and its statistics have not been taken yet."""
        return self.q.standardizer is not None and not bool(self.q.standardizer.fitted)

    @torch.no_grad()
    def fit_feature_standardizer(self, features: Tensor) -> None:
        """Take the standardizer's statistics from ``features`` ``(N, out_dim)``: :meth:`encode`'s
        features of the frames the agent holds (the online and the target network's, alike)."""
        if self.q.standardizer is None:
            raise RuntimeError("this agent does not standardize its features (standardize_features: false)")
        self.q.standardizer.fit(features)
        assert self.q_target.standardizer is not None  # a copy of q
        self.q_target.standardizer.load_state_dict(self.q.standardizer.state_dict())

    @torch.no_grad()
    def act(self, obs: Tensor, step: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        greedy = self.q(self.preprocess(obs)).argmax(1)
        explore = torch.rand(greedy.shape[0], device=greedy.device) < self.epsilon(step, eval_mode)
        random = torch.randint(self.num_actions, greedy.shape, device=greedy.device)
        return torch.where(explore, random, greedy)

    # --- learning -------------------------------------------------------------------------------
    def optimizer_groups(self) -> dict[str, ParamGroups]:
        params = [p for p in self.q.parameters() if p.requires_grad]
        return {"q": [{"params": params, "lr": self.config.lr, "eps": self.config.adam_eps, "name": "q"}]}

    @torch.no_grad()
    def td_target(self, batch: Transition, next_obs: Tensor, features: bool = False) -> Tensor:
        """``r + γⁿ·d·Q_target(s', a*)`` with ``a* = argmax Q_online(s')`` (double DQN) or
        ``argmax Q_target(s')``; ``batch.discount`` already holds ``γⁿ`` times the mask.
        ``features``: ``next_obs`` holds the (frozen, shared) encoder's features, valued by the
        online and target heads.

        With ``target_update_period`` 1 the target holds the online weights (copied after every
        update), so one online forward serves as both: the same numbers, one forward of the three
        per update fewer (benchmarks/atari.py)."""
        online, target = (self.q.q_values, self.q_target.q_values) if features else (self.q, self.q_target)
        if self.config.target_update_period == 1:
            next_target_q: Tensor = online(next_obs)
            chooser = next_target_q
        else:
            next_target_q = target(next_obs)
            chooser = online(next_obs) if self.config.double_dqn else next_target_q
        next_action = chooser.argmax(1, keepdim=True)
        return batch.reward + batch.discount * next_target_q.gather(1, next_action).squeeze(1)

    @torch.no_grad()
    def frozen_features(self, obs: Tensor, next_obs: Tensor) -> tuple[Tensor, Tensor]:
        """The frozen encoder's features of ``obs`` and ``next_obs`` (uint8 frames), in one batched
        forward: of augmented frames (each its own draw) with ``frozen_augmentation``, else of the
        frames as they are (what the replay buffer's cache holds)."""
        if self.config.frozen_augmentation:
            images = torch.cat([self.augment(obs), self.augment(next_obs)])
        else:
            images = self.preprocess(torch.cat([obs, next_obs]))
        features = self.q.features(images)
        return features[: obs.shape[0]], features[obs.shape[0] :]

    def update(
        self,
        batch: Transition,
        step: int,
        optimizers: Mapping[str, Stepper],
        backward: Backward | None = None,
        check: FiniteCheck | None = None,
        features: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """One DrQ(ε) update. ``features``: a frozen encoder's features of ``batch.obs`` and
        ``batch.next_obs`` (:meth:`encode`'s, e.g. from the replay buffer's cache); a frozen
        update without them computes them (:meth:`frozen_features`)."""
        reward, discount = batch.reward.float(), batch.discount.float()
        action = batch.action.long().view(-1, 1)
        if self.freeze_encoder:  # head only, on features computed once (module docstring)
            if features is not None and self.config.frozen_augmentation:
                raise ValueError("cached features are of unaugmented frames; frozen_augmentation is on")
            obs_features, next_features = (
                self.frozen_features(batch.obs, batch.next_obs) if features is None else features
            )
            target = self.td_target(
                Transition(obs_features, batch.action, reward, discount, next_features), next_features, features=True
            )
            q = self.q.q_values(obs_features).gather(1, action).squeeze(1)
        else:
            if features is not None:
                raise ValueError("precomputed features are for a frozen encoder; this one is fine-tuned")
            obs = self.augment(batch.obs)
            next_obs = self.augment(batch.next_obs)  # its own draw, as Dopamine
            target = self.td_target(Transition(batch.obs, batch.action, reward, discount, batch.next_obs), next_obs)
            q = self.q(obs).gather(1, action).squeeze(1)
        loss = F.smooth_l1_loss(q, target) if self.config.loss == "huber" else F.mse_loss(q, target)
        if check is not None:
            check({"q_loss": loss})
        logs: dict[str, Tensor] = {}

        def clip() -> None:
            if self.config.grad_clip is not None:
                params = [p for p in self.q.parameters() if p.requires_grad]
                logs["train/q_grad_norm"] = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)

        optimizer_step(loss, [optimizers["q"]], backward, clip)
        self.updates += 1
        if int(self.updates) % self.config.target_update_period == 0:
            self.sync_target()
        logs.update(
            {
                "train/q_loss": loss.detach(),
                "train/q": q.detach().mean(),
                "train/target_q": target.mean(),
                "train/batch_reward": reward.mean(),
                "train/epsilon": torch.tensor(self.epsilon(step)),
            }
        )
        return logs

    @torch.no_grad()
    def sync_target(self) -> None:
        """Copy the online network's weights into the target (a frozen encoder's never change: only
        the head's then; a standardizer is fixed once fitted, and its fit sets both networks')."""
        if self.freeze_encoder:
            self.q_target.head.load_state_dict(self.q.head.state_dict())
        else:
            self.q_target.load_state_dict(self.q.state_dict())
