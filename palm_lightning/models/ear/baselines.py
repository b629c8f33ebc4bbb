"""EAR's multi-task SAC baselines, on the same machinery (:class:`MultiTaskSAC`).

- :class:`OHESAC` — one-hot task input to the policy (EAR's ablation without an LTE). With a
  single task it is plain SAC: the "from scratch" comparison of CEM adaptation.
- :class:`MHMTSAC` — multi-head multi-task SAC: shared trunk, one output head per task.

Both policies are ``agent.hidden_dim`` wide, as EAR's (the width of the critics; see
:class:`MultiTaskSAC`): only their depth is the module's own setting.
"""

from __future__ import annotations

from typing import Any

from palm_lightning.models.ear.multitask_sac import MultiTaskSAC
from palm_lightning.nn.multitask_policies import MultiHeadPolicy, OneHotPolicy


class OHESAC(MultiTaskSAC):
    """OHE-SAC. Args: ``policy_layers`` hidden layers, ``agent.hidden_dim`` wide (default 4, EAR's
    decoder depth) and :class:`MultiTaskSAC`'s arguments."""

    def __init__(self, policy_layers: int = 4, **kwargs: Any) -> None:
        self._policy_layers = policy_layers
        super().__init__(**kwargs)

    def build_policy(self) -> OneHotPolicy:
        hp = self.hp
        return OneHotPolicy(hp.obs_dim, hp.action_dim, hp.num_tasks, hp.agent.hidden_dim, self._policy_layers)


class MHMTSAC(MultiTaskSAC):
    """MHMT-SAC. Args: ``trunk_layers`` shared hidden layers, ``agent.hidden_dim`` wide (default 4)
    and :class:`MultiTaskSAC`'s arguments."""

    def __init__(self, trunk_layers: int = 4, **kwargs: Any) -> None:
        self._trunk_layers = trunk_layers
        super().__init__(**kwargs)

    def build_policy(self) -> MultiHeadPolicy:
        hp = self.hp
        return MultiHeadPolicy(hp.obs_dim, hp.action_dim, hp.num_tasks, hp.agent.hidden_dim, self._trunk_layers)
