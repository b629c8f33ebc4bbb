"""Adapt a trained MAML-TRPO policy to a held-out task by policy-gradient steps (MAML's test time).

    python -m palm_lightning.tools.maml_adapt --ckpt runs/maml_cpu/version_0/checkpoints/last.ckpt --task 0 --steps 3

Each step collects ``--episodes`` episodes with the current parameters, fits the linear baseline
and takes one inner step (the trained α). Prints and writes (``maml_adapt.json`` under ``--out``)
the mean return (and velocity error) of the episodes of every step against the environment steps
spent before them; ``--eval-episodes N`` adds the return of N episodes acting with the policy mean
at every point (measurements, not counted as steps: the curve ``python -m experiments.ear_adaptation`` uses).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium
import torch

from palm_lightning.models.meta_rl.maml_trpo import MAMLTRPO, maml_adapt


def adapt_checkpoint(
    ckpt: str | Path, task: int, steps: int = 3, episodes: int = 20, seed: int = 0, eval_episodes: int = 0
) -> dict[str, Any]:
    """:func:`maml_adapt` of a checkpoint on its family's held-out task ``task`` with ``episodes``
    episodes per step (and ``eval_episodes`` deterministic evaluation episodes per point); returns
    the ``family``, the task's name and the ``curve``. Raises ``ValueError`` /
    ``FileNotFoundError`` on bad input."""
    from palm_lightning.envs.families import family_class, make_task_env

    model = MAMLTRPO.from_checkpoint(ckpt)
    family, env_kwargs = model.task_info.get("family"), model.task_info.get("env_kwargs", {})
    if not family:
        raise ValueError(f"{ckpt} carries no task family (trained outside MetaTaskDataModule?)")
    name = family_class(family).task_name(task, "adapt")  # raises with the valid range

    def make() -> gymnasium.Env:
        return make_task_env(family, task, split="adapt", **env_kwargs)

    env = gymnasium.vector.SyncVectorEnv([make] * episodes)
    eval_env = gymnasium.vector.SyncVectorEnv([make] * eval_episodes) if eval_episodes else None
    try:
        # The policy-gradient episodes sample actions from torch's global generator: seeded here (and
        # restored after), so a curve depends on ``seed`` alone, not on what the process ran before.
        # Here, not in maml_adapt: that also runs in MAMLTRPO's validation, inside training's RNG stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            curve = maml_adapt(model.agent, env, steps, seed, eval_env)
    finally:
        env.close()
        if eval_env is not None:
            eval_env.close()
    return {"family": family, "task": name, "curve": curve}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a MAML-TRPO checkpoint (.ckpt)")
    parser.add_argument("--task", type=int, default=0, help="held-out task index of the family (adapt split)")
    parser.add_argument("--steps", type=int, default=3, help="inner gradient steps")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per step (MAML's K)")
    parser.add_argument(
        "--eval-episodes", type=int, default=0, help="also evaluate the policy mean on this many episodes per point"
    )
    parser.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = adapt_checkpoint(args.ckpt, args.task, args.steps, args.episodes, args.seed, args.eval_episodes)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for record in result["curve"]:
        extras = f", velocity error {record['velocity_error']:.3f}" if "velocity_error" in record else ""
        extras += f", policy mean: return {record['eval_return']:.1f}" if "eval_return" in record else ""
        print(f"{int(record['env_steps'])} env steps: return {record['return']:.1f}{extras}")
    out = Path(args.out) if args.out else Path(args.ckpt).resolve().parent.parent / f"maml_adapt_task{args.task}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "maml_adapt.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out}/maml_adapt.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
