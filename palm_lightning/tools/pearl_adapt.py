"""Adapt a trained PEARL to a held-out task by posterior sampling (the paper's test-time procedure).

    python -m palm_lightning.tools.pearl_adapt --ckpt runs/pearl_cpu/version_0/checkpoints/last.ckpt --task 0

Episode 1 explores with z drawn from the prior N(0, I); its transitions become context; each
later exploration episode draws z from the posterior given all context so far (PEARL updates the
posterior after every trajectory). Before the first and after every exploration episode, one
deterministic evaluation episode acts with the posterior *mean* (the prior mean 0 before any
context): the curve of its return (and velocity error) against the environment steps spent
exploring is the adaptation curve. Evaluation episodes are measurements, not counted as steps.
Writes ``pearl_adapt.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import torch

from palm_lightning.envs.rollouts import run_episode
from palm_lightning.models.meta_rl.pearl import PEARL
from palm_lightning.nn.context_encoder import ContextEncoder, make_context


def acting(model: PEARL, z: torch.Tensor, deterministic: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """The policy with a fixed z, as ``obs → action`` on the CPU."""
    return lambda obs: model.act_with_z(obs, z, deterministic).cpu()


@torch.no_grad()
def pearl_adapt(
    model: PEARL,
    env: gymnasium.Env,
    explore_episodes: int = 3,
    eval_episodes: int = 1,
    horizon: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Posterior-sampling adaptation on ``env`` (one task); returns the ``curve`` (one record
    per posterior: ``episodes``, ``env_steps`` spent exploring, mean ``return`` and, where
    reported, ``velocity_error`` of ``eval_episodes`` deterministic episodes) and the final
    posterior ``z_mean``/``z_variance``."""
    if explore_episodes < 0 or eval_episodes < 1:
        raise ValueError("explore_episodes must be ≥ 0 and eval_episodes ≥ 1")
    # The exploration episodes sample actions from torch's global generator: seeded here (and restored
    # after), so the curve depends on ``seed`` alone, not on what the process ran before.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model.eval()
        generator = torch.Generator().manual_seed(seed)
        context = torch.zeros(1, 0, model.encoder.in_dim)
        curve: list[dict[str, float]] = []
        env_steps = 0
        for episode in range(explore_episodes + 1):
            mean, variance = (t.cpu() for t in model.posterior(context))
            exploit = acting(model, mean[0], True)
            finals = [run_episode(env, exploit, horizon, seed + 1000 + k).summaries[0] for k in range(eval_episodes)]
            record = {"episodes": float(episode), "env_steps": float(env_steps)}
            for key in finals[0]:
                record[key] = sum(f[key] for f in finals) / len(finals)
            curve.append(record)
            if episode == explore_episodes:
                break
            z = ContextEncoder.sample(mean, variance, generator)[0]
            explored = run_episode(env, acting(model, z, False), horizon, seed + episode)
            env_steps += explored.steps
            obs, action, reward, next_obs = explored.transitions()
            fresh = make_context(obs, action, reward, next_obs if model.hp.use_next_obs else None)
            context = torch.cat([context, fresh[None]], dim=1)
        mean, variance = model.posterior(context)
        return {"curve": curve, "z_mean": mean[0].cpu().tolist(), "z_variance": variance[0].cpu().tolist()}


def adapt_checkpoint(
    ckpt: str | Path, task: int, explore_episodes: int = 3, eval_episodes: int = 1, seed: int = 0
) -> dict[str, Any]:
    """:func:`pearl_adapt` of a checkpoint on its family's held-out task ``task``; adds the
    ``family`` and the task's ``name``. Raises ``ValueError`` / ``FileNotFoundError`` on bad input."""
    from palm_lightning.envs.families import make_task_env
    from palm_lightning.envs.locomotion import FAMILIES

    model = PEARL.from_checkpoint(ckpt)
    info = model.task_info
    if not info.get("family"):
        raise ValueError(f"{ckpt} carries no task information (trained outside PEARLDataModule?)")
    name = FAMILIES[info["family"]].task_name(task, "adapt")  # raises with the valid range
    env = make_task_env(info["family"], task, split="adapt", **info.get("env_kwargs", {}))
    try:
        result = pearl_adapt(model, env, explore_episodes, eval_episodes, seed=seed)
    finally:
        env.close()
    return {"family": info["family"], "task": name, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a PEARL checkpoint (.ckpt)")
    parser.add_argument("--task", type=int, default=0, help="held-out task index of the family (adapt split)")
    parser.add_argument("--explore-episodes", type=int, default=3)
    parser.add_argument("--eval-episodes", type=int, default=1)
    parser.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = adapt_checkpoint(args.ckpt, args.task, args.explore_episodes, args.eval_episodes, args.seed)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for record in result["curve"]:
        extras = f", velocity error {record['velocity_error']:.3f}" if "velocity_error" in record else ""
        print(f"{int(record['env_steps'])} env steps: return {record['return']:.1f}{extras}")
    out = Path(args.out) if args.out else Path(args.ckpt).resolve().parent.parent / f"pearl_adapt_task{args.task}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pearl_adapt.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out}/pearl_adapt.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
