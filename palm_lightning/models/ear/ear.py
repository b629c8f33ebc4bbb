"""EAR (Hua et al., ICLR 2023): multi-task SAC whose policy factorises into a state encoder, a
latent task embedding (LTE) on the unit sphere and an action decoder.

After training, the LTEs are an *action representation*: :meth:`EAR.act_with_embedding` drives
the decoder with any unit vector, which is what interpolation/composition
(``python -m palm_lightning.tools.interpolate``) and CEM adaptation to unseen tasks
(``python -m palm_lightning.tools.cem_adapt``) use.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from palm_lightning.models.ear.multitask_sac import TASK_INFO_KEY, MultiTaskSAC
from palm_lightning.nn.multitask_policies import EARPolicy
from palm_lightning.training.checkpoint_loading import load_lightning_module


class EAR(MultiTaskSAC):
    """EAR's policy on the multi-task SAC machinery.

    Args:
        lse_dim, lte_dim: latent state / task embedding sizes (authors: 16, 3).
        state_layers, task_layers, decoder_layers: hidden layers of φ, the task encoder and ψ
            (authors: 2, 1, 4), all ``agent.hidden_dim`` wide: the policy takes the critics'
            width, as the authors' (400 for both), so one setting sizes every network.
        lte_noise: σ of the training noise on the LTE (0.02; 0 is the ablation). See
            :class:`~palm_lightning.nn.multitask_policies.EARPolicy`.
        normalize: L2-normalise LSE and LTE (``False``: the no-normalisation ablation).
        **kwargs: :class:`MultiTaskSAC`'s arguments (``agent``: SAC's settings).
    """

    def __init__(
        self,
        lse_dim: int = 16,
        lte_dim: int = 3,
        state_layers: int = 2,
        task_layers: int = 1,
        decoder_layers: int = 4,
        lte_noise: float = 0.02,
        normalize: bool = True,
        **kwargs: Any,
    ) -> None:
        # EAR's own hyperparameters, typed; set first: MultiTaskSAC.__init__ builds the policy
        self.lse_dim, self.lte_dim, self.lte_noise, self.normalize = lse_dim, lte_dim, lte_noise, normalize
        self.state_layers, self.task_layers, self.decoder_layers = state_layers, task_layers, decoder_layers
        super().__init__(**kwargs)

    def build_policy(self) -> EARPolicy:
        hp = self.hp
        return EARPolicy(
            hp.obs_dim,
            hp.action_dim,
            hp.num_tasks,
            hidden_dim=hp.agent.hidden_dim,
            lse_dim=self.lse_dim,
            lte_dim=self.lte_dim,
            state_layers=self.state_layers,
            task_layers=self.task_layers,
            decoder_layers=self.decoder_layers,
            lte_noise=self.lte_noise,
            normalize=self.normalize,
        )

    @property
    def policy(self) -> EARPolicy:
        return cast(EARPolicy, self.agent.policy)  # the one build_policy made

    # --- the action representation ------------------------------------------------------------
    @torch.no_grad()
    def task_embeddings(self) -> Tensor:
        """The trained LTEs ``(num_tasks, lte_dim)``, noise-free."""
        return self.policy.task_embeddings()

    @torch.no_grad()
    def act_with_embedding(self, obs: Tensor, lte: Tensor) -> Tensor:
        """Deterministic actions for explicit LTEs ``(B, lte_dim)`` (one per observation)."""
        if lte.shape != (obs.shape[0], self.lte_dim):
            raise ValueError(f"lte must have shape ({obs.shape[0]}, {self.lte_dim}), got {tuple(lte.shape)}")
        return torch.tanh(self.policy.decode(obs.float(), lte.float())[0])

    @torch.no_grad()
    def embeddings(self, obs: Tensor, task: Tensor) -> dict[str, Tensor]:
        return {"lte_tasks": self.task_embeddings(), "lse": self.policy.state_embedding(obs)}

    # --- loading for the tools ------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, family: str | None = None, map_location: str = "cpu") -> EAR:
        """Load a trained EAR for interpolation/CEM, with clear errors for a missing file, a
        checkpoint of another module, or one trained on another task ``family``."""

        def check(raw: Mapping[str, Any]) -> None:
            if not any(k.startswith("agent.policy.task_encoder.") for k in raw["state_dict"]):
                raise ValueError(
                    f"{path} is not an EAR checkpoint (no task encoder: OHE-SAC, MHMT-SAC or another module)"
                )
            info = raw.get(TASK_INFO_KEY) or {}
            if family is not None and info.get("family") not in (None, family):
                raise ValueError(f"{path} was trained on {info['family']!r}, not {family!r}")

        hint = "pass the .ckpt of an EAR run (runs/<name>/version_<n>/checkpoints/)"
        model = load_lightning_module(cls, path, map_location, check=check, hint=hint)
        model.eval()
        return model
