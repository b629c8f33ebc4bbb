"""PALM's data: experience streamed from the latent-manifold environments, plus real images for the
online probe."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from palm_lightning.datamodules.images.base import ImageDataModule
from palm_lightning.datamodules.streams.experience import ExperienceDataModule, Policy
from palm_lightning.envs.latent_manifold import LatentManifold
from palm_lightning.generators import resolve_generator


def environment_defaults(set_elsewhere: tuple[str, ...]) -> dict[str, Any]:
    """:class:`LatentManifold`'s arguments and defaults, but for those in ``set_elsewhere``."""
    parameters = inspect.signature(LatentManifold).parameters
    return {name: p.default for name, p in parameters.items() if name not in set_elsewhere}


class LatentManifoldDataModule(ExperienceDataModule):
    """Experience from :class:`~palm_lightning.envs.latent_manifold.LatentManifold` environments.

    Batches are dicts of n-step transitions with ``uint8`` observations and the full window
    ``frames`` ``(B, n+1, C, H, W)`` (PALM pairs consecutive frames for its Siamese objective and
    rewards every step of the window). Stream arguments are those of :class:`ExperienceDataModule`;
    every other keyword is an environment argument of
    :class:`~palm_lightning.envs.latent_manifold.LatentManifold` (``ema``, ``action_scale``,
    ``latent_space``, …), with its defaults and docs (the command line lists them:
    ``--data.init_args.ema 0.5``). They are written only there; ``env_kwargs`` holds those given,
    ``env_settings`` every one.

    The optional ``probe_data`` (a labelled image DataModule, e.g. Fashion-MNIST) serves the
    online probe: ``val_dataloader`` returns a labelled *bank* (from its training split) and
    labelled *queries* (from its test split), both ``uint8`` — real images, never used for training.

    The default replay ratio is DrQ-v2/URLB's, one update every second frame: 16 environments
    stepped once every ``updates_per_step = 8`` updates (docs/results/fidelity.md compares stepping
    them at every update).

    Args:
        generator: the conditional generator: a network file / checkpoint path, any importable
            ``nn.Module`` following :mod:`palm_lightning.nn.protocols` given by ``class_path`` /
            ``init_args`` (your own class: ``--data.init_args.generator.class_path my_pkg.MyGenerator``),
            or ``None`` for the default shipped generator (or a shipped one's name, e.g. ``fmnist_stylegan``).
        generator_weights: a plain ``state_dict`` file (``torch.save(g.state_dict(), path)``) or a
            network file, loaded into the generator with ``weights_only=True`` (keys and shapes must
            match exactly; mismatches are named).
        probe_data: labelled real images for the online probe (``None``: no probe).
        probe_bank_size: bank images (class-balanced first ``n`` of a fixed shuffle).
        probe_query_size: query images.
        probe_batch_size: batch size of the probe loaders.
    """

    ENV_ARGUMENTS_SET_HERE = ("generator", "num_envs", "device", "seed", "generator_weights")
    """``LatentManifold`` arguments the DataModule decides itself (per rank, per rollout)."""

    def __init__(
        self,
        generator: str | nn.Module | None = None,
        generator_weights: str | None = None,
        num_envs: int = 16,
        batch_size: int = 256,
        buffer_capacity: int = 100_000,
        nstep: int = 3,
        discount: float = 0.99,
        seed_frames: int = 4000,
        steps_per_batch: int = 1,
        updates_per_step: int = 8,
        save_buffer: bool = False,
        seed: int = 0,
        probe_data: ImageDataModule | None = None,
        probe_bank_size: int = 10_000,
        probe_query_size: int = 5_000,
        probe_batch_size: int = 1000,
        **env_kwargs: Any,
    ) -> None:
        super().__init__(
            num_envs=num_envs,
            batch_size=batch_size,
            buffer_capacity=buffer_capacity,
            nstep=nstep,
            discount=discount,
            seed_frames=seed_frames,
            steps_per_batch=steps_per_batch,
            updates_per_step=updates_per_step,
            with_frames=True,
            save_buffer=save_buffer,
            seed=seed,
        )
        settable = environment_defaults(self.ENV_ARGUMENTS_SET_HERE)
        unknown = sorted(set(env_kwargs) - set(settable))
        if unknown:
            raise TypeError(
                f"LatentManifoldDataModule got unknown arguments {unknown}: besides its stream and probe "
                f"arguments it takes LatentManifold's environment arguments {list(settable)}"
            )
        self.env_kwargs = env_kwargs
        self.generator_source = generator
        self.generator_weights = generator_weights
        self._generator: nn.Module | None = None
        self.probe_data = probe_data
        self.probe_bank_size = probe_bank_size
        self.probe_query_size = probe_query_size
        self.probe_batch_size = probe_batch_size
        self._probe_sets: tuple[TensorDataset, TensorDataset] | None = None

    @property
    def env_settings(self) -> dict[str, Any]:
        """Every environment argument the environments get: ``env_kwargs`` and
        :class:`LatentManifold`'s defaults for the rest."""
        return {**environment_defaults(self.ENV_ARGUMENTS_SET_HERE), **self.env_kwargs}

    @property
    def generator(self) -> nn.Module:
        """The generator, built (or read) and given its weights on first use."""
        if self._generator is None:
            self._generator = resolve_generator(self.generator_source, self.generator_weights)
        return self._generator

    def validate_generator(self) -> None:
        """Check the generator and the environment arguments together, as the environments will: the
        generator protocol, the w-space protocol when ``latent_space`` is ``"w"``, ``truncation_psi``
        and ``class_weights`` (one environment on the CPU; a
        :class:`~palm_lightning.nn.protocols.GeneratorProtocolError` names what is missing)."""
        LatentManifold(self.generator, num_envs=1, **self.env_kwargs)

    def make_env(self, num_envs: int, seed: int, device: torch.device) -> LatentManifold:
        return LatentManifold(self.generator, num_envs=num_envs, device=device, seed=seed, **self.env_kwargs)

    # --- the online probe's real images -------------------------------------------------------
    def prepare_data(self) -> None:
        # Read the generator and its weights and check them now: Lightning runs prepare_data before it
        # creates the run's log folder, so a missing or corrupt file, weights that do not fit or a
        # class that does not follow the protocol stop the run before anything is written.
        self.validate_generator()
        if self.probe_data is not None:
            self.probe_data.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.probe_data is not None and self._probe_sets is None:
            self.probe_data.setup(None)  # both splits: bank from train, queries from test
            if tuple(self.probe_data.image_shape) != tuple(self.env.obs_shape):
                raise ValueError(
                    f"probe images are {tuple(self.probe_data.image_shape)} but the generator makes "
                    f"{tuple(self.env.obs_shape)}: set the probe DataModule's resolution to match"
                )
            train, test = self.probe_data.train_set, self.probe_data.test_set
            if train is None or test is None:
                raise ValueError(f"{type(self.probe_data).__name__} has no train/test split after setup")
            self._probe_sets = (
                self._subset(train.images, train.labels, self.probe_bank_size),
                self._subset(test.images, test.labels, self.probe_query_size),
            )

    def _subset(self, images: Tensor, labels: Tensor, size: int) -> TensorDataset:
        order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(self.seed))[:size]
        return TensorDataset(images[order], labels[order])

    def val_dataloader(self) -> list[DataLoader]:
        if self._probe_sets is None:
            return []
        return [DataLoader(s, batch_size=self.probe_batch_size, shuffle=False) for s in self._probe_sets]

    # --- pictures for TensorBoard -------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, policy: Policy | None, num_envs: int = 8, steps: int = 16, seed: int = 12345) -> Tensor:
        """Frames ``uint8 (num_envs, steps + 1, C, H, W)`` of fresh episodes under ``policy``
        (uniform random actions when ``None``), from a separate set of environments."""
        env = self.make_env(num_envs, seed, self.device)
        obs, _ = env.reset()
        frames = [obs]
        for _ in range(steps):
            if policy is None:
                action = torch.rand(num_envs, env.action_dim, device=self.device) * 2 - 1
            else:
                action = policy(obs, self.env_steps)  # the stream's Policy signature, exploring
            obs, *_ = env.step(action)
            frames.append(obs)
        return torch.stack(frames, 1)
