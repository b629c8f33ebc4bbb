"""One-seed sweep of PALM settings, each scored with the representation table's protocol.

Every variant is ``configs/palm.yaml`` plus command-line overrides, trained through the CLI and
evaluated with :func:`representation_table.evaluate` (linear probe at 100% and 1% labels, kNN,
far/near OOD with the kNN-distance scorer) — so a row here is comparable with the table's rows of
the same seed. A sweep is for choosing what to measure on three seeds, not a result by itself.

    python -m experiments.palm_sweep "repr_lr_1e-4=--model.init_args.repr_lr 1e-4" \\
        "action_scale_0.3=--data.init_args.action_scale 0.3" "updates_250=--trainer.max_steps 250"

Each argument is ``name=overrides``; runs go to ``runs/palm_sweep/<name>/version_0`` and finished
ones (``trained.json``, ``results.json``) are reused.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from experiments import representation_table as table

ROOT = table.ROOT


def run_variant(name: str, overrides: list[str], seed: int, out: Path, data_dir: str) -> dict[str, float]:
    """Train (unless finished) and evaluate (unless cached) one variant."""
    from palm_lightning.models.evaluation.frozen_encoder import build_encoder

    ckpt = table.train(
        table.ROW_BY_KEY["palm_temporal_apt"], seed, out, data_dir, name=name, overrides=tuple(overrides)
    )
    cache = ckpt.parent.parent / "results.json"
    if not cache.is_file():
        cache.write_text(json.dumps(table.evaluate(build_encoder(str(ckpt)), seed, data_dir), indent=2))
    return json.loads(cache.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help='name=overrides, e.g. "lr=--model.init_args.repr_lr 1e-4"')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "palm_sweep")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    args = parser.parse_args()
    variants: dict[str, list[str]] = {}
    for spec in args.variants:
        name, sep, overrides = spec.partition("=")
        if not sep or not name or "/" in name:
            parser.error(f"a variant is name=overrides (name without '/'), got {spec!r}")
        variants[name] = shlex.split(overrides)
    print("| variant | linear, 100% | linear, 1% | kNN | far AUROC | near AUROC | near FPR95 ↓ |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, overrides in variants.items():
        r = run_variant(name, overrides, args.seed, args.out, args.data_dir)
        cells = [r["linear_100"], r["linear_1"], r["knn"], r["far_knn_auroc"], r["near_knn_auroc"], r["near_knn_fpr95"]]
        print(
            f"| {name} (`{' '.join(overrides) or 'configs/palm.yaml'}`) | "
            + " | ".join(f"{100 * c:.1f}" for c in cells)
            + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()
