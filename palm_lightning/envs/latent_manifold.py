"""PALM's environment: a conditional generator's latent manifold, N environments as one batch.

State: a latent ``z`` per environment and a class label ``c`` drawn at reset and kept for the
whole episode. One step (all N environments at once, on the generator's device)::

    ε_t ~ N(0, I)                               (in w-space: ε_t = mapping(noise, c))
    m_t = ε_t + action_scale · a_t              (mix: the action displaces the random latent)
    z_t − μ = λ (z_{t−1} − μ) + κ (m_t − μ)     (EMA with the previous latent)
    z_t ← √d · z_t / ‖z_t‖                      (only with ``latent_norm: sphere``)
    o_t = G(z_t, c)                             (one generator forward for all N)

with ``λ = ema`` and ``κ = sqrt(1 − λ²)`` (``variance_preserving``, default: with zero actions the
latent keeps the N(0, I) prior it was trained on) or ``κ = 1 − λ`` (the plain EMA of the paper's
wording, which shrinks the latent towards μ). μ is 0 in z-space and the class's mean w in w-space.

The paper publishes none of the mixing rule, EMA coefficient, action scale, episode length,
truncation or latent space: every default below is our choice, made so that consecutive frames
are the same object slightly changed (the Siamese pairs) while an episode still travels far.
Episodes end by truncation only; the environment's own reward is 0. The class label is returned
in ``info`` for analysis and is never meant for the agent or the loss.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import Tensor

from palm_lightning.generators import GeneratorSource, resolve_generator
from palm_lightning.nn.protocols import GeneratorProtocolError, check_generator, check_w_space_generator

LatentSpace = Literal["z", "w"]
LatentNorm = Literal["free", "sphere"]
ClassResample = Literal["episode", "step"]


def to_uint8(images: Tensor) -> Tensor:
    """Images in ``[-1, 1]`` → ``uint8`` in ``[0, 255]`` (what the replay buffer stores)."""
    return ((images.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(images: Tensor) -> Tensor:
    """``uint8`` observations → float images in ``[-1, 1]`` (what encoders take)."""
    return images.float().mul_(1.0 / 127.5).sub_(1.0)


class LatentManifold:
    """N latent-manifold environments held as one batch (PALM's torch interface).

    Args:
        generator: a conditional generator (see :mod:`palm_lightning.nn.protocols`), a path to a
            generator network file / checkpoint, a ``{"class_path": ..., "init_args": {...}}``
            mapping naming any importable generator class, or ``None`` for the shipped
            Fashion-MNIST StyleGAN (see :mod:`palm_lightning.generators`).
        num_envs: environments in the batch (N).
        episode_length: steps per episode; the episode is then truncated (our choice: 50).
        ema: λ, the weight of the previous latent. The paper says only that an EMA smooths the
            trajectory; the value is ours (0.9 here, ``configs/palm.yaml`` uses 0.5). Larger λ:
            consecutive frames closer, and an action's effect lasts longer (it decays as λᵏ).
        action_scale: how far an action in ``[-1, 1]`` displaces the random latent. The paper does
            not publish it; ours is 1.0, comparable to the noise's unit std. Larger values give the
            action more of each step, so the policy decides more of the next frame.
        variance_preserving: κ = sqrt(1 − λ²) (default) or the plain EMA's κ = 1 − λ.
        latent_norm: ``"free"`` (default: the latent goes where the actions push it) or
            ``"sphere"``: after each step z is rescaled to norm √d, the shell where N(0, I) puts
            nearly all its mass in d dimensions (z-space only), so that a policy holding its actions
            at ±1 cannot push z off the prior's shell. A generator whose mapping network normalises
            z first (StyleGAN's, both shipped ones) ignores the norm of z: for it only the direction
            of z matters, and ``sphere`` changes no frame.
        truncation_psi: StyleGAN's truncation ψ (1.0 = none; the generator must accept a
            ``truncation_psi`` keyword when ψ ≠ 1).
        latent_space: ``"z"`` (any generator) or ``"w"`` (generators that also follow
            :class:`~palm_lightning.nn.protocols.WSpaceGenerator`, e.g. StyleGAN); the action has
            the state's dimension. The paper acts in z. In w, after the mapping network, nothing is
            normalised: the action's size counts, not only its direction.
        class_weights: sampling weights of the class drawn at each reset (uniform by default).
        class_resample: when the class label is drawn: ``"episode"`` (default, the paper: once per
            episode, so consecutive frames always show the same class) or ``"step"``: a fresh label
            at every step, a control that asks how much of what the Siamese pairs teach comes
            from the class persisting rather than from the latent's trajectory.
        device: where latents live and the generator runs.
        seed: seed of the environments' own random generator (reset latents, classes, noise).
        check: validate the generator against the protocol (one probe forward).
        generator_weights: a plain ``state_dict`` file (or a network file) loaded into the
            generator with ``weights_only=True``; keys and shapes must match exactly.
    """

    def __init__(
        self,
        generator: GeneratorSource = None,
        num_envs: int = 16,
        episode_length: int = 50,
        ema: float = 0.9,
        action_scale: float = 1.0,
        variance_preserving: bool = True,
        latent_norm: LatentNorm = "free",
        truncation_psi: float = 1.0,
        latent_space: LatentSpace = "z",
        class_weights: list[float] | None = None,
        class_resample: ClassResample = "episode",
        device: torch.device | str = "cpu",
        seed: int = 0,
        check: bool = True,
        generator_weights: str | Path | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be ≥ 1, got {num_envs}")
        if episode_length < 1:
            raise ValueError(f"episode_length must be ≥ 1, got {episode_length}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema (λ) must be in [0, 1), got {ema}")
        if latent_space not in ("z", "w"):
            raise ValueError(f"latent_space must be 'z' or 'w', got {latent_space!r}")
        if class_resample not in ("episode", "step"):
            raise ValueError(f"class_resample must be 'episode' or 'step', got {class_resample!r}")
        if latent_norm not in ("free", "sphere"):
            raise ValueError(f"latent_norm must be 'free' or 'sphere', got {latent_norm!r}")
        if latent_norm == "sphere" and latent_space == "w":
            raise ValueError("latent_norm: sphere is for z-space (w has no spherical prior); use latent_norm: free")
        self.device = torch.device(device)
        # A ConditionalGenerator (checked below), for w-space also StyleGAN's mapping/synthesis/broadcast:
        # duck-typed members of an nn.Module, so untyped here.
        self.generator: Any = cast(
            Any, resolve_generator(generator, generator_weights).to(self.device).eval().requires_grad_(False)
        )
        if check:
            check_generator(self.generator, device=self.device)
        if latent_space == "w":
            check_w_space_generator(self.generator, probe=check, device=self.device)
        name = type(self.generator).__name__
        if truncation_psi != 1.0 and latent_space == "z":
            try:
                z = torch.randn(1, self.generator.latent_dim, device=self.device)
                self.generator(z, torch.zeros(1, dtype=torch.long, device=self.device), truncation_psi=truncation_psi)
            except TypeError as err:
                raise GeneratorProtocolError(
                    f"truncation_psi={truncation_psi} needs {name}.forward to accept truncation_psi; use 1.0"
                ) from err
        self.num_envs = num_envs
        self.episode_length = episode_length
        self.ema = ema
        self.action_scale = action_scale
        self.variance_preserving = variance_preserving
        self.kappa = math.sqrt(1.0 - ema**2) if variance_preserving else 1.0 - ema
        self.latent_norm = latent_norm
        self.truncation_psi = truncation_psi
        self.latent_space = latent_space
        self.num_classes: int = int(self.generator.num_classes)
        self.noise_dim: int = int(self.generator.latent_dim)
        self.latent_dim: int = int(self.generator.w_dim) if latent_space == "w" else self.noise_dim
        self.action_dim = self.latent_dim
        self.obs_shape: tuple[int, ...] = tuple(int(s) for s in self.generator.image_shape)
        if class_weights is None:
            weights = torch.ones(self.num_classes)
        else:
            weights = torch.as_tensor(class_weights, dtype=torch.float)
            if weights.shape != (self.num_classes,) or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError(
                    f"class_weights must be {self.num_classes} non-negative numbers with a positive sum "
                    f"(one per generator class), got {class_weights}"
                )
        self.class_weights = (weights / weights.sum()).to(self.device)
        self.class_resample = class_resample
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(seed)
        self.latent = torch.zeros(num_envs, self.latent_dim, device=self.device)
        self.labels = torch.zeros(num_envs, dtype=torch.long, device=self.device)
        self.elapsed = torch.zeros(num_envs, dtype=torch.long, device=self.device)

    # --- the transition's parts (override to change the dynamics) ------------------------------
    def random_latent(self, labels: Tensor) -> Tensor:
        """ε: a fresh latent per environment (standard normal z, or a mapped w in w-space)."""
        noise = torch.randn(labels.shape[0], self.noise_dim, device=self.device, generator=self.rng)
        if self.latent_space == "z":
            return noise
        return self.generator.mapping(noise, labels, truncation_psi=self.truncation_psi)

    def center(self, labels: Tensor) -> Tensor:
        """μ, the point the EMA contracts towards: 0 in z-space, the class's mean w in w-space."""
        if self.latent_space == "z":
            return torch.zeros(labels.shape[0], self.latent_dim, device=self.device)
        w_avg = self.generator.mapping.w_avg
        return w_avg[labels.clamp(max=w_avg.shape[0] - 1)]

    def mix(self, noise: Tensor, action: Tensor) -> Tensor:
        """m_t: how the action and the random latent combine (additive displacement)."""
        return noise + self.action_scale * action

    def transition(self, latent: Tensor, labels: Tensor, action: Tensor) -> Tensor:
        """z_t from z_{t−1}, the episode's labels and the action."""
        mu = self.center(labels)
        mixed = self.mix(self.random_latent(labels), action)
        latent = mu + self.ema * (latent - mu) + self.kappa * (mixed - mu)
        if self.latent_norm == "sphere":
            latent = latent * (math.sqrt(self.latent_dim) / latent.norm(dim=1, keepdim=True).clamp_min(1e-6))
        return latent

    def decode(self, latent: Tensor, labels: Tensor) -> Tensor:
        """o = G(z, c) as ``uint8`` images, one generator forward for the whole batch."""
        if self.latent_space == "w":
            images = self.generator.synthesis(self.generator.broadcast(latent), noise_mode="const").clamp(-1, 1)
        elif self.truncation_psi != 1.0:
            images = self.generator(latent, labels, truncation_psi=self.truncation_psi)
        else:
            images = self.generator(latent, labels)
        return to_uint8(images)

    # --- the environment API ------------------------------------------------------------------
    @torch.no_grad()
    def reset(self, mask: Tensor | None = None, seed: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Start new episodes (all, or where ``mask`` is true): draw c and z₀, return all
        observations ``uint8 (N, C, H, W)`` and ``info`` (``class``, ``elapsed``)."""
        if seed is not None:
            self.rng.manual_seed(seed)
        idx = torch.arange(self.num_envs, device=self.device) if mask is None else mask.nonzero().squeeze(1)
        if idx.numel():
            labels = torch.multinomial(self.class_weights, idx.numel(), replacement=True, generator=self.rng)
            self.labels[idx] = labels
            self.latent[idx] = self.random_latent(labels)
            self.elapsed[idx] = 0
        return self.decode(self.latent, self.labels), self.info()

    @torch.no_grad()
    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """Advance every environment by one step; returns ``(obs, reward, terminated, truncated,
        info)``. Truncated episodes are *not* reset here: call :meth:`reset` with the mask."""
        action = self.check_action(action)
        if self.class_resample == "step":
            self.labels = torch.multinomial(self.class_weights, self.num_envs, replacement=True, generator=self.rng)
        self.latent = self.transition(self.latent, self.labels, action)
        self.elapsed += 1
        obs = self.decode(self.latent, self.labels)
        reward = torch.zeros(self.num_envs, device=self.device)
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        truncated = self.elapsed >= self.episode_length
        return obs, reward, terminated, truncated, self.info()

    def info(self) -> dict[str, Tensor]:
        return {"class": self.labels.clone(), "elapsed": self.elapsed.clone()}

    def check_action(self, action: Tensor) -> Tensor:
        """Refuse actions of the wrong shape or with NaN/inf, with the expected shape named."""
        action = torch.as_tensor(action, device=self.device, dtype=torch.float32)
        expected = (self.num_envs, self.action_dim)
        if tuple(action.shape) != expected:
            raise ValueError(
                f"action must have shape {expected} (num_envs × the {self.latent_space}-latent size of "
                f"{type(self.generator).__name__}), got {tuple(action.shape)}"
            )
        if not torch.isfinite(action).all():
            bad = (~torch.isfinite(action)).any(1).nonzero().squeeze(1).tolist()
            raise ValueError(f"action contains NaN or inf (environments {bad[:8]}); check the policy's output")
        return action

    # --- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "latent": self.latent.cpu(),
            "labels": self.labels.cpu(),
            "elapsed": self.elapsed.cpu(),
            "rng": self.rng.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["latent"].shape) != tuple(self.latent.shape):
            raise ValueError(
                f"saved environment state has latents {tuple(state['latent'].shape)}, these environments "
                f"{tuple(self.latent.shape)}: num_envs or the generator changed since the checkpoint"
            )
        self.latent = state["latent"].to(self.device)
        self.labels = state["labels"].to(self.device)
        self.elapsed = state["elapsed"].to(self.device)
        self.rng.set_state(state["rng"])
