"""PALM: a Siamese representation learned from an exploring agent's play in a generator's latent manifold.

PALM is three parts, each swappable from the config: a **representation objective** (SimSiam on
two views; subclass hooks below), an **exploration reward** (``reward:``, any
:class:`~palm_lightning.rewards.ExplorationReward` by ``class_path``: APT by default, ICM, RND) and
an **agent** (:class:`~palm_lightning.agents.DDPGAgent`, DrQ-v2's DDPG; :meth:`PALM.build_agent`).

One training step (one update, so ``trainer.max_steps`` counts updates):

1. the data stream has already stepped the environments with :meth:`PALM.act` and hands over a
   batch of n-step windows ``frames (B, n+1, C, H, W)`` with their ``actions (B, n, |A|)``;
2. **representation**: SimSiam on two views (:meth:`representation_pair`,
   :meth:`representation_loss`): by default consecutive observations ``(o_t, o_{t+1})``, no
   augmentation, as the paper; the reward's own loss (ICM, RND) joins the same backward; one step
   of the representation optimiser (``repr_optimizer``: Adam by default, with the ``reward`` group
   in it; SimSiam's SGD + cosine as an option, the reward's networks then keep their own Adam);
3. **intrinsic reward** of the window in reward space (:meth:`reward_features`, by default the
   Siamese projection, run without moving its batch-norm statistics), see ``reward_window``;
4. **agent**: DrQ-v2's critic step, then actor step, on *detached* representations, in float32
   whatever the trainer's precision; then the target critic's Polyak step.

Subclassing points: :meth:`representation_pair` (which two views), :meth:`representation_loss`
(the objective, given the views and the action between them), :meth:`representation_parameters`
(what ``repr_lr`` updates), :meth:`build_heads` (the objective's own networks),
:meth:`reward_features` (where rewards are computed), :meth:`reward_frames` and
:meth:`reward_steps` (which transitions are rewarded), :meth:`intrinsic_reward` (the reward
itself), :meth:`build_agent`, :meth:`act` and :meth:`after_update` (e.g. momentum networks).
Each hook's docstring states the shapes it takes and must return; a subclass returning another
shape gets a ``ValueError`` naming the hook and the expected shape.
:class:`~palm_lightning.models.palm.curl.PALMCURL` is an example subclass.

Heads, reward and agent are built by :meth:`PALM.build_components` after the most-derived
``__init__`` has returned (:class:`~palm_lightning.training.post_init.BuildAfterInit`), so a
subclass sets whatever its hooks read after ``super().__init__()``. The reward is built for the
width :meth:`reward_features` returns, and a checkpoint records the reward's class and arguments,
so ``load_from_checkpoint`` rebuilds the reward that was trained.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn

from palm_lightning.agents.base import Agent, Transition
from palm_lightning.agents.ddpg import DDPGAgent, DDPGConfig
from palm_lightning.augment import random_shift
from palm_lightning.checkpoints import ExportableMixin
from palm_lightning.class_paths import build_component, component_spec, is_component_spec
from palm_lightning.envs.latent_manifold import from_uint8
from palm_lightning.models.evaluation.online_probe import OnlineKNNProbe
from palm_lightning.nn.blocks import frozen_batchnorm_stats
from palm_lightning.nn.encoders import DrQEncoder
from palm_lightning.nn.heads import Predictor, Projector
from palm_lightning.nn.siamese import simsiam_heads
from palm_lightning.rewards import APT, ExplorationReward, RewardStep
from palm_lightning.training.config_groups import UpgradesGroupedSettings, as_config, record_groups, typed_view
from palm_lightning.training.nan_guard import stop_on_nan
from palm_lightning.training.optimizer_steps import UncountedOptimizer, check_ddp_allows_partial_backward
from palm_lightning.training.post_init import BuildAfterInit
from palm_lightning.training.typed_lightning import attached_datamodule, module_optimizers


def same_tensor(view: Tensor, frame: Tensor) -> bool:
    """``view`` is ``frame`` itself (same storage, offset, shape and strides), not a copy or an
    augmentation of it."""
    return (
        view.data_ptr() == frame.data_ptr()
        and view.shape == frame.shape
        and view.stride() == frame.stride()
        and view.dtype == frame.dtype
    )


def check_shape(value: Any, expected: tuple[int, ...], hook: str) -> Tensor:
    """``value`` must be a tensor of shape ``expected``; else a ``ValueError`` naming the hook."""
    if not isinstance(value, Tensor):
        raise ValueError(f"{hook} must return a Tensor of shape {expected}, got {type(value).__name__}")
    if tuple(value.shape) != tuple(expected):
        raise ValueError(f"{hook} must return a Tensor of shape {tuple(expected)}, got {tuple(value.shape)}")
    return value


@dataclass(frozen=True)
class PALMHParams:
    """PALM's hyperparameters, typed: the constructor's arguments but ``reward`` (the values
    ``self.hparams`` holds; see :class:`PALM` for their meaning)."""

    image_shape: tuple[int, int, int]
    action_dim: int
    encoder_channels: int
    encoder_layers: int
    repr_dim: int
    projector_hidden: int
    projector_dim: int
    predictor_hidden: int
    pairing: Literal["temporal", "augmentation"]
    augmentation_pad: int
    policy: Literal["apt", "random"]
    reward_scale: float
    reward_lr: float
    reward_window: Literal["first", "sum"]
    freeze_reward_batchnorm: bool
    explorer_encoder: Literal["trained", "untrained"]
    action_penalty: float
    repr_lr: float
    repr_optimizer: Literal["adam", "sgd"]
    repr_momentum: float
    repr_weight_decay: float
    repr_lr_schedule: Literal["constant", "cosine"]
    agent: DDPGConfig
    weight_init: Literal["orthogonal", "default"]
    gradient_clip_val: float | None
    probe_k: int
    probe_temperature: float
    trajectory_every_n_updates: int
    trajectory_envs: int
    trajectory_steps: int


class PALM(UpgradesGroupedSettings, OnlineKNNProbe, ExportableMixin, L.LightningModule, metaclass=BuildAfterInit):
    """PALM's learner: Siamese temporal representation + exploration reward + DDPG agent.

    Checkpoints carry the encoder as a network of kind ``"encoder"``, so any ``.ckpt`` of this
    module is an input of the probes (``configs/eval/linear_fmnist.yaml``).

    Under DDP use ``strategy: ddp_find_unused_parameters_true``: an update runs several backward
    passes (representation, critic, actor), each over a part of the parameters.

    Args:
        image_shape: observation shape; must match the environment's (checked at set-up).
        action_dim: action size = the environment's latent size (64 for the shipped generator's
            z-space, 128 in its w-space); checked at set-up.
        encoder_channels, encoder_layers, repr_dim: the DrQ encoder (see ``DrQEncoder``).
        projector_hidden, projector_dim, predictor_hidden: SimSiam's heads (512, 256, 64).
        pairing: the two views of the representation objective: ``"temporal"`` (consecutive
            observations, the paper) or ``"augmentation"`` (two random shifts of the same frame:
            the ablation that asks whether the temporal pairs matter).
        augmentation_pad: the shift of ``pairing: augmentation`` in pixels (our choice: 2, about
            DrQ's 4 px on 84×84 frames scaled to 32×32).
        policy: ``"apt"`` (explore with the learned agent; the name is historical: the reward is
            whatever ``reward`` is) or ``"random"`` (uniform actions, no agent updates: the
            no-exploration ablation).
        reward: the exploration reward (default :class:`~palm_lightning.rewards.APT` with URLB's
            pixel settings); in a config: ``reward: {class_path: palm_lightning.rewards.ICM}``.
            Checkpoints keep its class path and arguments (and its trained parameters).
        reward_scale: factor on the intrinsic reward.
        reward_lr: Adam learning rate of the reward's own networks (URLB: 1e-4).
        reward_window: how an n-step window is rewarded: ``"first"`` (URLB: the reward of the
            transition ``(o_t, a_t, o_{t+n})``, e.g. APT on ``rep(o_t)``) or ``"sum"`` (each step
            ``(o_{t+k}, a_{t+k}, o_{t+k+1})`` rewarded and summed with γᵏ: our alternative, which
            gives every action of the window credit for the frame it leads to).
        freeze_reward_batchnorm: compute reward features without moving the projector's
            batch-norm running statistics (default, as URLB, whose rewards run in eval mode).
            ``False`` is a fidelity ablation: every reward forward then also counts as a training
            forward of those statistics (``python -m experiments.fidelity``, docs/results/fidelity.md).
        explorer_encoder: what the explorer sees. ``"trained"`` (default, the paper: the actor
            reads the Siamese encoder's features and APT's particles are its projections) or
            ``"untrained"``: a frozen copy of the encoder at initialisation feeds both the actor
            and the reward (particles are its raw features), so the explorer's view is not
            trained to be invariant to the changes between consecutive frames it should seek.
            The paper shares the encoder; this is our ablation.
        action_penalty: c in ``r ← r − c · mean_i(a_i²)``, summed over the window's actions with
            the window's discounts (0: none, the paper and URLB). A cost on large actions keeps a
            deterministic actor off the corners of ``[−1, 1]`` when the reward gives the action
            little credit.
        repr_lr: Adam learning rate of the encoder and SimSiam heads (1e-4, DrQ-v2's single
            rate; the paper does not publish one). At 1e-3 the encoder drifts below its own
            initialisation on the linear probe early in training (docs/results/representation.md).
        repr_optimizer, repr_momentum, repr_weight_decay, repr_lr_schedule: the representation's
            optimiser: ``"adam"`` (DrQ-v2's, default: momentum unused, weight decay 0, constant
            rate) or ``"sgd"`` with momentum, SimSiam's own recipe (Chen & He: SGD, momentum 0.9,
            weight decay 5e-4 on CIFAR, cosine decay to 0 over ``trainer.max_steps``;
            ``configs/palm_variants/repr_sgd.yaml``). Why an option: on the real images SimSiam
            passes raw pixels on the linear probe with that recipe and not with Adam 1e-4
            (docs/results/representation.md). PALM's paper publishes no optimiser. With SGD the
            reward's own networks (ICM, RND) keep an Adam of their own.
        agent: the DDPG agent's settings (:class:`~palm_lightning.agents.ddpg.DDPGConfig`, DrQ-v2/URLB's
            defaults), nested in a config: ``agent: {lr: 1e-4, stddev_schedule: "0.2"}`` or
            ``--model.init_args.agent.lr 1e-4``.
        weight_init: ``"orthogonal"`` (DrQ-v2's, for encoder, actor and critic) or ``"default"``.
        gradient_clip_val: max gradient norm of the representation step and of each agent
            network (``None``: no clipping, as DrQ-v2).
        probe_k, probe_temperature: the online kNN probe (20, 0.07).
        trajectory_every_n_updates: log a grid of trajectories this often (0: never).
        trajectory_envs, trajectory_steps: rows and columns of that grid.
    """

    updates: Tensor  # buffers (registered in __init__)
    env_steps: Tensor
    projector: Projector  # built by build_heads (a variant that does not use one does not build it)
    predictor: Predictor
    agent: Agent  # built by build_agent, after construction

    network_kind = "encoder"
    legacy_settings: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "feature_dim": ("agent.feature_dim",),
        "hidden_dim": ("agent.hidden_dim",),
        "agent_lr": ("agent.lr",),
        "critic_tau": ("agent.critic_tau",),
        "stddev_schedule": ("agent.stddev_schedule",),
        "stddev_clip": ("agent.stddev_clip",),
        "straight_through": ("agent.straight_through",),
        "sequential_updates": ("agent.sequential_updates",),
    }
    """Flat settings of older checkpoints and the groups they now live in."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        override = cls.__dict__.get("representation_loss")
        if override is None:
            return
        parameters = list(inspect.signature(override).parameters.values())
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) < 4 and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
            raise TypeError(
                f"{cls.__qualname__}.representation_loss takes (self, obs, next_obs); PALM now also passes the "
                "action between the views: define it as representation_loss(self, obs, next_obs, actions) "
                "(CHANGELOG.md, 'representation_loss')"
            )

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 32, 32),
        action_dim: int = 64,
        encoder_channels: int = 32,
        encoder_layers: int = 4,
        repr_dim: int = 256,
        projector_hidden: int = 512,
        projector_dim: int = 256,
        predictor_hidden: int = 64,
        pairing: Literal["temporal", "augmentation"] = "temporal",
        augmentation_pad: int = 2,
        policy: Literal["apt", "random"] = "apt",
        reward: ExplorationReward | None = None,
        reward_scale: float = 1.0,
        reward_lr: float = 1e-4,
        reward_window: Literal["first", "sum"] = "first",
        freeze_reward_batchnorm: bool = True,
        explorer_encoder: Literal["trained", "untrained"] = "trained",
        action_penalty: float = 0.0,
        repr_lr: float = 1e-4,
        repr_optimizer: Literal["adam", "sgd"] = "adam",
        repr_momentum: float = 0.9,
        repr_weight_decay: float = 0.0,
        repr_lr_schedule: Literal["constant", "cosine"] = "constant",
        agent: DDPGConfig = DDPGConfig(),
        weight_init: Literal["orthogonal", "default"] = "orthogonal",
        gradient_clip_val: float | None = None,
        probe_k: int = 20,
        probe_temperature: float = 0.07,
        trajectory_every_n_updates: int = 500,
        trajectory_envs: int = 8,
        trajectory_steps: int = 16,
    ) -> None:
        super().__init__()
        if policy not in ("apt", "random"):
            raise ValueError(f"policy must be 'apt' or 'random', got {policy!r}")
        if pairing not in ("temporal", "augmentation"):
            raise ValueError(f"pairing must be 'temporal' or 'augmentation', got {pairing!r}")
        if explorer_encoder not in ("trained", "untrained"):
            raise ValueError(f"explorer_encoder must be 'trained' or 'untrained', got {explorer_encoder!r}")
        if action_penalty < 0:
            raise ValueError(f"action_penalty must be >= 0 (a cost on large actions), got {action_penalty}")
        if reward_window not in ("first", "sum"):
            raise ValueError(f"reward_window must be 'first' or 'sum', got {reward_window!r}")
        if repr_optimizer not in ("adam", "sgd"):
            raise ValueError(f"repr_optimizer must be 'adam' or 'sgd', got {repr_optimizer!r}")
        if repr_lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"repr_lr_schedule must be 'constant' or 'cosine', got {repr_lr_schedule!r}")
        if augmentation_pad < 0:
            raise ValueError(f"augmentation_pad must be >= 0, got {augmentation_pad}")
        if is_component_spec(reward):  # a checkpoint's record: {"class_path": ..., "init_args": ...}
            reward = build_component(cast(dict[str, Any], reward), ExplorationReward, TypeError)
        if reward is not None and not isinstance(reward, ExplorationReward):
            raise TypeError(
                f"reward must be a palm_lightning.rewards.ExplorationReward (APT, ICM, RND or a subclass), "
                f"got {type(reward).__name__}"
            )
        agent = as_config(DDPGConfig, agent, "agent")
        self.save_hyperparameters(ignore=["reward"])
        record_groups(self.hparams, agent=agent)
        self.reward = APT() if reward is None else reward
        # the reward as a config would name it: load_from_checkpoint rebuilds this class with these arguments
        self.hparams["reward"] = component_spec(self.reward)
        self.hp = typed_view(PALMHParams, locals())
        self.automatic_optimization = False
        self.encoder = DrQEncoder(image_shape, encoder_channels, encoder_layers, repr_dim, weight_init=weight_init)
        # the explorer's own view (explorer_encoder: untrained): the encoder as initialised, never trained
        self.explorer_view: DrQEncoder | None = None
        if explorer_encoder == "untrained":
            self.explorer_view = copy.deepcopy(self.encoder).requires_grad_(False)
        self.agent_optimizer_names: list[str] = []  # set by configure_optimizers
        self.view_features: tuple[Tensor, Tensor] | None = None  # see representation_loss
        self.views_are_frames = False  # see checked_representation_loss
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.long))
        self.init_online_probe(probe_k, probe_temperature)

    def build_components(self) -> None:
        """Build what the hooks decide, once the most-derived ``__init__`` has returned: the
        objective's heads (:meth:`build_heads`), the reward for the width :meth:`reward_features`
        returns, then the agent (:meth:`build_agent`)."""
        self.build_heads()
        self.reward.build(self.reward_feature_width(), self.hp.action_dim)
        self.agent = self.build_agent()
        if self.hp.policy == "random":
            # No agent is trained; frozen parameters also keep DDP from waiting for their grads.
            self.agent.requires_grad_(False)

    def build_heads(self) -> None:
        """The representation objective's own networks: SimSiam's projector and predictor. A
        variant whose objective does not use them overrides this and builds its own (or nothing),
        and then also overrides what read them (:meth:`representation_loss`,
        :meth:`representation_parameters`, :meth:`reward_features`)."""
        hp = self.hp
        self.projector = Projector(self.encoder.out_dim, hp.projector_hidden, hp.projector_dim)
        self.predictor = Predictor(hp.projector_dim, hp.predictor_hidden)

    @torch.no_grad()
    def reward_feature_width(self) -> int:
        """The width ``D`` of :meth:`reward_features`, measured on two zero features in eval mode
        (no batch-norm statistics move)."""
        was_training = self.training
        self.eval()
        try:
            probe = self.reward_features(torch.zeros(2, self.encoder.out_dim))
        finally:
            self.train(was_training)
        if probe.dim() != 2 or probe.shape[0] != 2:
            raise ValueError(
                f"{type(self).__name__}.reward_features must return a Tensor of shape (B, D), got {tuple(probe.shape)}"
            )
        return int(probe.shape[1])

    def build_agent(self) -> DDPGAgent:
        """The agent acting on representations (``self.encoder.out_dim`` → ``action_dim``): DrQ-v2's
        DDPG from this module's hyperparameters. Override for another agent with the
        :class:`~palm_lightning.agents.Agent` API."""
        hp = self.hp
        return DDPGAgent(
            self.encoder.out_dim, hp.action_dim, hp.agent, weight_init=hp.weight_init, grad_clip=hp.gradient_clip_val
        )

    # --- export -------------------------------------------------------------------------------
    def exported_network(self) -> DrQEncoder:
        return self.encoder

    # --- set-up -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        env = getattr(dm, "env", None)
        if env is None:
            if stage == "fit":
                raise TypeError(
                    "PALM trains on an experience stream: use palm_lightning.datamodules.LatentManifoldDataModule "
                    f"(or another ExperienceDataModule) as data, not {type(dm).__name__}"
                )
            return
        if tuple(env.obs_shape) != tuple(self.hp.image_shape):
            raise ValueError(
                f"model.image_shape is {tuple(self.hp.image_shape)} but the environment's observations are "
                f"{tuple(env.obs_shape)}: set --model.init_args.image_shape {list(env.obs_shape)}"
            )
        if env.action_dim != self.hp.action_dim:
            raise ValueError(
                f"model.action_dim is {self.hp.action_dim} but the environment's latent (action) size is "
                f"{env.action_dim}: set --model.init_args.action_dim {env.action_dim}"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Read checkpoints written before checkpoints recorded the reward and before variants built
        only the heads they use: unused SimSiam heads are dropped (they were never trained); a
        reward whose parameters do not match gets an error naming how to pass the trained one."""
        state = checkpoint["state_dict"]
        for head in ("projector", "predictor"):
            if not hasattr(self, head):
                for key in [k for k in state if k.startswith(f"{head}.")]:
                    del state[key]
        if "reward" in checkpoint.get("hyper_parameters", {}):
            return
        saved = {k.removeprefix("reward.") for k in state if k.startswith("reward.")}
        expected = set(self.reward.state_dict())
        if saved != expected:
            raise ValueError(
                f"this checkpoint predates recorded rewards and its reward's parameters ({sorted(saved)[:3]}...) "
                f"are not those of the default {type(self.reward).__name__}: pass the reward it trained, e.g. "
                f"{type(self).__name__}.load_from_checkpoint(path, reward=palm_lightning.rewards.RND())"
            )

    def on_fit_start(self) -> None:
        check_ddp_allows_partial_backward(self)
        attached_datamodule(self).attach_policy(self.act)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """The representation's optimiser (``repr_optimizer``, group ``representation``) with the
        reward's own networks (group ``reward``, Adam ``reward_lr``: in the same Adam, or a second
        optimiser beside SGD), all stepped once per update; then the agent's, in the order it
        steps them."""
        hp = self.hp
        if hp.repr_lr_schedule == "cosine" and (self._trainer is None or self.trainer.max_steps <= 0):
            raise ValueError(
                "repr_lr_schedule: cosine decays over trainer.max_steps: set --trainer.max_steps (updates)"
            )
        representation = {
            "params": self.representation_parameters(),
            "lr": hp.repr_lr,
            "weight_decay": hp.repr_weight_decay,  # the representation's only, not the reward's networks
            "name": "representation",
        }
        reward_params = [p for p in self.reward.parameters() if p.requires_grad]
        reward = {"params": reward_params, "lr": hp.reward_lr, "name": "reward"}
        optimizers: list[torch.optim.Optimizer]
        if hp.repr_optimizer == "sgd":
            sgd = torch.optim.SGD([representation], momentum=hp.repr_momentum)
            optimizers = [sgd, torch.optim.Adam([reward])] if reward_params else [sgd]
        else:
            groups = [representation, reward] if reward_params else [representation]
            optimizers = [torch.optim.Adam(groups)]
        self.num_representation_optimizers = len(optimizers)
        if self.hp.policy != "random":
            agent_groups = self.agent.optimizer_groups()
            self.agent_optimizer_names = list(agent_groups)  # read by every update: kept, not rebuilt
            optimizers += [torch.optim.Adam(g) for g in agent_groups.values()]
        return optimizers

    # --- subclassing points -------------------------------------------------------------------
    def encode(self, images: Tensor) -> Tensor:
        """Representation ``(B, repr_dim)`` of ``uint8`` observations or float images in ``[-1, 1]``
        ``(B, C, H, W)``."""
        return self.encoder(from_uint8(images) if images.dtype == torch.uint8 else images)

    def representation_pair(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The two views the representation objective pulls together, from the float window
        ``(B, n+1, C, H, W)``: two ``(B, C, H, W)`` tensors. ``(o_t, o_{t+1})`` for ``pairing:
        temporal``, two independent random shifts of ``o_t`` for ``pairing: augmentation``."""
        if self.hp.pairing == "augmentation":
            pad = self.hp.augmentation_pad
            return random_shift(images[:, 0], pad), random_shift(images[:, 0], pad)
        return images[:, 0], images[:, 1]

    def representation_loss(self, obs: Tensor, next_obs: Tensor, actions: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """SimSiam on the two views of :meth:`representation_pair` (float images ``(B, C, H, W)``);
        ``actions`` ``(B, |A|)`` is the window's first action ``a_t``, the one taken between ``o_t``
        and ``o_{t+1}`` (SimSiam ignores it; an inverse-dynamics objective predicts it).

        Override to change the objective (e.g. a contrastive loss); return a scalar loss and a
        dict of scalar metrics to log (``train/ssl_loss`` and the collapse monitor ``train/z_std``).
        An override that also sets ``self.view_features`` to the detached encoder outputs of its
        two views lets the update reuse them when the views are the window's frames ``o_t`` and
        ``o_{t+1}`` themselves; one that does not costs one more encoder pass, nothing else.
        """
        features1, features2 = self.encoder(obs), self.encoder(next_obs)
        self.view_features = (features1.detach(), features2.detach())
        return simsiam_heads(self.projector, self.predictor, features1, features2)

    def representation_parameters(self) -> list[nn.Parameter]:
        """What the representation learning rate (``repr_lr``) updates: the encoder and SimSiam's
        heads. Override when the objective has other heads (and leave momentum copies out)."""
        return [*self.encoder.parameters(), *self.projector.parameters(), *self.predictor.parameters()]

    def after_update(self) -> None:
        """Called at the end of every update, after the optimiser steps, the target-critic update
        and ``updates += 1``: the place for a subclass's own momentum (Polyak) networks."""

    @torch.no_grad()
    def reward_features(self, features: Tensor) -> Tensor:
        """Where exploration rewards are computed: ``(B, repr_dim)`` representations → ``(B,
        projector_dim)``, the Siamese projection (PALM: APT's particles live in the Siamese space);
        with ``explorer_encoder: untrained`` the untrained view's features themselves."""
        if self.explorer_view is not None:
            return features
        return self.projector(features)

    @torch.no_grad()
    def intrinsic_reward(self, step: RewardStep) -> Tensor:
        """The exploration reward of every transition of ``step`` (reward-space features ``(B, D)``
        and actions ``(B, |A|)``): a float tensor of shape ``(B,)``. Default: ``self.reward``."""
        return self.reward(step)

    @torch.no_grad()
    def act(self, obs: Tensor, env_steps: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        """The acting policy the data stream calls: ``uint8`` observations ``(N, C, H, W)`` → actions
        ``(N, action_dim)`` in ``[-1, 1]`` (uniform with ``policy: random``)."""
        if self.hp.policy == "random":
            return torch.rand(obs.shape[0], self.hp.action_dim, device=obs.device) * 2 - 1
        with torch.autocast(obs.device.type, enabled=False):
            return self.agent.act(self.explorer_features(obs).float(), env_steps, eval_mode=eval_mode)

    def explorer_features(self, images: Tensor) -> Tensor:
        """What the actor reads of ``uint8`` observations or float images: the representation
        (:meth:`encode`), or the untrained view's features with ``explorer_encoder: untrained``."""
        if self.explorer_view is None:
            return self.encode(images)
        return self.explorer_view(from_uint8(images) if images.dtype == torch.uint8 else images)

    # --- training -----------------------------------------------------------------------------
    def checked_representation_loss(self, images: Tensor, actions: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """:meth:`representation_pair` then :meth:`representation_loss` on the float window and its
        first action ``(B, |A|)``, with their return values checked (a ``ValueError`` names the hook
        and what it must return). Records whether the views are the window's frames 0 and 1
        unchanged (``self.views_are_frames``): only then can their features be reused."""
        name = type(self).__name__
        # Any: a subclass may return anything; these checks are what turns that into a clear error
        pair: Any = self.representation_pair(images)
        size = images.shape[0]
        if not (
            isinstance(pair, (tuple, list))
            and len(pair) == 2
            and all(isinstance(v, Tensor) and v.dim() == 4 and v.shape[0] == size for v in pair)
        ):
            got: object = (
                [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in pair]
                if isinstance(pair, (tuple, list))
                else type(pair).__name__
            )
            raise ValueError(
                f"{name}.representation_pair must return two Tensors of shape ({size}, C, H, W), got {got}"
            )
        self.views_are_frames = all(same_tensor(view, images[:, k]) for k, view in enumerate(pair))
        result: Any = self.representation_loss(pair[0], pair[1], actions)
        if not (
            isinstance(result, tuple)
            and len(result) == 2
            and isinstance(result[0], Tensor)
            and result[0].dim() == 0
            and isinstance(result[1], dict)
        ):
            got_loss: object = (
                type(result).__name__
                if not isinstance(result, tuple)
                else [tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__ for v in result]
            )
            raise ValueError(
                f"{name}.representation_loss must return (a scalar Tensor of shape (), a dict of "
                f"scalar Tensors to log), got {got_loss}"
            )
        return result

    @torch.no_grad()
    def window_features(self, images: Tensor) -> Tensor:
        """Encoder features of the frames the agent and the reward read, from the float window
        ``(B, n+1, C, H, W)``: ``(B, F, D)`` for the ``F`` frames :meth:`reward_frames` lists, in its
        order (frame 0 and the last are always among them: the agent's ``o_t`` and ``o_{t+n}``).

        The representation step's features of ``o_t`` and ``o_{t+1}`` (``self.view_features``) are
        reused when its views were those frames unchanged, so each frame is encoded once. With
        ``explorer_encoder: untrained`` they are the untrained view's features instead."""
        size, window = images.shape[:2]
        frames = self.reward_frames(window)
        if frames[0] != 0 or frames[-1] != window - 1 or len(set(frames)) != len(frames):
            raise ValueError(
                f"{type(self).__name__}.reward_frames({window}) must list distinct frame indices from 0 to "
                f"{window - 1}, starting with 0 and ending with {window - 1}; got {frames}"
            )
        known: dict[int, Tensor] = {}
        if self.views_are_frames and self.view_features is not None and self.explorer_view is None:
            known = {0: self.view_features[0], 1: self.view_features[1]}
        missing = [k for k in frames if k not in known]
        if missing:
            encode = self.encoder if self.explorer_view is None else self.explorer_view
            encoded = encode(images[:, missing].flatten(0, 1)).view(size, len(missing), -1)
            known.update({k: encoded[:, i] for i, k in enumerate(missing)})
        return torch.stack([known[k] for k in frames], dim=1)

    def reward_frames(self, window: int) -> list[int]:
        """Which frames of an ``n+1 = window``-frame window :meth:`reward_steps` reads (sorted, from
        0 to ``n``): ``[0, n]`` for ``reward_window: first``, all of them for ``sum``. Only these are
        encoded; override together with :meth:`reward_steps`."""
        if self.hp.reward_window == "first":
            return [0, window - 1]
        return list(range(window))

    def reward_steps(self, particles: Tensor, actions: Tensor) -> list[RewardStep]:
        """The transitions a window is rewarded for (``reward_window``), from reward-space features
        ``(B, F, D)`` of the frames :meth:`reward_frames` lists (in its order) and the window's
        actions ``(B, n, |A|)``."""
        if self.hp.reward_window == "first":
            return [RewardStep(particles[:, 0], actions[:, 0], particles[:, -1])]
        return [RewardStep(particles[:, k], actions[:, k], particles[:, k + 1]) for k in range(actions.shape[1])]

    def window_reward(self, steps: list[RewardStep], step_discounts: Tensor) -> Tensor:
        """Intrinsic reward ``(B,)`` of each window: the first transition's (``first``) or the
        γᵏ-weighted sum over its steps (``sum``). Checks every :meth:`intrinsic_reward` result."""
        size = steps[0].obs.shape[0]
        hook = f"{type(self).__name__}.intrinsic_reward"
        returned = [self.intrinsic_reward(s) for s in steps]
        if any(isinstance(r, tuple) for r in returned):
            raise ValueError(
                f"{hook} returned a tuple; it returns one Tensor of shape ({size},) (the old contract's "
                "(reward, logs) tuple is gone: log from ExplorationReward.metrics; CHANGELOG.md, 'RewardStep')"
            )
        rewards = [check_shape(r, (size,), hook).float() for r in returned]
        if len(rewards) == 1:
            return rewards[0]
        return (step_discounts[:, : len(rewards)] * torch.stack(rewards, 1)).sum(1)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        hp = self.hp
        frames = batch["frames"]  # uint8 (B, n+1, C, H, W)
        size = frames.shape[0]
        self.env_steps.fill_(int(batch["env_steps"]))
        optimizers = module_optimizers(self)
        images = from_uint8(frames)
        self.view_features = None  # set by representation_loss when it can be reused
        ssl_loss, logs = self.checked_representation_loss(images, batch["actions"][:, 0].float())
        losses = {"ssl_loss": ssl_loss}

        with torch.no_grad():
            features = self.window_features(images).float()
            flat = features.flatten(0, 1)
            if hp.freeze_reward_batchnorm:
                with frozen_batchnorm_stats(self):
                    particles = self.reward_features(flat)
            else:
                particles = self.reward_features(flat)
            if particles.dim() != 2 or particles.shape[0] != flat.shape[0]:
                raise ValueError(
                    f"{type(self).__name__}.reward_features must return a Tensor of shape ({flat.shape[0]}, D), "
                    f"got {tuple(particles.shape)}"
                )
            particles = particles.float().view(size, features.shape[1], -1)
        steps = self.reward_steps(particles, batch["actions"].float())
        reward_training = self.reward.loss(steps[0])
        if reward_training is not None:
            losses["reward_loss"], reward_logs = reward_training
            logs.update(reward_logs)

        self.stop_on_nan(losses)
        representation_optimizers = optimizers[: self.num_representation_optimizers]
        for optimizer in representation_optimizers:
            optimizer.zero_grad(set_to_none=True)
        self.manual_backward(cast(Tensor, sum(losses.values())))  # a sum of tensors (never empty: ssl_loss)
        logs["train/repr_lr"] = torch.tensor(self.set_representation_lr(representation_optimizers[0]))
        for index, optimizer in enumerate(representation_optimizers):
            if hp.gradient_clip_val is not None:
                self.clip_gradients(optimizer, gradient_clip_val=hp.gradient_clip_val, gradient_clip_algorithm="norm")
            # max_steps counts updates: the first optimiser's step counts, the reward's Adam beside SGD not
            (optimizer if index == 0 else UncountedOptimizer(self, optimizer)).step()

        with torch.no_grad():
            intrinsic = self.window_reward(steps, batch["step_discounts"].float())
        logs.update(self.reward.metrics())
        logs["reward/intrinsic_mean"] = intrinsic.mean()
        logs["reward/intrinsic_std"] = intrinsic.std()
        logs["reward/intrinsic_max"] = intrinsic.max()

        if hp.policy != "random":
            with torch.autocast(self.device.type, enabled=False):
                transition = Transition(
                    obs=features[:, 0],
                    action=batch["action"].float(),
                    reward=batch["reward"].float() + hp.reward_scale * intrinsic - self.action_cost(batch),
                    discount=batch["discount"].float(),
                    next_obs=features[:, -1],
                )
                names = self.agent_optimizer_names
                # max_steps counts updates: the representation step counted, the agent's not
                stepped = [UncountedOptimizer(self, o) for o in optimizers[self.num_representation_optimizers :]]
                agent_logs = self.agent.update(
                    transition,
                    int(batch["env_steps"]),
                    dict(zip(names, stepped, strict=True)),
                    backward=self.manual_backward,
                    check=self.stop_on_nan,
                )
            logs.update(agent_logs)
        self.updates += 1
        self.after_update()

        logs["charts/env_steps"] = batch["env_steps"].float()
        logs["charts/env_fps"] = batch["env_fps"].float()
        logs["charts/updates"] = self.updates.float()
        self.log_dict({k: v.float() for k, v in logs.items()}, on_step=True, on_epoch=False)
        total: Tensor | int = sum(v.detach() for v in losses.values())
        total = total + sum(logs[k] for k in ("train/critic_loss", "train/actor_loss") if k in logs)
        self.log("train/loss", total, prog_bar=True)

    def action_cost(self, batch: dict[str, Tensor]) -> Tensor | float:
        """``action_penalty · Σ_k γᵏ mean_i(a_{t+k,i}²)`` over the window's actions ``(B, n, |A|)``."""
        if not self.hp.action_penalty:
            return 0.0
        actions = batch["actions"].float()
        per_step = actions.pow(2).mean(-1)  # (B, n)
        return self.hp.action_penalty * (batch["step_discounts"].float()[:, : per_step.shape[1]] * per_step).sum(1)

    def set_representation_lr(self, optimizer: torch.optim.Optimizer) -> float:
        """The ``representation`` group's rate for this update: ``repr_lr``, or with ``repr_lr_schedule:
        cosine`` ``repr_lr · ½(1 + cos(π·t/T))`` for update ``t`` of ``T = trainer.max_steps``."""
        lr = self.hp.repr_lr
        if self.hp.repr_lr_schedule == "cosine":
            total = max(1, self.trainer.max_steps)
            lr *= 0.5 * (1.0 + math.cos(math.pi * min(int(self.updates), total) / total))
        for group in optimizer.param_groups:
            if group.get("name") == "representation":
                group["lr"] = lr
        return lr

    def stop_on_nan(self, losses: dict[str, Tensor]) -> None:
        """A non-finite loss stops training after a checkpoint of the last finite state."""
        stop_on_nan(
            self,
            losses,
            int(self.updates),
            int(self.env_steps),
            "Lower the learning rates or set model.init_args.gradient_clip_val.",
        )

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.hp.trajectory_every_n_updates
        if every and int(self.updates) % every == 0 and self.trainer.is_global_zero:
            self.log_trajectories()

    def log_trajectories(self) -> None:
        """A grid of fresh trajectories under the current policy: one row per environment."""
        logger = self.logger
        if not isinstance(logger, TensorBoardLogger):
            return
        from torchvision.utils import make_grid

        hp = self.hp
        frames = attached_datamodule(self).rollout(self.act, hp.trajectory_envs, hp.trajectory_steps)
        grid = make_grid(frames.flatten(0, 1).cpu(), nrow=frames.shape[1], padding=1, pad_value=128)
        logger.experiment.add_image("trajectories", grid, global_step=int(self.updates))

    # --- the online probe on real images (OnlineKNNProbe: loader 0 = bank, 1 = queries) --------
    def probe_features(self, images: Tensor) -> Tensor:
        """Features ``(B, repr_dim)`` of real ``uint8`` or float images for the online kNN probe."""
        return self.encode(images)
