"""How far training moved an encoder from its initialisation, and whether its features still match it.

    R=runs/atari_table; C=version_0/checkpoints/last.ckpt
    python -m palm_lightning.tools.encoder_drift $R/palm_apt_s0/$C $R/palm_random_policy_s0/$C --games Boxing Pong

The reference of encoder X is ``random:X``: X's architecture freshly initialised under torch seed
``--seed`` (what the state probe's ``random_init`` builds). For a run that built its encoder first
under that seed (PALM-Atari's seed-0 runs do), the reference is the run's own initial weights: then
the first convolution's relative change is small and the features' same-dimension correlation is
high; a run initialised otherwise reads ~1 and ~0 there, and the per-layer numbers mean nothing.

Printed per encoder: the relative weight change ‖W − W₀‖ / ‖W₀‖ of every weight matrix (biases start
at 0 and are left out), and per game, on ``--frames`` of its cached frames, the linear CKA (Kornblith
et al. 2019) between the features and the reference's, and the mean correlation of each feature
dimension with the same dimension of the reference. Why: an encoder whose probe scores equal its
initialisation's once features are standardized (docs/results/atari.md) may simply not have moved.
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor, nn

from palm_lightning.tools.feature_spread import game_frames, load_encoder


def weight_changes(trained: nn.Module, initial: nn.Module) -> dict[str, float]:
    """``‖W − W₀‖ / ‖W₀‖`` per weight tensor of two modules of the same architecture."""
    before = dict(initial.named_parameters())
    changes = {}
    for name, weight in trained.named_parameters():
        start = before[name]
        if weight.shape != start.shape:
            raise ValueError(f"{name}: shapes differ, {tuple(weight.shape)} and {tuple(start.shape)}")
        if name.endswith("bias") or float(start.norm()) == 0.0:
            continue
        changes[name] = float((weight - start).norm() / start.norm())
    return changes


def linear_cka(x: Tensor, y: Tensor) -> float:
    """Linear CKA of two feature matrices ``(N, D1)``, ``(N, D2)`` of the same N inputs: 1 when one
    is an orthogonal transform and scaling of the other, near 0 for unrelated features."""
    x, y = x - x.mean(0), y - y.mean(0)
    return float((x.T @ y).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))


def same_dimension_correlation(x: Tensor, y: Tensor) -> float:
    """The mean over dimensions of the correlation between ``x[:, d]`` and ``y[:, d]``."""

    def standardized(f: Tensor) -> Tensor:
        return (f - f.mean(0)) / f.std(0, unbiased=False).clamp_min(1e-8)

    return float((standardized(x) * standardized(y)).mean(0).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoders", nargs="+", help="encoder checkpoints or network files")
    parser.add_argument("--games", nargs="+", default=["Boxing", "Pong"])
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    images = {game: game_frames(game, args.frames, args.data_dir) for game in args.games}
    for path in args.encoders:
        trained, initial = load_encoder(path, args.seed), load_encoder(f"random:{path}", args.seed)
        print(f"\n{path} against random:{path} (seed {args.seed})\n")
        print("| weight | shape | relative change |\n|---|---|---:|")
        shapes = dict(trained.named_parameters())
        for name, change in weight_changes(trained, initial).items():
            print(f"| {name} | {tuple(shapes[name].shape)} | {change:.3f} |")
        print("\n| game | linear CKA | same-dimension correlation |\n|---|---:|---:|")
        for game, batch in images.items():
            with torch.no_grad():
                f, f0 = trained(batch), initial(batch)
            print(f"| {game} | {linear_cka(f, f0):.3f} | {same_dimension_correlation(f, f0):.3f} |")


if __name__ == "__main__":
    main()
