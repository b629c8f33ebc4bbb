"""Adapt a trained MAML-TRPO policy to a held-out task by policy-gradient steps (MAML's test time).

    python -m palm_lightning.tools.maml_adapt --ckpt runs/maml_cpu/version_0/checkpoints/last.ckpt --task 0 --steps 3

Each step collects ``--episodes`` episodes with the current parameters, fits the linear baseline
and takes one inner step (the trained α). Prints and writes (``maml_adapt.json`` under ``--out``)
the mean return (and velocity error) of the episodes of every step against the environment steps
spent before them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium

from palm_lightning.models.maml_trpo import MAMLTRPO, maml_adapt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a MAML-TRPO checkpoint (.ckpt)")
    parser.add_argument("--task", type=int, default=0, help="held-out task index of the family (adapt split)")
    parser.add_argument("--steps", type=int, default=3, help="inner gradient steps")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per step (MAML's K)")
    parser.add_argument("--out", default=None, help="output folder (default: next to the checkpoint)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from palm_lightning.envs.locomotion import family_class, make_task_env

    try:
        model = MAMLTRPO.from_checkpoint(args.ckpt)
        family, env_kwargs = model.task_info.get("family"), model.task_info.get("env_kwargs", {})
        if not family:
            raise ValueError(f"{args.ckpt} carries no task family (trained outside MetaTaskDataModule?)")
        name = family_class(family).task_name(args.task, "adapt")  # raises with the valid range
        env = gymnasium.vector.SyncVectorEnv(
            [lambda: make_task_env(family, args.task, split="adapt", **env_kwargs)] * args.episodes
        )
        curve = maml_adapt(model.agent, env, args.steps, args.seed)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for record in curve:
        extras = f", velocity error {record['velocity_error']:.3f}" if "velocity_error" in record else ""
        print(f"{int(record['env_steps'])} env steps: return {record['return']:.1f}{extras}")
    out = Path(args.out) if args.out else Path(args.ckpt).resolve().parent.parent / f"maml_adapt_task{args.task}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "maml_adapt.json").write_text(json.dumps({"family": family, "task": name, "curve": curve}, indent=2))
    print(f"wrote {out}/maml_adapt.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
