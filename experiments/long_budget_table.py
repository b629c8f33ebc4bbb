"""The long-budget representation table: does exploring the generator's manifold beat not exploring?

Every row trains for the same number of updates (``configs/budget/long.yaml``, a last ``--config``
on top of the row's own training config) with the same DrQ encoder, and is scored with the
frozen-encoder protocol of ``experiments/representation_table.py`` (linear probe with 100% and 1% of
the labels, kNN, far/near OOD). Rows (names as in ``docs/results/representation.json``):

- ``supervised``, ``random_encoder`` (``palm_apt``'s architecture, untrained), ``pixels``,
  ``simsiam_real`` (SimSiam on the real images, augmentations, SimSiam's own SGD recipe:
  ``configs/budget/simsiam_sgd.yaml``; with PALM's Adam 1e-4 it did not pass raw pixels on the
  linear probe within 20 000 updates) and ``simsiam_real_adam`` (PALM's optimiser);
- ``palm_apt`` and ``palm_random_policy`` on the default generator, ``palm_apt_old_generator``
  (``configs/palm_variants/old_generator.yaml``), ``palm_icm`` and ``palm_rnd`` (one seed each).

    python -m experiments.long_budget_table --train --seeds 0 1 2 --rows simsiam_real palm_apt   # trains, resumes
    python -m experiments.long_budget_table --seeds 0 1 2 --json docs/results/representation_long.json
    python -m experiments.long_budget_table --curve simsiam_real --seeds 0   # linear/kNN at every checkpoint
    python -m experiments.long_budget_table --overlay repr512 --train --seeds 0 --rows simsiam_real

``--overlay NAME`` adds ``configs/budget/NAME.yaml`` after every trained row's configs (``repr512``:
512-d representation; ``wide_encoder``: 64 channels too; ``simsiam_sgd``: SimSiam's own optimiser,
``simsiam_real`` only); its runs go to ``runs/representation_long_NAME/``. Otherwise runs go to
``runs/representation_long/<row>_s<seed>/version_0/``. An interrupted run resumes from
its ``last.ckpt`` the next time ``--train`` reaches it (PALM's checkpoints hold the replay buffer).
Two rows can train side by side: give each process its own ``--rows`` and ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from experiments.representation_table import PALM_BASE, ROOT, Row, cached_results, run_dir, train_rows
from experiments.twin import write_twin

LONG = "budget/long.yaml"
ROWS = (
    Row("supervised", "supervised (labels; upper bound)", ("baselines/supervised_fmnist.yaml", LONG)),
    Row("random_encoder", "random encoder (same architecture, untrained)", encoder="random:palm_apt"),
    Row("pixels", "raw pixels", encoder="pixels"),
    Row(
        "simsiam_real",
        "SimSiam on real images (augmentations, SimSiam's SGD recipe)",
        ("baselines/simsiam_fmnist.yaml", LONG, "budget/simsiam_sgd.yaml"),
    ),
    Row("simsiam_real_adam", "SimSiam on real images, PALM's Adam 1e-4", ("baselines/simsiam_fmnist.yaml", LONG)),
    Row("palm_apt", "PALM, APT (default generator)", (*PALM_BASE, LONG)),
    Row("palm_random_policy", "PALM, random policy", (*PALM_BASE, "palm_variants/random_policy.yaml", LONG)),
    Row("palm_apt_old_generator", "PALM, APT, old generator", (*PALM_BASE, "palm_variants/old_generator.yaml", LONG)),
    Row("palm_icm", "PALM, ICM reward", (*PALM_BASE, "palm_variants/icm.yaml", LONG)),
    Row("palm_rnd", "PALM, RND reward", (*PALM_BASE, "palm_variants/rnd.yaml", LONG)),
)
ROW_BY_KEY = {row.key: row for row in ROWS}
METRICS = {  # JSON metric name -> the evaluation's key
    "linear_100": "linear_100",
    "linear_1": "linear_1",
    "knn": "knn",
    "far_auroc": "far_knn_auroc",
    "near_auroc": "near_knn_auroc",
}


def curve(row: Row, seed: int, out: Path, data_dir: str) -> list[dict[str, float]]:
    """Linear probe (100% labels) and kNN accuracy of every saved checkpoint of one run."""
    from palm_lightning.datamodules import FashionMNISTDataModule
    from palm_lightning.evaluation import extract_features, fit_linear_probe, knn_votes
    from palm_lightning.evaluation.linear import topk_accuracy
    from palm_lightning.models.evaluation.frozen_encoder import build_encoder

    dm = FashionMNISTDataModule(data_dir=data_dir, resolution=32, val_size=5000, seed=seed, download=True)
    dm.prepare_data()
    dm.setup("fit")
    dm.setup("test")
    assert dm.train_set is not None and dm.test_set is not None
    checkpoints = sorted(
        (run_dir(out, row.key, seed) / "checkpoints").glob("*step=*.ckpt"),
        key=lambda p: int(p.stem.split("step=")[1]),
    )
    points = []
    for ckpt in checkpoints:
        encoder = build_encoder(str(ckpt))
        train_x = extract_features(encoder, dm.train_set.images, dm.normalize)
        test_x = extract_features(encoder, dm.test_set.images, dm.normalize)
        probe = fit_linear_probe(train_x, dm.train_set.labels, test_x, dm.test_set.labels, num_classes=10, seed=seed)
        votes = knn_votes(train_x, dm.train_set.labels, test_x, num_classes=10, k=20, temperature=0.07)
        point = {
            "step": int(ckpt.stem.split("step=")[1]),
            "linear_100": probe["acc"],
            "knn": topk_accuracy(votes, dm.test_set.labels, 1),
        }
        print(json.dumps(point), flush=True)
        points.append(point)
    return points


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=[row.key for row in ROWS], choices=list(ROW_BY_KEY))
    parser.add_argument("--train", action="store_true", help="train (or resume) the runs that are missing")
    parser.add_argument("--curve", choices=list(ROW_BY_KEY), help="print the probe at every checkpoint of a row")
    parser.add_argument("--force-eval", action="store_true", help="recompute cached results")
    parser.add_argument("--json", type=Path, help="write the table's rows in the docs/results JSON shape")
    parser.add_argument(
        "--overlay",
        nargs="+",
        default=[],
        help="configs/budget/<NAME>.yaml after every trained row's own, e.g. repr512 (default --out: ..._<NAME>)",
    )
    parser.add_argument("--out", type=Path, default=None, help="default runs/representation_long[_<overlays>]")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    args = parser.parse_args()
    if args.out is None:
        args.out = ROOT / "runs" / "_".join(["representation_long", *args.overlay])
    for name in args.overlay:
        if not (ROOT / "configs" / "budget" / f"{name}.yaml").is_file():
            parser.error(f"--overlay {name}: configs/budget/{name}.yaml does not exist")
    args.out.mkdir(parents=True, exist_ok=True)
    overlays = tuple(f"budget/{name}.yaml" for name in args.overlay)
    for key, row in list(ROW_BY_KEY.items()):
        if row.configs:
            ROW_BY_KEY[key] = dataclasses.replace(row, configs=(*row.configs, *overlays))
    started = time.time()

    if args.curve:
        for seed in args.seeds:
            points = curve(ROW_BY_KEY[args.curve], seed, args.out, args.data_dir)
            target = run_dir(args.out, args.curve, seed) / "curve.json"
            target.write_text(json.dumps(points, indent=2))
            print(f"(written to {target})")
        return

    rows = [ROW_BY_KEY[key] for key in args.rows]
    train_rows(rows, ROW_BY_KEY, args.seeds, args.out, args.data_dir, args.train)

    results: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        for seed in args.seeds:
            found = cached_results(row, seed, args.out, args.data_dir, args.force_eval)
            for name, key in METRICS.items():
                results.setdefault(row.key, {}).setdefault(name, []).append(100 * found[key])

    print("| row | " + " | ".join(METRICS) + " |\n|---|" + "---:|" * len(METRICS))
    for key, by_metric in results.items():
        cells = [
            f"{statistics.mean(v):.1f} ± {statistics.stdev(v) if len(v) > 1 else 0:.1f}" for v in by_metric.values()
        ]
        print(f"| {key} | " + " | ".join(cells) + " |")
    if args.json:
        write_twin(
            args.json,
            "python -m experiments.long_budget_table " + " ".join(sys.argv[1:]),
            [
                {"name": key, "metrics": {m: summary(v) for m, v in by_metric.items()}}
                for key, by_metric in results.items()
            ],
        )
    print(f"\n({time.time() - started:.0f} s; torch {torch.__version__})")


if __name__ == "__main__":
    main()
