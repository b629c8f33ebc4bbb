"""MAML with TRPO as the meta-optimiser (Finn et al., ICML 2017), as a plain module.

Per meta-iteration and task: K episodes with the current policy θ, a linear feature baseline
fitted to them, one (or ``inner_steps``) vanilla policy-gradient step ``θ' = θ − α ∇L_inner(θ)``
done functionally (``torch.func.functional_call`` on a parameter dict), K episodes with θ'. The
outer objective is TRPO's surrogate on the post-update episodes *as a function of θ through θ'*:

- **second order** (``first_order=False``, the paper): the inner gradient is built with
  ``create_graph=True``, so the meta-gradient includes the Hessian term ∂θ'/∂θ = I − α∇²L_inner;
  the Fisher-vector products of the KL constraint are also taken through the adaptation.
- **first order**: the inner gradient is a constant (∂θ'/∂θ = I), much cheaper (the paper's
  first-order approximation).

The outer step is TRPO: the search direction ``F⁻¹g`` by conjugate gradient on Fisher-vector
products (Hessian-vector products of the mean KL between the collecting and the candidate
post-update policies, plus damping), scaled to the KL radius ``max_kl``, then a backtracking line
search that accepts the first step improving the surrogate with KL ≤ ``max_kl`` (else no step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium
import torch
from torch import Tensor, nn
from torch.func import functional_call

from palm_lightning.envs.rollouts import Episodes, run_vector_episodes
from palm_lightning.losses.policy_gradient import (
    conjugate_gradient,
    discounted_returns,
    gae_advantages,
    masked_mean,
    normalize_masked,
    reinforce_loss,
    surrogate_loss,
)
from palm_lightning.nn.meta_policies import GaussianMLPPolicy

Params = dict[str, Tensor]


class LinearFeatureBaseline:
    """The standard linear baseline of policy-gradient benchmarks (Duan et al., 2016; MAML):
    ``V(s_t) = w·[s, s², t, t², t³, 1]`` (s clipped to ±10, t = step/100), fitted to the
    reward-to-go by ridge least squares, the ridge raised ×10 until the solution is finite."""

    def __init__(self, reg_coeff: float = 1e-5) -> None:
        self.reg_coeff = reg_coeff
        self.weights: Tensor | None = None

    @staticmethod
    def features(obs: Tensor) -> Tensor:
        """``(T, N, O)`` → ``(T, N, 2·O + 4)``."""
        o = obs.double().clamp(-10, 10)
        steps, n = obs.shape[0], obs.shape[1]
        t = (torch.arange(steps, dtype=torch.float64) / 100.0).view(steps, 1, 1).expand(steps, n, 1)
        return torch.cat([o, o.pow(2), t, t.pow(2), t.pow(3), torch.ones_like(t)], dim=-1)

    def fit(self, obs: Tensor, returns: Tensor, mask: Tensor) -> None:
        keep = mask.bool()
        x, y = self.features(obs)[keep], returns.double()[keep]
        gram, rhs = x.T @ x, x.T @ y
        eye = torch.eye(gram.shape[0], dtype=torch.float64)
        reg = self.reg_coeff
        for _ in range(5):
            weights = torch.linalg.solve(gram + reg * eye, rhs)
            if torch.isfinite(weights).all():
                self.weights = weights
                return
            reg *= 10
        self.weights = torch.zeros(x.shape[1], dtype=torch.float64)

    def predict(self, obs: Tensor) -> Tensor:
        """Values ``(T, N)`` (zeros before the first fit)."""
        if self.weights is None:
            return torch.zeros(obs.shape[:2])
        return (self.features(obs) @ self.weights).float()


@dataclass
class TaskBatch:
    """One task's data of a meta-iteration: the episodes of every inner step (with their
    advantages) and the post-update episodes, with the post-update policy's log-probabilities
    and distribution at collection (the TRPO reference)."""

    inner: list[tuple[Episodes, Tensor]]
    post: Episodes
    post_advantages: Tensor
    old_log_prob: Tensor
    old_mean: Tensor
    old_log_std: Tensor


@dataclass(frozen=True)
class MAMLTRPOConfig:
    """MAML-TRPO's settings (defaults: Finn et al.'s locomotion settings and rllab's TRPO solver).
    :class:`~palm_lightning.models.meta_rl.MAMLTRPO` takes this whole group (``agent:`` in its
    configs, ``--model.init_args.agent.max_kl 0.02`` on the command line), so each setting is
    written here only.

    Args:
        inner_lr: α of the inner step (MAML locomotion: 0.1).
        inner_steps: inner policy-gradient steps (MAML: 1).
        first_order: drop the second-order term (MAML's default: second order).
        max_kl: TRPO's KL radius (MAML: 0.01).
        cg_iters, cg_damping: conjugate-gradient iterations and Fisher damping (rllab: 10, 1e-5).
        backtrack_ratio, max_backtracks: the line search (rllab: 0.8, 15).
        discount, gae_lambda: γ and λ (MAML: 0.99, 1).
        normalize_advantages: centre and scale advantages per task (rllab's ``center_adv``).
        max_path_length: episode horizon H (MAML locomotion: 200, the families' episode length).
    """

    inner_lr: float = 0.1
    inner_steps: int = 1
    first_order: bool = False
    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    backtrack_ratio: float = 0.8
    max_backtracks: int = 15
    discount: float = 0.99
    gae_lambda: float = 1.0
    normalize_advantages: bool = True
    max_path_length: int = 200

    def __post_init__(self) -> None:
        if self.inner_steps < 1:
            raise ValueError(f"inner_steps must be ≥ 1, got {self.inner_steps}")
        if self.max_kl <= 0 or not 0 < self.backtrack_ratio < 1:
            raise ValueError(
                f"max_kl must be > 0 and backtrack_ratio in (0, 1), got {self.max_kl} and {self.backtrack_ratio}"
            )


class MAMLTRPOAgent(nn.Module):
    """The policy and the MAML-TRPO update (see the module docstring).

    Args:
        policy: a :class:`GaussianMLPPolicy`.
        config: the agent's settings (:class:`MAMLTRPOConfig`), read from ``self.config``.
    """

    def __init__(self, policy: GaussianMLPPolicy, config: MAMLTRPOConfig = MAMLTRPOConfig()) -> None:
        super().__init__()
        self.policy = policy
        self.config = config

    # --- the policy as a function of its parameters ---------------------------------------------
    def params(self) -> Params:
        """θ: the policy's parameters by name (the tensors themselves, not copies)."""
        return dict(self.policy.named_parameters())

    def distribution(self, params: Params, obs: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_std = functional_call(self.policy, params, (obs,))
        return mean, log_std

    def log_prob(self, params: Params, obs: Tensor, action: Tensor) -> Tensor:
        return GaussianMLPPolicy.log_prob(*self.distribution(params, obs), action)

    @torch.no_grad()
    def act(self, params: Params, obs: Tensor, deterministic: bool = False) -> Tensor:
        mean, log_std = self.distribution({k: v.detach() for k, v in params.items()}, obs.float())
        return mean if deterministic else mean + log_std.exp() * torch.randn_like(mean)

    # --- inner step -----------------------------------------------------------------------------
    def advantages(self, episodes: Episodes) -> Tensor:
        """GAE with a linear baseline fitted to these episodes (per task, as in MAML)."""
        returns = discounted_returns(episodes.reward, episodes.mask, self.config.discount)
        baseline = LinearFeatureBaseline()
        baseline.fit(episodes.obs, returns, episodes.mask)
        values = baseline.predict(episodes.obs)
        adv = gae_advantages(episodes.reward, values, episodes.mask, self.config.discount, self.config.gae_lambda)
        return normalize_masked(adv, episodes.mask) if self.config.normalize_advantages else adv

    def inner_step(self, params: Params, episodes: Episodes, advantages: Tensor, create_graph: bool) -> Params:
        """``θ' = θ − α ∇_θ L_inner(θ)``; with ``create_graph`` the result stays differentiable
        in θ through the gradient (second order), else the gradient is a constant."""
        with torch.enable_grad():
            loss = reinforce_loss(self.log_prob(params, episodes.obs, episodes.action), advantages, episodes.mask)
            names = [k for k, v in params.items() if v.requires_grad]
            grads = torch.autograd.grad(loss, [params[k] for k in names], create_graph=create_graph)
        updated = dict(params)
        for name, grad in zip(names, grads, strict=True):
            updated[name] = params[name] - self.config.inner_lr * (grad if create_graph else grad.detach())
        return updated

    def adapted(self, params: Params, task: TaskBatch, create_graph: bool) -> Params:
        for episodes, advantages in task.inner:
            params = self.inner_step(params, episodes, advantages, create_graph)
        return params

    # --- collection -----------------------------------------------------------------------------
    def collect(self, env: gymnasium.vector.VectorEnv, seed: int | None = None) -> TaskBatch:
        """Inner episodes and adapted policies, then the post-update episodes, on one task's
        vector environment (one episode per sub-environment per step)."""
        params = {k: v.detach().requires_grad_(True) for k, v in self.params().items()}
        inner = []
        for step in range(self.config.inner_steps):
            episodes = self._episodes(env, params, None if seed is None else seed + step)
            advantages = self.advantages(episodes)
            inner.append((episodes, advantages))
            params = {
                k: v.detach().requires_grad_(True)
                for k, v in self.inner_step(params, episodes, advantages, False).items()
            }
        post = self._episodes(env, params, None if seed is None else seed + self.config.inner_steps)
        with torch.no_grad():
            mean, log_std = self.distribution(params, post.obs)
            old_log_prob = GaussianMLPPolicy.log_prob(mean, log_std, post.action)
        return TaskBatch(inner, post, self.advantages(post), old_log_prob, mean, log_std)

    def _episodes(self, env: gymnasium.vector.VectorEnv, params: Params, seed: int | None) -> Episodes:
        return run_vector_episodes(env, lambda obs: self.act(params, obs), self.config.max_path_length, seed)

    # --- outer step -----------------------------------------------------------------------------
    def meta_objective(self, params: Params, tasks: Sequence[TaskBatch], create_graph: bool) -> tuple[Tensor, Tensor]:
        """Mean over tasks of the post-update surrogate loss and of the KL from the collecting
        post-update policy, both as functions of θ through the inner step(s)."""
        losses, kls = [], []
        for task in tasks:
            adapted = self.adapted(params, task, create_graph)
            mean, log_std = self.distribution(adapted, task.post.obs)
            log_prob = GaussianMLPPolicy.log_prob(mean, log_std, task.post.action)
            losses.append(surrogate_loss(log_prob, task.old_log_prob, task.post_advantages, task.post.mask))
            kl = GaussianMLPPolicy.kl(task.old_mean, task.old_log_std, mean, log_std)
            kls.append(masked_mean(kl, task.post.mask))
        return torch.stack(losses).mean(), torch.stack(kls).mean()

    def meta_gradient(self, tasks: Sequence[TaskBatch]) -> Tensor:
        """∇_θ of the meta-loss (flat), through the adaptation as ``first_order`` says."""
        params = self.params()
        loss, _ = self.meta_objective(params, tasks, create_graph=not self.config.first_order)
        return flat(torch.autograd.grad(loss, list(params.values())))

    def meta_update(self, tasks: Sequence[TaskBatch]) -> dict[str, float]:
        """One TRPO step on θ (in place); returns the scalars to log."""
        params = self.params()
        names = list(params)
        tensors = list(params.values())
        second_order = not self.config.first_order
        loss, kl = self.meta_objective(params, tasks, create_graph=second_order)
        grad = flat(torch.autograd.grad(loss, tensors, retain_graph=True, create_graph=False))
        kl_grad = flat(torch.autograd.grad(kl, tensors, create_graph=True))

        def fisher_vector(v: Tensor) -> Tensor:
            hv = flat(torch.autograd.grad(kl_grad.dot(v), tensors, retain_graph=True))
            return hv + self.config.cg_damping * v

        direction = conjugate_gradient(fisher_vector, -grad, self.config.cg_iters)
        curvature = direction.dot(fisher_vector(direction)).clamp(min=1e-12)
        full_step = math.sqrt(2 * self.config.max_kl / float(curvature.detach())) * direction.detach()
        old = flat([t.detach() for t in tensors])
        old_loss = float(loss.detach())
        accepted, new_loss, new_kl = 0, old_loss, 0.0
        for k in range(self.config.max_backtracks):
            candidate = old + self.config.backtrack_ratio**k * full_step
            set_flat(tensors, candidate)
            with torch.no_grad():  # the inner step re-enables gradients for itself
                trial_loss, trial_kl = self.meta_objective(dict(zip(names, tensors, strict=True)), tasks, False)
            if float(trial_loss) < old_loss and float(trial_kl) <= self.config.max_kl and torch.isfinite(trial_loss):
                accepted, new_loss, new_kl = k + 1, float(trial_loss), float(trial_kl)
                break
        else:
            set_flat(tensors, old)
        return {
            "train/surrogate_loss": old_loss,
            "train/surrogate_improvement": old_loss - new_loss,
            "train/kl": new_kl,
            "train/line_search_steps": float(accepted),
            "train/grad_norm": float(grad.norm()),
            "train/policy_std": float(self.policy.log_std.detach().exp().mean()),
        }


def flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@torch.no_grad()
def set_flat(tensors: Sequence[Tensor], values: Tensor) -> None:
    offset = 0
    for t in tensors:
        t.copy_(values[offset : offset + t.numel()].view_as(t))
        offset += t.numel()
