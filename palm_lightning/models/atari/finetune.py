"""RL fine-tuning of an image encoder on a real Atari game: DrQ(ε) under the Atari-100k protocol.

:class:`AtariFinetune` holds a :class:`~palm_lightning.agents.drq_epsilon.DrQEpsilonAgent` whose
encoder is a PALM (or any encoder-contract) checkpoint, the same architecture freshly initialised,
or a from-scratch :class:`~palm_lightning.nn.encoders.DrQEncoder`; the encoder is trained with the
Q head or kept frozen. It trains on an :class:`~palm_lightning.datamodules.AtariGameDataModule`
stream (one update per agent step, ``trainer.max_steps`` = updates: Atari-100k is 100 000 agent
steps, i.e. ``max_steps = 100_000 − seed_frames``) and logs the game scores of finished training
games and of ε-greedy evaluation games, raw and human-normalised.

Frame stacking against a one-frame encoder: PALM's encoders see one grayscale frame
(``image_shape = (1, H, W)``), DrQ(ε) acts on a stack of 4. When the encoder has one input channel
and the stream stacks ``F > 1`` frames, the first convolution is widened to ``F`` channels
(``stack_init``): ``"mean"`` repeats the pretrained filters over the frames divided by ``F`` (a
stack of identical frames gives exactly the pretrained response; motion shows as differences),
``"last"`` keeps the pretrained filters on the newest frame and zeros on the others (exactly the
pretrained features of the current frame at the start; a frozen encoder then never sees motion).
``frame_stack: 1`` on the DataModule avoids the question (and the motion information).

A frozen encoder (``freeze_encoder``) is cheap: without augmentation in front of it
(``agent.frozen_augmentation: false``, the default — why, in
:mod:`palm_lightning.agents.drq_epsilon`'s docstring) its features are a function of the frame, so
the stream's replay buffer caches them per slot (encoded when a batch first draws the slot, dropped
when the slot is overwritten) and an update trains the dueling head alone on cached features: on
a CPU an order of magnitude cheaper than an augmented, uncached frozen update or a fine-tuned one
(``benchmarks/atari.py --sections frozen`` times them; docs/results/benchmarks.md). The cache
costs ``buffer_capacity × out_dim`` float32 (100 000 × 256: 102 MB); an encoder with a large
``out_dim`` (``repr_dim: null``: the flat conv map) makes it large, and ``agent.frozen_augmentation:
true`` turns it off. The frozen encoder stays in eval mode:
Lightning's "Found N module(s) in eval mode at the start of training" warning is about it, and
expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

import lightning as L
import torch
from torch import Tensor, nn

from palm_lightning.agents.base import Transition
from palm_lightning.agents.drq_epsilon import DrQEpsilonAgent, DrQEpsilonConfig
from palm_lightning.datamodules.atari.game import human_normalized_score
from palm_lightning.models.evaluation.frozen_encoder import build_encoder
from palm_lightning.nn.encoders import DrQEncoder
from palm_lightning.training.config_groups import UpgradesGroupedSettings, as_config, record_groups, typed_view
from palm_lightning.training.typed_lightning import attached_datamodule, module_optimizers

SCRATCH = "scratch"
StackInit = Literal["mean", "last"]


def expand_input_channels(encoder: nn.Module, channels: int, mode: StackInit = "mean") -> nn.Module:
    """Widen ``encoder``'s first convolution from 1 to ``channels`` input channels, in place (see
    the module docstring for ``mode``); ``image_shape`` (and ``config``'s, if any) follow."""
    if mode not in ("mean", "last"):
        raise ValueError(f"stack_init must be 'mean' or 'last', got {mode!r}")
    parent, name, conv = _first_conv(encoder)
    if conv.in_channels != 1:
        raise ValueError(f"only a one-channel encoder can be widened, this one takes {conv.in_channels}")
    wide = nn.Conv2d(
        channels,
        conv.out_channels,
        cast(tuple[int, int], conv.kernel_size),
        cast(tuple[int, int], conv.stride),
        cast(tuple[int, int], conv.padding),
        bias=conv.bias is not None,
    ).to(conv.weight.device)
    with torch.no_grad():
        if mode == "mean":
            wide.weight.copy_(conv.weight.repeat(1, channels, 1, 1) / channels)
        else:
            wide.weight.zero_()
            wide.weight[:, -1:].copy_(conv.weight)  # FrameStackObservation: the newest frame is last
        if conv.bias is not None:
            assert wide.bias is not None
            wide.bias.copy_(conv.bias)
    setattr(parent, name, wide)
    shape: Any = encoder.image_shape
    new_shape = (channels, int(shape[1]), int(shape[2]))
    setattr(encoder, "image_shape", new_shape)  # noqa: B010  (the encoder contract's field, untyped on nn.Module)
    config = getattr(encoder, "config", None)
    if isinstance(config, dict) and "image_shape" in config:
        config["image_shape"] = new_shape
    return encoder


def _first_conv(module: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    for parent in module.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                return parent, name, child
    raise ValueError(f"{type(module).__name__} has no Conv2d to widen")


@dataclass(frozen=True)
class AtariFinetuneHParams:
    """The module's hyperparameters, typed: its constructor's arguments (``self.hparams``)."""

    encoder: str
    random_init: bool
    freeze_encoder: bool
    stack_init: StackInit
    scratch_channels: int
    scratch_layers: int
    scratch_repr_dim: int | None
    agent: DrQEpsilonConfig
    eval_every: int
    eval_episodes: int
    eval_max_steps: int | None


class AtariFinetune(UpgradesGroupedSettings, L.LightningModule):
    """DrQ(ε) on one ALE game from a given encoder (manual optimisation: one Adam step per update,
    so ``trainer.max_steps`` counts updates).

    Logs ``train/q_loss``, ``train/q``, ``train/epsilon``, …, ``train/env_steps``,
    ``train/episode_return`` and ``train/human_normalized_score`` (mean over the games finished
    since the last step that finished one), and every ``eval_every`` updates and after the last
    one ``eval/episode_return`` and ``eval/human_normalized_score`` (mean over ``eval_episodes``
    ε-greedy games at ``agent.epsilon_eval``; Atari-100k reports 100 games after training).

    Args:
        encoder: ``"scratch"`` (a fresh :class:`~palm_lightning.nn.encoders.DrQEncoder` of
            ``scratch_*`` size on the stream's frames: the DrQ(ε) baseline on our architecture —
            Dopamine uses the Nature-DQN CNN) or the path of an encoder network file / package
            ``.ckpt`` (e.g. a PALM run's), as the probes take it.
        random_init: with a path, the file's architecture freshly initialised (the "random
            encoder" baseline of the probes).
        freeze_encoder: train only the Q head on fixed features (cached unless
            ``agent.frozen_augmentation``: see the module docstring). The module's setting (it
            owns the encoder), passed to the agent.
        stack_init: how a one-channel encoder's first convolution takes the frame stack
            (``"mean"`` or ``"last"``, see the module docstring).
        scratch_channels, scratch_layers, scratch_repr_dim: the scratch encoder's size.
        agent: the DrQ(ε) agent's settings
            (:class:`~palm_lightning.agents.drq_epsilon.DrQEpsilonConfig`, DrQ(ε)'s published
            values by default; the stream holds batch size, n-step, γ and the min replay history),
            nested in a config: ``agent: {lr: 1e-4, epsilon_train: 0.01}`` or
            ``--model.init_args.agent.lr 1e-4``. With ``freeze_encoder``,
            ``agent.frozen_augmentation`` keeps DrQ's augmentation in front of the frozen encoder
            (no feature cache then), and ``agent.standardize_features`` standardizes the features
            per dimension before the Q head with the statistics of the replay's frames at the
            first update (the seed frames; :mod:`palm_lightning.nn.feature_standardizer` says
            why); both off by default.
        eval_every: evaluate every that many updates (0: only after the last update).
        eval_episodes: evaluation games per evaluation.
        eval_max_steps: cut evaluation games after that many agent steps (``None``: the game's
            own end or v5's 27 000 steps).
    """

    legacy_settings: ClassVar[Mapping[str, tuple[str, ...]]] = {
        name: (f"agent.{name}",)
        for name in (
            "hidden_dim",
            "lr",
            "adam_eps",
            "target_update_period",
            "double_dqn",
            "loss",
            "epsilon_train",
            "epsilon_eval",
            "epsilon_decay_period",
            "epsilon_warmup",
            "shift_pad",
            "intensity_scale",
            "grad_clip",
            "frozen_augmentation",
            "standardize_features",
        )
    }
    """Flat settings of older checkpoints and the group they now live in (the agent's, same names)."""

    def __init__(
        self,
        encoder: str = SCRATCH,
        random_init: bool = False,
        freeze_encoder: bool = False,
        stack_init: StackInit = "mean",
        scratch_channels: int = 32,
        scratch_layers: int = 4,
        scratch_repr_dim: int | None = 256,
        agent: DrQEpsilonConfig = DrQEpsilonConfig(),
        eval_every: int = 0,
        eval_episodes: int = 10,
        eval_max_steps: int | None = None,
    ) -> None:
        super().__init__()
        if stack_init not in ("mean", "last"):
            raise ValueError(f"stack_init must be 'mean' or 'last', got {stack_init!r}")
        agent = as_config(DrQEpsilonConfig, agent, "agent")
        if agent.standardize_features and not freeze_encoder:
            raise ValueError(
                "agent.standardize_features needs freeze_encoder: true (the statistics are taken once, and a "
                "fine-tuned encoder's features move away from them)"
            )
        if eval_every < 0 or eval_episodes < 0:
            raise ValueError(f"eval_every and eval_episodes must be ≥ 0, got {eval_every}, {eval_episodes}")
        self.save_hyperparameters()
        record_groups(self.hparams, agent=agent)
        self.hp = typed_view(AtariFinetuneHParams, locals())
        self.automatic_optimization = False
        self.agent: DrQEpsilonAgent | None = None

    # --- building ---------------------------------------------------------------------------------
    def make_encoder(self, obs_shape: tuple[int, int, int]) -> nn.Module:
        """The agent's encoder for observations ``(F, H, W)`` (see ``encoder``/``stack_init``)."""
        hp = self.hp
        if hp.encoder == SCRATCH:
            return DrQEncoder(
                obs_shape, hp.scratch_channels, hp.scratch_layers, hp.scratch_repr_dim, weight_init="orthogonal"
            )
        network = build_encoder(hp.encoder, hp.random_init)
        shape: Any = network.image_shape
        if tuple(shape[1:]) != tuple(obs_shape[1:]):
            raise ValueError(
                f"the encoder in {hp.encoder} takes {tuple(shape[1:])} frames but the game streams "
                f"{tuple(obs_shape[1:])}: set the DataModule's screen_size to {shape[1]}"
            )
        if int(shape[0]) != obs_shape[0]:
            if int(shape[0]) != 1:
                raise ValueError(
                    f"the encoder takes {shape[0]} channels, the game streams {obs_shape[0]} stacked frames"
                )
            expand_input_channels(network, obs_shape[0], hp.stack_init)
        return network.train()

    def build(self, obs_shape: tuple[int, int, int], num_actions: int) -> DrQEpsilonAgent:
        """Make the agent (once) for observations ``obs_shape`` and ``num_actions`` actions."""
        if self.agent is None:
            hp = self.hp
            self.agent = DrQEpsilonAgent(
                self.make_encoder(obs_shape), num_actions, hp.agent, freeze_encoder=hp.freeze_encoder
            )
        return self.agent

    def setup(self, stage: str) -> None:
        dm = attached_datamodule(self)
        if dm is None:
            raise ValueError("AtariFinetune trains on an AtariGameDataModule (none attached)")
        dm.setup(stage)
        self.build(tuple(dm.env.obs_shape), int(dm.action_space.n))

    def _agent(self) -> DrQEpsilonAgent:
        if self.agent is None:
            raise RuntimeError("AtariFinetune.build (or setup) has not run: no agent yet")
        return self.agent

    # --- acting -----------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        dm = attached_datamodule(self)
        dm.attach_policy(self.act)
        agent = self._agent()
        if agent.caches_features:  # a frozen encoder's features, kept per replay slot
            assert dm.buffer is not None  # made in setup()
            dm.buffer.cache_features(agent.encode, agent.q.out_dim)

    def act(self, obs: Tensor, env_steps: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        return self._agent().act(obs.to(self.device), env_steps, eval_mode)

    @torch.no_grad()
    def evaluate(self, episodes: int) -> list[float]:
        """Game scores of ``episodes`` ε-greedy games (``agent.epsilon_eval``) on fresh emulators."""
        dm = attached_datamodule(self)
        games = dm.make_games(1, dm.seed + 1_000_003, evaluation=True, max_episode_steps=self.hp.eval_max_steps)
        try:
            obs, _ = games.reset()
            while len(games.finished_scores) < episodes:
                _, _, terminated, truncated, _ = games.step(self.act(obs, 0, eval_mode=True).cpu())
                obs, _ = games.reset(mask=terminated | truncated)
        finally:
            games.close()
        return games.finished_scores[:episodes]

    # --- learning ---------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        """One fused Adam per agent optimiser: on the CPU the default (for-loop) Adam step over the
        scratch network's 10 M parameters is a large share of an update, and the fused one is
        several times faster (benchmarks/atari.py times the update against SB3's DQN)."""
        groups = self._agent().optimizer_groups()
        return [torch.optim.Adam(g, fused=True) for g in groups.values()]

    @torch.no_grad()
    def replay_features(self, chunk: int = 512) -> Tensor:
        """The frozen encoder's features of every frame in the replay buffer ``(N, out_dim)``: from
        the feature cache where there is one (filling it), else encoded in chunks of ``chunk``."""
        dm = attached_datamodule(self)
        buffer = dm.buffer
        assert buffer is not None  # made in setup()
        rows = torch.arange(buffer.size, device=buffer.device)[:, None].expand(-1, buffer.num_envs)
        envs = torch.arange(buffer.num_envs, device=buffer.device)[None, :].expand(buffer.size, -1)
        filled = rows < buffer.count[None, :]
        rows, envs = rows[filled], envs[filled]
        agent = self._agent()
        parts = []
        for start in range(0, rows.numel(), chunk):
            r, e = rows[start : start + chunk], envs[start : start + chunk]
            parts.append(buffer.features_at(r, e) if buffer.features is not None else agent.encode(buffer.obs_at(r, e)))
        return torch.cat(parts)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        agent = self._agent()
        if agent.needs_feature_standardizer_fit:  # once, before the first update (a resumed run keeps its own)
            agent.fit_feature_standardizer(self.replay_features())
        transition = Transition(batch["obs"], batch["action"], batch["reward"], batch["discount"], batch["next_obs"])
        (optimizer,) = module_optimizers(self)
        features = (batch["obs_features"], batch["next_obs_features"]) if "obs_features" in batch else None
        logs = agent.update(
            transition, int(batch["env_steps"]), {"q": optimizer}, backward=self.manual_backward, features=features
        )
        logs["train/env_steps"] = batch["env_steps"].float()
        logs["train/updates"] = agent.updates.float()
        self.log_dict(logs, prog_bar=False)
        dm = attached_datamodule(self)
        scores = dm.pop_episode_returns()
        if scores:
            self._log_scores("train", scores, dm.game)
        updates = int(agent.updates)
        last = self.trainer.max_steps > 0 and self.trainer.global_step >= self.trainer.max_steps
        periodic = self.hp.eval_every > 0 and updates % self.hp.eval_every == 0
        if self.hp.eval_episodes > 0 and (periodic or last):
            self._log_scores("eval", self.evaluate(self.hp.eval_episodes), dm.game)

    def _log_scores(self, stage: str, scores: list[float], game: str) -> None:
        """Scores are events: written to the logger once, at this update. Through ``self.log`` they
        would be written again at every later logging step of the stream's single epoch (a flat
        line between two evaluations, as if the agent had been evaluated all along)."""
        if self.logger is None:
            return
        mean = sum(scores) / len(scores)
        metrics = {
            f"{stage}/episode_return": mean,
            f"{stage}/human_normalized_score": human_normalized_score(game, mean),
            f"{stage}/episodes": float(len(scores)),
        }
        self.logger.log_metrics(metrics, step=self.global_step)
