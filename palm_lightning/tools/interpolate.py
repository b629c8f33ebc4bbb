"""Interpolate and compose EAR's latent task embeddings, and measure the behaviour they produce.

    python -m palm_lightning.tools.interpolate --ckpt runs/ear_cpu/version_0/checkpoints/last.ckpt --tasks 1 3
    MUJOCO_GL=egl python -m palm_lightning.tools.interpolate --ckpt ... --tasks 1 3 --render

For each β of the sweep the embedding ``Z = normalize(β·Z_i + (1−β)·Z_j)`` drives the action
decoder for ``--episodes`` deterministic episodes, and the achieved behaviour is averaged:
forward velocity (velocity families, and the running tasks of Run-Jump), heading of the mean
planar velocity (Ant-Dir), root height (the jumping tasks of Run-Jump); for the Meta-World
families the hand's final position (``obs[:3]``) and the success rate, and for the goal families
(``metaworld_reach``, ``metaworld_push``) where that position lies with respect to the segment
from goal J (β=0) to goal I (β=1): its distance to the segment and its position along it (0 at J,
1 at I). Prints a markdown table,
whether the behaviour moves monotonically with β, and writes ``interpolation.json``, a plot, and
TensorBoard scalars/images under ``--out`` (``--render``: a filmstrip per β, needs MUJOCO_GL).
``--tasks`` are the checkpoint's trained-task indices (its one-hot order; listed on error).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from palm_lightning.envs.manipulation import MetaWorldGoalEnv
from palm_lightning.tools.ear_rollouts import (
    check_render_backend,
    check_slot,
    load_ear,
    render_strip,
    rollout_embeddings,
)

BEHAVIOUR_KEYS = (
    "x_velocity",
    "heading",
    "z_height",
    "final_hand_x",
    "final_hand_y",
    "final_hand_z",
    "success",
    "goal_segment_distance",
    "goal_segment_position",
)
"""Behaviour measures reported per β, those present (the last two are computed per row)."""
UNITS = {
    "x_velocity": "velocity (m/s)",
    "heading": "heading (deg)",
    "z_height": "height",
    "final_hand_x": "final hand x (m)",
    "final_hand_y": "final hand y (m)",
    "final_hand_z": "final hand z (m)",
    "success": "success rate",
    "goal_segment_distance": "hand to goal segment (m)",
    "goal_segment_position": "position along segment",
}
HAND = ("final_hand_x", "final_hand_y", "final_hand_z")


def behaviour_keys(summary: dict[str, float]) -> list[str]:
    return [k for k in BEHAVIOUR_KEYS if k in summary]


def segment_position(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[float, float]:
    """Distance from ``point`` to the segment ``start``–``end`` and where its projection falls along
    it (0 at ``start``, 1 at ``end``; outside [0, 1] beyond an end, the distance then being to that end)."""
    point, start, end = (np.asarray(v, dtype=np.float64) for v in (point, start, end))
    direction = end - start
    length2 = float(direction @ direction)
    if length2 == 0.0:
        raise ValueError("the segment's ends coincide: pick two tasks with different goals")
    position = float((point - start) @ direction / length2)
    nearest = start + min(max(position, 0.0), 1.0) * direction
    return float(np.linalg.norm(point - nearest)), position


def interpolate(
    ckpt: str, tasks: tuple[int, int], betas: list[float], episodes: int = 2, family: str | None = None, seed: int = 0
) -> tuple[dict, list[dict[str, float]]]:
    """Roll out every β; returns the checkpoint's task info and one row per β (means over episodes)."""
    bad = [b for b in betas if not (0.0 <= b <= 1.0) or math.isnan(b)]
    if bad:
        raise ValueError(f"β must lie in [0, 1]; got {bad}")
    model, info = load_ear(ckpt, family)
    i, j = tasks
    check_slot(info, i)
    check_slot(info, j)
    lte = model.task_embeddings()
    mixed = torch.stack([b * lte[i] + (1 - b) * lte[j] for b in betas])
    if (mixed.norm(dim=1) < 1e-6).any():
        raise ValueError(
            f"tasks {i} and {j} have opposite embeddings: some β gives a zero vector that cannot be normalised"
        )
    ltes = F.normalize(mixed, dim=1).repeat_interleave(episodes, 0)
    summaries = rollout_embeddings(
        model, info["family"], info["tasks"][i], ltes, info["split"], seed, info.get("env_kwargs")
    )
    goals = None
    if issubclass(info["family_class"], MetaWorldGoalEnv):  # where the hand ends against the two goals
        positions = info["family_class"].goals(info["split"])
        goals = {"I": positions[info["tasks"][i]], "J": positions[info["tasks"][j]]}
        info["goals"] = {info["task_names"][k]: [float(x) for x in goals[end]] for k, end in ((i, "I"), (j, "J"))}
    rows = []
    for k, beta in enumerate(betas):
        group = summaries[k * episodes : (k + 1) * episodes]
        row = {"beta": beta, "return": float(np.mean([s["return"] for s in group]))}
        for key in behaviour_keys(group[0]):
            values = [s[key] for s in group]
            row[key] = (
                float(math.degrees(np.angle(np.mean(np.exp(1j * np.array(values))))))
                if key == "heading"
                else float(np.mean(values))
            )
        if goals is not None and all(key in row for key in HAND):
            hand = np.array([row[key] for key in HAND])
            row["goal_segment_distance"], row["goal_segment_position"] = segment_position(hand, goals["J"], goals["I"])
        rows.append(row)
    return info, rows


