"""Exploration rewards: small modules chosen by ``class_path`` in the config (URLB's reward objects).

PALM hands a reward one :class:`RewardStep` at a time — representation-space features of an
observation and of the next one, and the action between them, all detached — and adds what it
returns to the agent's reward. A reward with trainable parameters (ICM's models, RND's predictor)
creates them in :meth:`ExplorationReward.build` and returns its training loss from
:meth:`ExplorationReward.loss`; PALM steps those parameters with its own optimiser (parameter
group ``"reward"``, learning rate ``reward_lr``), so Lightning still owns optimisation, precision
and checkpointing.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from palm_lightning.class_paths import RecordsInitArgs


@dataclass
class RewardStep:
    """One step of experience as an exploration reward sees it.

    ``obs`` and ``next_obs`` ``(B, D)``: reward-space features (``PALM.reward_features``) of
    ``o_t`` and ``o_{t+1}`` (or ``o_{t+n}``, see ``PALM.reward_window``), detached; ``action``
    ``(B, |A|)``: the action taken at ``o_t``.
    """

    obs: Tensor
    action: Tensor
    next_obs: Tensor

    def __getattr__(self, name: str) -> Tensor:
        # Only reached for a name the dataclass lacks: most often code written for the old hook
        # contract, where intrinsic_reward received the features tensor itself.
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"'RewardStep' object has no attribute {name!r}: PALM.intrinsic_reward and "
            "ExplorationReward.forward take a RewardStep (step.obs, step.action, step.next_obs) and return "
            "one Tensor of shape (B,), no longer a features tensor in and a tuple out; read step.obs where "
            "the old hook read its features (CHANGELOG.md, 'RewardStep')"
        )


class ExplorationReward(RecordsInitArgs, nn.Module):
    """Base of the exploration rewards.

    Subclasses implement :meth:`forward`; those with their own networks also :meth:`build` and
    :meth:`loss`. Constructor arguments are the reward's hyperparameters only (sizes come later,
    through :meth:`build`), so a reward can be written in a config by ``class_path``.

    Every instance records its constructor arguments (:class:`~palm_lightning.class_paths.RecordsInitArgs`):
    PALM saves them with the class path in its checkpoint's hyperparameters, so ``load_from_checkpoint``
    rebuilds the same reward (ours or a user's class, importable at module level) before loading its
    trained parameters. Arguments must therefore be plain values (numbers, strings, lists, dicts).
    """

    def __init__(self) -> None:
        super().__init__()

    def build(self, feature_dim: int, action_dim: int) -> None:
        """Create the reward's networks for features of size ``feature_dim`` and actions of size
        ``action_dim``; called once by the module that owns the reward, before its optimisers."""

    def forward(self, step: RewardStep) -> Tensor:
        """The intrinsic reward of every transition of ``step``: shape ``(B,)``, float32."""
        raise NotImplementedError

    def loss(self, step: RewardStep) -> tuple[Tensor, dict[str, Tensor]] | None:
        """The reward's own training loss on ``step`` and scalars to log, or ``None`` (nothing to
        train, the default)."""
        return None

    def metrics(self) -> dict[str, Tensor]:
        """Scalars about the last :meth:`forward` call to log (e.g. APT's kNN distances); none by
        default."""
        return {}
