"""Adapt a trained EAR to an unseen task by searching its task-embedding sphere (CEM, EAR's
Algorithm 2). No gradient step: only the 3-D embedding that drives the frozen decoder changes.

    python -m palm_lightning.tools.cem_adapt --ckpt runs/ear_cpu/version_0/checkpoints/last.ckpt --task 0
    python -m palm_lightning.tools.cem_adapt --ckpt ... --target 4.0     # any custom target

Algorithm (the authors' settings as defaults): ``--elites`` embeddings drawn uniformly on the
sphere; every epoch each elite gets ``--perturbations`` copies plus N(0, ``--noise``²) noise,
re-normalised; every candidate (elites and perturbations) is scored by the return of one
episode, all episodes run in parallel; the best ``--elites`` survive. After the last epoch the
best embedding is re-evaluated on ``--final-episodes`` fresh episodes; with ``--eval-episodes N``
the best embedding so far is also evaluated on N fresh episodes after every epoch (``eval_*`` in the
history: the adaptation curve against ``env_steps``; evaluation episodes are measurements, not
counted as steps, as in ``pearl_adapt``). On a Meta-World goal family the records and the final
evaluation also hold the success rate and the hand's final distance to the goal. Writes ``adapted_lte.pt``
(the embedding, its scores, the task) and ``cem.json``, and TensorBoard scalars per epoch, under
``--out``. ``--task`` indexes the family's held-out (``adapt``) tasks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from palm_lightning.tools.ear_rollouts import load_ear, rollout_embeddings

BEHAVIOUR_KEYS = (
    "x_velocity",
    "heading",
    "z_height",
    "velocity_error",
    "success",
    "final_hand_to_goal",
    "final_obj_to_target",
)
"""Episode summary keys reported besides the return (those the family has). For the Meta-World
families: ``success`` (averaged over episodes: the success rate), ``final_hand_to_goal``, the
hand's (``obs[:3]``) distance to the held-out goal at the end of the episode, and
``final_obj_to_target``, Meta-World's own success distance then (fingertips for reach, the object
for push)."""


def cem_search(
    ckpt: str,
    task: int | None = None,
    target: float | None = None,
    elites: int = 6,
    perturbations: int = 15,
    noise: float = 0.5,
    epochs: int = 10,
    final_episodes: int = 5,
    family: str | None = None,
    seed: int = 0,
    on_epoch: Any = None,
    eval_episodes: int = 0,
) -> dict[str, Any]:
    """Run the search; returns the best embedding, per-epoch history and the final evaluation.
    ``eval_episodes`` > 0 adds ``eval_return`` (and ``eval_velocity_error``, …) of the best
    embedding so far to every epoch's record, on the episodes the final evaluation starts with."""
    if (task is None) == (target is None):
        raise ValueError("give exactly one of --task (a held-out task index) or --target (a custom target)")
    if elites < 1 or perturbations < 0 or epochs < 1 or noise < 0 or eval_episodes < 0:
        raise ValueError("elites and epochs must be ≥ 1, perturbations, noise and eval_episodes ≥ 0")
    model, info = load_ear(ckpt, family)
    family_cls = info["family_class"]
    env_kwargs = dict(info.get("env_kwargs") or {})
    if target is not None:
        env_kwargs["target"] = float(target)
        split, env_task, name = "train", 0, family_cls.describe(float(target), family_cls.kinds[0])
    else:
        assert task is not None  # exactly one of task and target, checked above
        split, env_task = "adapt", int(task)
        name = family_cls.task_name(env_task, "adapt")  # raises with the valid range
    generator = torch.Generator().manual_seed(seed)
    dim = model.lte_dim
    population = F.normalize(torch.randn(elites, dim, generator=generator), dim=1)
    history = []
    env_steps = 0
    best: tuple[float, torch.Tensor] | None = None
    for epoch in range(epochs):
        start = time.perf_counter()
        noisy = population.repeat_interleave(perturbations, 0)
        noisy = F.normalize(noisy + noise * torch.randn(noisy.shape, generator=generator), dim=1)
        candidates = torch.cat([population, noisy])
        summaries = rollout_embeddings(model, info["family"], env_task, candidates, split, seed + epoch, env_kwargs)
        returns = torch.tensor([s["return"] for s in summaries])
        env_steps += int(sum(s["length"] for s in summaries))
        order = returns.argsort(descending=True)[:elites]
        population = candidates[order]
        if best is None or returns[order[0]] > best[0]:
            best = (float(returns[order[0]]), candidates[order[0]].clone())
        record = {
            "epoch": epoch,
            "best_return": float(returns[order[0]]),
            "elite_mean_return": float(returns[order].mean()),
            "candidate_mean_return": float(returns.mean()),
            "env_steps": env_steps,
            "seconds": time.perf_counter() - start,
        }
        for key in BEHAVIOUR_KEYS:
            if key in summaries[int(order[0])]:
                record[f"best_{key}"] = summaries[int(order[0])][key]
        if eval_episodes:
            fresh = rollout_embeddings(
                model, info["family"], env_task, best[1].repeat(eval_episodes, 1), split, seed + 10_000, env_kwargs
            )
            for key in ("return", *BEHAVIOUR_KEYS):
                if key in fresh[0]:
                    record[f"eval_{key}"] = float(np.mean([s[key] for s in fresh]))
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    assert best is not None
    final = rollout_embeddings(
        model, info["family"], env_task, best[1].repeat(final_episodes, 1), split, seed + 10_000, env_kwargs
    )
    evaluation = {
        "return_mean": float(np.mean([s["return"] for s in final])),
        "return_std": float(np.std([s["return"] for s in final])),
    }
    for key in BEHAVIOUR_KEYS:
        if key in final[0]:
            evaluation[key] = float(np.mean([s[key] for s in final]))
    return {
        "family": info["family"],
        "task": name,
        "split": split,
        "lte": best[1],
        "history": history,
        "evaluation": evaluation,
        "trained_ltes": model.task_embeddings(),
        "trained_tasks": info["task_names"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="an EAR checkpoint (.ckpt)")
    parser.add_argument("--task", type=int, default=None, help="held-out task index of the family (adapt split)")
    parser.add_argument("--target", type=float, default=None, help="a custom target instead (m/s; radians for ant_dir)")
    parser.add_argument("--elites", type=int, default=6)
    parser.add_argument("--perturbations", type=int, default=15, help="perturbations per elite per epoch")
    parser.add_argument("--noise", type=float, default=0.5, help="std of the perturbations")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--final-episodes", type=int, default=5)
    parser.add_argument(
        "--eval-episodes", type=int, default=0, help="evaluate the best embedding so far after every epoch"
    )
    parser.add_argument("--family", default=None, help="expected task family (checked against the checkpoint)")
    parser.add_argument("--out", default=None, help="output folder (default: next to the checkpoint, cem_<task>/)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from torch.utils.tensorboard import SummaryWriter

    label = f"task{args.task}" if args.task is not None else f"target{args.target}"
    out = Path(args.out) if args.out else Path(args.ckpt).resolve().parent.parent / f"cem_{label}"
    writer = None

    def on_epoch(record: dict[str, Any]) -> None:
        nonlocal writer
        if writer is None:
            out.mkdir(parents=True, exist_ok=True)
            writer = SummaryWriter(str(out))
        for key, value in record.items():
            if key not in ("epoch", "env_steps"):
                writer.add_scalar(f"cem/{key}", value, global_step=record["epoch"])
        extras = "".join(
            f", {k[5:]} {v:.3f}" for k, v in record.items() if k.startswith("best_") and k != "best_return"
        )
        if "eval_return" in record:
            extras += f", best so far on fresh episodes: return {record['eval_return']:.1f}"
        print(
            f"epoch {record['epoch']}: best return {record['best_return']:.1f}, "
            f"elites {record['elite_mean_return']:.1f}, candidates {record['candidate_mean_return']:.1f}{extras}, "
            f"{record['env_steps']} env steps, {record['seconds']:.1f} s",
            flush=True,
        )

    try:
        result = cem_search(
            args.ckpt,
            args.task,
            args.target,
            args.elites,
            args.perturbations,
            args.noise,
            args.epochs,
            args.final_episodes,
            args.family,
            args.seed,
            on_epoch,
            args.eval_episodes,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    evaluation = result["evaluation"]
    print(
        f"\n{result['family']} held-out {result['task']}: adapted embedding {result['lte'].numpy().round(3).tolist()}, "
        f"{args.final_episodes} fresh episodes: return {evaluation['return_mean']:.1f} ± {evaluation['return_std']:.1f}"
        + "".join(f", {k} {v:.3f}" for k, v in evaluation.items() if not k.startswith("return"))
    )
    out.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "lte": result["lte"],
            "task": result["task"],
            "family": result["family"],
            "evaluation": evaluation,
            "ckpt": str(args.ckpt),
        },
        out / "adapted_lte.pt",
    )
    (out / "cem.json").write_text(
        json.dumps(
            {k: v for k, v in result.items() if k not in ("lte", "trained_ltes")} | {"lte": result["lte"].tolist()},
            indent=2,
        )
    )
    if writer is not None:
        writer.close()
    print(f"wrote {out}/adapted_lte.pt, cem.json and TensorBoard events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