def is_monotonic(values: list[float]) -> bool:
    diffs = np.diff(values)
    return bool((diffs >= 0).all() or (diffs <= 0).all())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="an EAR checkpoint (.ckpt)")
    parser.add_argument(
        "--tasks", type=int, nargs=2, required=True, metavar=("I", "J"), help="trained-task indices: β=1 is I, β=0 is J"
    )
    parser.add_argument("--betas", type=float, nargs="+", default=None, help="explicit β values in [0, 1]")
    parser.add_argument("--steps", type=int, default=11, help="evenly spaced β in [0, 1] (when --betas is not given)")
    parser.add_argument("--episodes", type=int, default=2, help="episodes per β")
    parser.add_argument("--family", default=None, help="expected task family (checked against the checkpoint)")
    parser.add_argument(
        "--out", default=None, help="output folder (default: next to the checkpoint, interpolation_I_J/)"
    )
    parser.add_argument("--render", action="store_true", help="render a filmstrip per β (needs MUJOCO_GL)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.render:
        check_render_backend()
    betas = args.betas if args.betas is not None else list(np.linspace(0, 1, args.steps).round(4))
    try:
        info, rows = interpolate(args.ckpt, tuple(args.tasks), betas, args.episodes, args.family, args.seed)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    i, j = args.tasks
    names = info["task_names"]
    keys = behaviour_keys(rows[0]) if rows else []
    units = UNITS
    print(f"{info['family']}: β·[{names[i]}] + (1−β)·[{names[j]}], {args.episodes} episodes per β\n")
    print("| β | " + " | ".join(units[k] for k in keys) + " | return |")
    print("|---|" + "---|" * (len(keys) + 1))
    for row in rows:
        print(f"| {row['beta']:.2f} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + f" | {row['return']:.1f} |")
    for key in keys:
        ordered = [r[key] for r in sorted(rows, key=lambda r: r["beta"])]
        print(
            f"\n{units[key]}: monotonic in β: {'yes' if is_monotonic(ordered) else 'no'} "
            f"(β=0: {ordered[0]:.3f}, β=1: {ordered[-1]:.3f})"
        )

    out = Path(args.out) if args.out else Path(args.ckpt).resolve().parent.parent / f"interpolation_{i}_{j}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "interpolation.json").write_text(
        json.dumps(
            {
                "ckpt": str(args.ckpt),
                "family": info["family"],
                "tasks": [names[i], names[j]],
                **({"goals": info["goals"]} if "goals" in info else {}),
                "rows": rows,
            },
            indent=2,
        )
    )
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out))
    for row in rows:
        for key in keys:
            writer.add_scalar(f"interpolation/{key}", row[key], global_step=round(row["beta"] * 100))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.5), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            ax.plot([r["beta"] for r in rows], [r[key] for r in rows], "o-")
            ax.set_xlabel(f"β  (0: {names[j]}, 1: {names[i]})")
            ax.set_ylabel(units[key])
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "interpolation.png", dpi=100)
        writer.add_figure("interpolation/plot", fig)
        plt.close(fig)
    except ImportError:
        print("(matplotlib not installed: no plot)")
    if args.render:
        model, _ = load_ear(args.ckpt, args.family)
        lte = model.task_embeddings()
        shown = betas if len(betas) <= 5 else [betas[k] for k in np.linspace(0, len(betas) - 1, 5).round().astype(int)]
        strips = [
            render_strip(
                model,
                info["family"],
                info["tasks"][i],
                F.normalize(b * lte[i] + (1 - b) * lte[j], dim=0),
                env_kwargs=info.get("env_kwargs"),
            )
            for b in shown
        ]
        grid = np.concatenate(strips, axis=0)
        from PIL import Image

        Image.fromarray(grid).save(out / "filmstrips.png")
        writer.add_image("interpolation/filmstrips", grid, dataformats="HWC")
        print(f"rendered β = {shown} (rows, top to bottom) into {out / 'filmstrips.png'}")
    writer.close()
    print(f"\nwrote {out}/interpolation.json, interpolation.png and TensorBoard events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
