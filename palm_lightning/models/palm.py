"""PALM: a Siamese representation learned from an APT agent's play in a generator's latent manifold.

One training step (one gradient update, so ``trainer.max_steps`` counts updates):

1. the data stream has already stepped the environments with :meth:`PALM.act` and hands over a
   batch of n-step windows ``frames (B, n+1, C, H, W)`` of generated observations;
2. **representation**: SimSiam on two views (:meth:`PALM.representation_loss`): by default
   consecutive observations ``(o_t, o_{t+1})`` of the same trajectory, no augmentation, as the
   paper; ``pairing: augmentation`` takes two random shifts of ``o_t`` instead (DrQ-style views,
   the ablation of the temporal pairs) (:meth:`PALM.representation_pair`);
3. **intrinsic reward**: APT's particle entropy of every next frame of the window in the
   Siamese space (:meth:`PALM.intrinsic_reward`), summed n-step with the stream's discounts;
4. **agent**: DrQ-v2's DDPG (twin critics, target critic, clipped target noise, scheduled
   exploration) on *detached* representations, in float32 whatever the trainer's precision.

All losses are summed and back-propagated once (the actor's loss goes through a detached copy of
the critic, so nothing leaks), clipped with ``self.clip_gradients`` and applied by one Adam with
a parameter group per part. The class label of the episode never reaches the module.

Subclassing points: :meth:`representation_pair` (which two views), :meth:`representation_loss`
(the objective on them), :meth:`representation_parameters` (what the representation optimiser
updates), :meth:`reward_features`, :meth:`intrinsic_reward`, :meth:`act` (``policy: random`` is the
no-exploration ablation) and :meth:`after_update` (e.g. momentum networks).
:class:`~palm_lightning.models.palm_curl.PALMCURL` is an example: CURL's objective in place of
SimSiam's through ``representation_loss``, ``representation_parameters``, ``reward_features`` and
``after_update``.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn

from palm_lightning.augment import random_shift
from palm_lightning.checkpoints import ExportableMixin
from palm_lightning.envs.latent_manifold import from_uint8
from palm_lightning.evaluation.knn import knn_classify  # noqa: F401  (also re-exported: scripts import it from here)
from palm_lightning.losses.apt import RunningMean, particle_reward
from palm_lightning.losses.ddpg import actor_loss, critic_loss, soft_update, td_target
from palm_lightning.models.nan_guard import stop_on_nan
from palm_lightning.nn.actor_critic import Actor, Critic, sample_action
from palm_lightning.nn.encoders import DrQEncoder
from palm_lightning.nn.heads import Predictor, Projector
from palm_lightning.nn.siamese import simsiam_forward
from palm_lightning.schedules import parse_schedule, schedule


class PALM(ExportableMixin, L.LightningModule):
    """PALM's learner: Siamese temporal representation + APT exploration + DDPG.

    Checkpoints carry the encoder as a network of kind ``"encoder"``, so any ``.ckpt`` of this
    module is an input of the probes (``configs/eval/linear_fmnist.yaml``).

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
        policy: ``"apt"`` (explore with the learned agent) or ``"random"`` (uniform actions, no
            agent updates: the no-exploration ablation).
        knn_k, knn_avg, knn_rms, knn_clip: APT's reward options, URLB defaults (12, avg, rms, 1e-4).
        reward_scale: factor on the intrinsic reward.
        feature_dim, hidden_dim: actor/critic trunk and MLP widths (DrQ-v2: 50, 1024).
        repr_lr: Adam learning rate of the encoder and SimSiam heads (1e-4, DrQ-v2's single
            rate; the paper does not publish one). Measured on three seeds in the README's
            representation table: at 1e-3 the linear probe on real images falls below the
            untrained encoder's within 1 000 updates, at 1e-4 it does not.
        agent_lr: Adam learning rate of actor and critic (DrQ-v2: 1e-4).
        critic_tau: target-critic Polyak rate (DrQ-v2: 0.01).
        stddev_schedule: exploration noise std (DrQ-v2 style string, e.g. ``linear(1.0,0.1,100000)``;
            counted in environment frames).
        stddev_clip: clip of the target-policy smoothing noise (0.3).
        gradient_clip_val: max global gradient norm (``None``: no clipping, as DrQ-v2).
        probe_k, probe_temperature: the online kNN probe (20, 0.07).
        trajectory_every_n_updates: log a grid of trajectories this often (0: never).
        trajectory_envs, trajectory_steps: rows and columns of that grid.
    """

    network_kind = "encoder"

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
        knn_k: int = 12,
        knn_avg: bool = True,
        knn_rms: bool = True,
        knn_clip: float = 0.0001,
        reward_scale: float = 1.0,
        feature_dim: int = 50,
        hidden_dim: int = 1024,
        repr_lr: float = 1e-4,
        agent_lr: float = 1e-4,
        critic_tau: float = 0.01,
        stddev_schedule: str = "linear(1.0,0.1,100000)",
        stddev_clip: float = 0.3,
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
        if augmentation_pad < 0:
            raise ValueError(f"augmentation_pad must be >= 0, got {augmentation_pad}")
        parse_schedule(stddev_schedule)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.encoder = DrQEncoder(tuple(image_shape), encoder_channels, encoder_layers, repr_dim)
        self.projector = Projector(self.encoder.out_dim, projector_hidden, projector_dim)
        self.predictor = Predictor(projector_dim, predictor_hidden)
        self.actor = Actor(self.encoder.out_dim, action_dim, feature_dim, hidden_dim)
        self.critic = Critic(self.encoder.out_dim, action_dim, feature_dim, hidden_dim)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        if policy == "random":
            # No agent is trained; frozen parameters also keep DDP from waiting for their grads.
            self.actor.requires_grad_(False)
            self.critic.requires_grad_(False)
        self.reward_normalizer = RunningMean()
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.long))
        self._probe_features: dict[int, list[Tensor]] = {0: [], 1: []}
        self._probe_labels: dict[int, list[Tensor]] = {0: [], 1: []}

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
        if tuple(env.obs_shape) != tuple(self.hparams.image_shape):
            raise ValueError(
                f"model.image_shape is {tuple(self.hparams.image_shape)} but the environment's observations are "
                f"{tuple(env.obs_shape)}: set --model.init_args.image_shape {list(env.obs_shape)}"
            )
        if env.action_dim != self.hparams.action_dim:
            raise ValueError(
                f"model.action_dim is {self.hparams.action_dim} but the environment's latent (action) size is "
                f"{env.action_dim}: set --model.init_args.action_dim {env.action_dim}"
            )

    def on_fit_start(self) -> None:
        self.trainer.datamodule.attach_policy(self.act)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = [{"params": self.representation_parameters(), "lr": self.hparams.repr_lr, "name": "representation"}]
        if self.hparams.policy != "random":
            agent = [*self.actor.parameters(), *self.critic.parameters()]
            groups.append({"params": agent, "lr": self.hparams.agent_lr, "name": "agent"})
        return torch.optim.Adam(groups)

    # --- subclassing points -------------------------------------------------------------------
    def encode(self, images: Tensor) -> Tensor:
        """Representation of ``uint8`` observations or float images in ``[-1, 1]``."""
        return self.encoder(from_uint8(images) if images.dtype == torch.uint8 else images)

    def representation_pair(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """The two views the representation objective pulls together, from the float window
        ``(B, n+1, C, H, W)``: ``(o_t, o_{t+1})`` for ``pairing: temporal``, two independent random
        shifts of ``o_t`` for ``pairing: augmentation``."""
        if self.hparams.pairing == "augmentation":
            pad = self.hparams.augmentation_pad
            return random_shift(images[:, 0], pad), random_shift(images[:, 0], pad)
        return images[:, 0], images[:, 1]

    def representation_loss(self, obs: Tensor, next_obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """SimSiam on the two views of :meth:`representation_pair` (float images ``(B, C, H, W)``).

        Override to change the objective (e.g. a contrastive loss); return the loss and any
        metrics to log (``train/ssl_loss`` and the collapse monitor ``train/z_std`` here).
        """
        return simsiam_forward(self.encoder, self.projector, self.predictor, obs, next_obs)

    def representation_parameters(self) -> list[nn.Parameter]:
        """What the representation learning rate (``repr_lr``) updates: the encoder and SimSiam's
        heads. Override when the objective has other heads (and leave momentum copies out)."""
        return [*self.encoder.parameters(), *self.projector.parameters(), *self.predictor.parameters()]

    def after_update(self) -> None:
        """Called at the end of every update, after the optimiser step, the target-critic update
        and ``updates += 1``: the place for a subclass's own momentum (Polyak) networks."""

    @torch.no_grad()
    def reward_features(self, features: Tensor) -> Tensor:
        """Where APT's particles live: the Siamese projection of the representation."""
        return self.projector(features)

    @torch.no_grad()
    def intrinsic_reward(self, features: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """APT's particle reward of a batch of next-observation representations ``(B, D)``."""
        particles = self.reward_features(features).float()
        hp = self.hparams
        reward, distances = particle_reward(
            particles, k=hp.knn_k, knn_avg=hp.knn_avg,
            normalizer=self.reward_normalizer if hp.knn_rms else None, knn_clip=hp.knn_clip,
        )
        return reward, {"knn/distance_mean": distances[:, 1:].mean(), "knn/distance_kth": distances[:, -1].mean()}

    @torch.no_grad()
    def act(self, obs: Tensor, env_steps: int, eval_mode: bool = False) -> Tensor:
        """The acting policy the data stream calls: ``uint8`` observations → actions in ``[-1, 1]``."""
        if self.hparams.policy == "random":
            return torch.rand(obs.shape[0], self.hparams.action_dim, device=obs.device) * 2 - 1
        with torch.autocast(obs.device.type, enabled=False):
            mean = self.actor(self.encode(obs).float())
            if eval_mode:
                return mean
            return sample_action(mean, schedule(self.hparams.stddev_schedule, env_steps))

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        hp = self.hparams
        frames = batch["frames"]  # uint8 (B, n+1, C, H, W)
        size, window = frames.shape[:2]
        self.env_steps.fill_(int(batch["env_steps"]))
        images = from_uint8(frames)
        ssl_loss, logs = self.representation_loss(*self.representation_pair(images))
        losses = {"ssl_loss": ssl_loss}

        with torch.no_grad():
            features = self.encoder(images.flatten(0, 1)).float().view(size, window, -1)
            rewards, reward_logs = zip(*(self.intrinsic_reward(features[:, k + 1]) for k in range(window - 1)))
        intrinsic = torch.stack(rewards, 1)  # (B, n)
        logs.update({k: torch.stack([r[k] for r in reward_logs]).mean() for k in reward_logs[0]})
        logs["reward/intrinsic_mean"] = intrinsic.mean()
        logs["reward/intrinsic_std"] = intrinsic.std()
        logs["reward/intrinsic_max"] = intrinsic.max()
        logs["reward/knn_scale"] = self.reward_normalizer.mean.clone()

        if hp.policy != "random":
            with torch.autocast(self.device.type, enabled=False):
                reward = batch["reward"].float() + hp.reward_scale * (batch["step_discounts"] * intrinsic).sum(1)
                agent_losses, agent_logs = self.agent_losses(features[:, 0], features[:, -1], batch, reward)
            losses.update(agent_losses)
            logs.update(agent_logs)

        self.stop_on_nan(losses)
        optimizer = self.optimizers()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(sum(losses.values()))
        if hp.gradient_clip_val is not None:
            self.clip_gradients(optimizer, gradient_clip_val=hp.gradient_clip_val, gradient_clip_algorithm="norm")
        optimizer.step()
        if hp.policy != "random":
            soft_update(self.critic_target, self.critic, hp.critic_tau)
        self.updates += 1
        self.after_update()

        logs["charts/env_steps"] = batch["env_steps"].float()
        logs["charts/env_fps"] = batch["env_fps"].float()
        logs["charts/updates"] = self.updates.float()
        self.log_dict({k: v.float() for k, v in logs.items()}, on_step=True, on_epoch=False)
        self.log("train/loss", sum(v.detach() for v in losses.values()), prog_bar=True)

    def agent_losses(
        self, obs_features: Tensor, next_features: Tensor, batch: dict[str, Tensor], reward: Tensor
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """DrQ-v2's critic and actor losses on detached representations (float32)."""
        hp = self.hparams
        obs_features, next_features = obs_features.detach().float(), next_features.detach().float()
        std = schedule(hp.stddev_schedule, int(batch["env_steps"]))
        with torch.no_grad():
            next_action = sample_action(self.actor(next_features), std, clip=hp.stddev_clip)
            target_q = td_target(reward, batch["discount"].float(), *self.critic_target(next_features, next_action))
        q1, q2 = self.critic(obs_features, batch["action"].float())
        loss_critic = critic_loss(q1, q2, target_q)
        policy_action = sample_action(self.actor(obs_features), std, clip=hp.stddev_clip)
        loss_actor = actor_loss(self.critic, obs_features, policy_action)
        logs = {
            "train/critic_loss": loss_critic.detach(),
            "train/actor_loss": loss_actor.detach(),
            "train/q": q1.detach().mean(),
            "train/target_q": target_q.mean(),
            "train/batch_reward": reward.mean(),
            "train/exploration_std": torch.tensor(std),
        }
        return {"critic_loss": loss_critic, "actor_loss": loss_actor}, logs

    def stop_on_nan(self, losses: dict[str, Tensor]) -> None:
        """A non-finite loss stops training after a checkpoint of the last finite state."""
        stop_on_nan(self, losses, int(self.updates), int(self.env_steps),
                    "Lower the learning rates or set model.init_args.gradient_clip_val.")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.hparams.trajectory_every_n_updates
        if every and int(self.updates) % every == 1 and self.trainer.is_global_zero:
            self.log_trajectories()

    def log_trajectories(self) -> None:
        """A grid of fresh trajectories under the current policy: one row per environment."""
        logger = self.logger
        if not isinstance(logger, TensorBoardLogger):
            return
        from torchvision.utils import make_grid

        hp = self.hparams
        frames = self.trainer.datamodule.rollout(self.act, hp.trajectory_envs, hp.trajectory_steps)
        grid = make_grid(frames.flatten(0, 1).cpu(), nrow=frames.shape[1], padding=1, pad_value=128)
        logger.experiment.add_image("trajectories", grid, global_step=int(self.updates))

    # --- the online probe on real images ------------------------------------------------------
    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        self._probe_features[dataloader_idx].append(self.encode(images).float())
        self._probe_labels[dataloader_idx].append(labels)

    def on_validation_epoch_start(self) -> None:
        self._probe_features, self._probe_labels = {0: [], 1: []}, {0: [], 1: []}

    def on_validation_epoch_end(self) -> None:
        if not self._probe_features[0] or not self._probe_features[1]:
            return
        gather = lambda xs: self.all_gather(torch.cat(xs)).flatten(0, -2) if self.trainer.world_size > 1 else torch.cat(xs)  # noqa: E731
        bank, queries = gather(self._probe_features[0]), gather(self._probe_features[1])
        gather_labels = lambda xs: self.all_gather(torch.cat(xs)).flatten() if self.trainer.world_size > 1 else torch.cat(xs)  # noqa: E731
        bank_labels, query_labels = gather_labels(self._probe_labels[0]), gather_labels(self._probe_labels[1])
        num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
        predictions = knn_classify(bank, bank_labels, queries, num_classes, self.hparams.probe_k, self.hparams.probe_temperature)
        accuracy = (predictions == query_labels).float().mean()
        if self.trainer.sanity_checking:
            # Lightning drops logs during the sanity check; the probe at update 0 is worth keeping.
            if self.logger is not None and self.trainer.is_global_zero:
                self.logger.log_metrics({"probe/knn_acc": float(accuracy)}, step=int(self.updates))
        else:
            self.log("probe/knn_acc", accuracy, prog_bar=True, rank_zero_only=True)
        self._probe_features, self._probe_labels = {0: [], 1: []}, {0: [], 1: []}
