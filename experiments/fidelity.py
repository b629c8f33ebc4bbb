"""The DrQ-v2/URLB fidelity fixes of PALM's agent and reward, each measured by reverting it alone.

Every variant is ``configs/palm.yaml`` (all fixes on: the defaults) plus command-line overrides
that put one fix back to this package's earlier behaviour; ``revert_all`` puts all of them back
(the old ``configs/palm.yaml``), ``random_policy`` is the no-exploration ablation at the new
defaults. Each run is trained through the CLI and scored with the representation table's
protocol (``experiments/representation_table.py``: linear probe at 100% and 1% labels, kNN, far/near
OOD with the kNN-distance scorer), so rows compare with that table's.

    python -m experiments.fidelity --seeds 0                                   # the one-seed table
    python -m experiments.fidelity --seeds 0 1 2 --variants default random_policy revert_all

Runs go to ``runs/fidelity_s<seed>/<variant>/version_0`` (finished ones are reused); the table
prints as Markdown (mean ± std over the seeds found) and ``--json`` writes the results page's twin.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
from pathlib import Path

from experiments import palm_sweep
from experiments.twin import write_twin

ROOT = palm_sweep.ROOT
_REWARD = "--model.init_args.reward.init_args"
REVERTS = {
    "straight_through": "--model.init_args.agent.straight_through false",
    "replay_ratio": "--data.init_args.updates_per_step 1",
    "noise": "--model.init_args.agent.stddev_schedule linear(1.0,0.2,50000)",
    "weight_init": "--model.init_args.weight_init default",
    "sequential": "--model.init_args.agent.sequential_updates false",
    "apt_settings": f"{_REWARD}.knn_rms true {_REWARD}.knn_clip 0.0001 {_REWARD}.source next_obs "
    "--model.init_args.reward_window sum",
    "reward_batchnorm": "--model.init_args.freeze_reward_batchnorm false",
}
VARIANTS = {
    "default": ("all fixes (the new defaults)", ""),
    "random_policy": ("all fixes, random policy (no exploration)", "--model.init_args.policy random"),
    "revert_straight_through": ("1 reverted: plain clamp, no straight-through gradient", REVERTS["straight_through"]),
    "revert_replay_ratio": ("2 reverted: 16 frames per update (fixed: 2)", REVERTS["replay_ratio"]),
    "revert_noise": ("3 reverted: std linear(1.0,0.2,50k frames) (fixed: constant 0.2)", REVERTS["noise"]),
    "revert_weight_init": ("4 reverted: PyTorch's default init (fixed: orthogonal)", REVERTS["weight_init"]),
    "revert_sequential": ("5 reverted: actor and critic from one backward", REVERTS["sequential"]),
    "revert_apt_settings": (
        "6 reverted: knn_rms, clip 1e-4, next-frame particles summed over the window",
        REVERTS["apt_settings"],
    ),
    "revert_reward_batchnorm": (
        "7 reverted: reward forwards move the projector's BN statistics",
        REVERTS["reward_batchnorm"],
    ),
    "revert_all": ("1-7 reverted (the old configs/palm.yaml)", " ".join(REVERTS.values())),
}
TITLES = {
    **{name: title for name, (title, _) in VARIANTS.items()},
    "random_encoder": "PALM's encoder untrained, orthogonal init",
}
COLUMNS = (
    ("linear, 100%", "linear_100"),
    ("linear, 1%", "linear_1"),
    ("kNN", "knn"),
    ("far AUROC", "far_knn_auroc"),
    ("near AUROC", "near_knn_auroc"),
    ("near FPR95 ↓", "near_knn_fpr95"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--evaluate-only", action="store_true", help="only runs already trained; skip the others")
    parser.add_argument(
        "--random-encoder",
        action="store_true",
        help="also score PALM's encoder untrained at the new (orthogonal) initialisation",
    )
    parser.add_argument("--json", type=Path, help="write the rows in the results pages' JSON shape")
    args = parser.parse_args()
    found: dict[str, dict[str, list[float]]] = {}
    for name in args.variants:
        for seed in args.seeds:
            out = ROOT / "runs" / f"fidelity_s{seed}"
            if args.evaluate_only and not (out / name / "version_0" / "trained.json").is_file():
                continue
            result = palm_sweep.run_variant(name, shlex.split(VARIANTS[name][1]), seed, out, args.data_dir)
            for metric, value in result.items():
                found.setdefault(name, {}).setdefault(metric, []).append(100 * value)
    if args.random_encoder:
        # the untrained encoder at the new defaults (orthogonal init): PALM's architecture from the
        # default run's checkpoint, re-initialised with the seed (as representation_table's row)
        import torch

        from experiments import representation_table as table
        from palm_lightning.models.evaluation.frozen_encoder import build_encoder

        for seed in args.seeds:
            run = ROOT / "runs" / f"fidelity_s{seed}" / "default" / "version_0"
            cache = run / "results_random_init.json"
            if not cache.is_file():
                if not (run / "trained.json").is_file():
                    continue
                torch.manual_seed(seed)
                encoder = build_encoder(str(run / "checkpoints" / "last.ckpt"), random_init=True)
                cache.write_text(json.dumps(table.evaluate(encoder, seed, args.data_dir), indent=2))
            for metric, value in json.loads(cache.read_text()).items():
                found.setdefault("random_encoder", {}).setdefault(metric, []).append(100 * value)
    print("| variant | seeds | " + " | ".join(title for title, _ in COLUMNS) + " |")
    print("|---|---:|" + "---:|" * len(COLUMNS))
    rows = []
    for name, metrics in found.items():
        n = len(metrics["linear_100"])
        cells = []
        for _, key in COLUMNS:
            values = metrics[key]
            std = statistics.stdev(values) if n > 1 else 0.0
            cells.append(f"{statistics.mean(values):.1f}" + (f" ± {std:.1f}" if n > 1 else ""))
        print(f"| {TITLES[name]} (`{name}`) | {n} | " + " | ".join(cells) + " |", flush=True)
        rows.append(
            {
                "name": name,
                "metrics": {
                    key: {
                        "mean": statistics.mean(metrics[key]),
                        "std": statistics.stdev(metrics[key]) if n > 1 else None,
                        "n": n,
                    }
                    for _, key in COLUMNS
                },
            }
        )
    if args.json:
        command = "python -m experiments.fidelity --seeds " + " ".join(map(str, args.seeds))
        if args.variants != list(VARIANTS):
            command += " --variants " + " ".join(args.variants)
        if args.random_encoder:
            command += " --random-encoder"
        write_twin(args.json, command, rows)


if __name__ == "__main__":
    main()
