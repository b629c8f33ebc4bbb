"""The README's representation table: every encoder on the same frozen-encoder protocol.

Rows (each trained with the package's own configs, same DrQ encoder architecture):

- supervised (cross-entropy on the labels: the upper bound), the same architecture untrained
  (random init), raw pixels;
- SimSiam on the real images with standard augmentations (the static-dataset SSL anchor);
- PALM on the latent environment, swapping one thing at a time: temporal pairs + APT (the
  default, representation lr 1e-4), the same at the old default 1e-3, temporal pairs + random
  policy (no exploration), augmentation pairs of the same frame
  (DrQ random shift) + APT, the CURL objective (InfoNCE, momentum key encoder) + APT.

Columns, on real Fashion-MNIST (55 000 train images after the 5 000-image validation split, the
10 000 test images): linear probe with 100% and 1% of the labels (the recipe of
``configs/eval/linear_fmnist.yaml``, on cached features), weighted kNN (k = 20, T = 0.07, 100%
labels), and OOD detection — far: Fashion-MNIST test vs scikit-learn's digits (all 1 797, 32×32),
near: classes 0–4 vs classes 5–9 (``configs/eval/ood_fmnist_near.yaml``'s split; bank = train
images of classes 0–4) — with the kNN-distance scorer (k = 50, normalised features) and the
Mahalanobis scorer (class means, tied covariance): AUROC and FPR at 95% TPR.

    python -m experiments.representation_table --seeds 0 1 --train     # trains what is missing, then evaluates
    python -m experiments.representation_table --seeds 0 1             # evaluates existing runs only

Runs go to ``runs/representation_table/<row>_s<seed>/version_0/`` (``--train`` skips finished
ones), per-encoder results are cached in ``results.json`` there (``--force-eval`` recomputes), and
the table is printed as Markdown (mean ± std over seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
NEAR_IN_CLASSES = (0, 1, 2, 3, 4)  # T-shirt, Trouser, Pullover, Dress, Coat vs the other five
VAL_SIZE = 5000


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    configs: tuple[str, ...] = ()  # training configs (empty: nothing to train)
    encoder: str = "checkpoint"  # "checkpoint", "pixels", or "random:<row key>" (that row's architecture, untrained)


PALM_BASE = ("palm.yaml", "palm_variants/repr_lr_1e-4.yaml")
"""Every PALM row's base: the main config at the representation rate its results were measured with."""
ROWS = (
    Row("supervised", "supervised (labels; upper bound)", ("baselines/supervised_fmnist.yaml",)),
    Row("random", "random encoder (same architecture, untrained)", encoder="random:palm_temporal_apt"),
    Row("pixels", "raw pixels", encoder="pixels"),
    Row("simsiam_real", "SimSiam on real images (augmentations)", ("baselines/simsiam_fmnist.yaml",)),
    Row("palm_temporal_apt", "PALM: temporal pairs, APT (default)", PALM_BASE),
    Row(
        "palm_temporal_apt_lr1e-3",
        "PALM: temporal pairs, APT, representation lr 1e-3 (old default)",
        (*PALM_BASE, "palm_variants/repr_lr_1e-3.yaml"),
    ),
    Row(
        "palm_temporal_random", "PALM: temporal pairs, random policy", (*PALM_BASE, "palm_variants/random_policy.yaml")
    ),
    Row("palm_augpairs_apt", "PALM: augmentation pairs, APT", (*PALM_BASE, "palm_variants/augmentation_pairs.yaml")),
    Row("palm_curl_apt", "PALM: CURL objective, APT", (*PALM_BASE, "palm_variants/curl.yaml")),
)
ROW_BY_KEY = {row.key: row for row in ROWS}


def run_dir(out: Path, key: str, seed: int) -> Path:
    return out / f"{key}_s{seed}" / "version_0"


def train(
    row: Row,
    seed: int,
    out: Path,
    data_dir: str | None,
    name: str | None = None,
    overrides: tuple[str, ...] = (),
    seed_data: bool = True,
) -> Path:
    """Train ``row`` for ``seed`` through the CLI (skipped when it finished before: ``trained.json``;
    resumed from its ``last.ckpt`` when it was interrupted).

    The run is ``out/<name>/version_0`` (``name`` defaults to ``<row key>_s<seed>``); ``overrides``
    are extra command-line arguments after the configs (``experiments/palm_sweep.py`` uses them).
    ``data_dir`` goes to the real-image baselines (``None``: the configs read no dataset, e.g.
    ``experiments/ear_adaptation.py``'s environments). ``seed_data`` also gives ``seed`` to the
    DataModule (off: the data's own seed, e.g. Atari frames collected once for every seed).
    """
    name = name or f"{row.key}_s{seed}"
    run = out / name / "version_0"
    ckpt = run / "checkpoints" / "last.ckpt"
    if (run / "trained.json").is_file():
        return ckpt
    command = [sys.executable, "-m", "palm_lightning", "fit"]
    for config in row.configs:
        command += ["--config", str(CONFIGS / config)]
    command += [
        *overrides,
        "--seed_everything",
        str(seed),
        *(("--data.init_args.seed", str(seed)) if seed_data else ()),
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.logger.init_args.name",
        name,
        "--trainer.logger.init_args.version",
        "0",
        "--trainer.enable_progress_bar",
        "false",
    ]
    if data_dir is not None and not row.configs[0].startswith("palm"):  # the real-image baselines read Fashion-MNIST
        command += ["--data.init_args.data_dir", data_dir]
    if ckpt.is_file():  # an interrupted run resumes where it stopped
        command += ["--ckpt_path", str(ckpt)]
    print("+", " ".join(command), flush=True)
    start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.log", "a") as log:
        subprocess.run(command, check=True, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.time() - start
    (run / "trained.json").write_text(json.dumps({"seconds": round(seconds), "command": command}))
    print(f"  trained in {seconds:.0f} s", flush=True)
    return ckpt


def finished(out: Path, key: str, seed: int) -> bool:
    """A run counts as trained once its command returned: a killed run leaves a partial last.ckpt."""
    return (run_dir(out, key, seed) / "trained.json").is_file()


def build(row: Row, seed: int, out: Path) -> torch.nn.Module:
    from palm_lightning.models.evaluation.frozen_encoder import build_encoder

    if row.encoder == "pixels":
        return build_encoder("pixels")
    if row.encoder.startswith("random:"):
        source = run_dir(out, row.encoder.split(":", 1)[1], seed) / "checkpoints" / "last.ckpt"
        torch.manual_seed(seed)
        return build_encoder(str(source), random_init=True)
    return build_encoder(str(run_dir(out, row.key, seed) / "checkpoints" / "last.ckpt"))


def evaluate(encoder: torch.nn.Module, seed: int, data_dir: str) -> dict[str, float]:
    """Every column of the table for one frozen encoder."""
    from palm_lightning.datamodules import DigitsDataModule, FashionMNISTDataModule, ImageDataModule
    from palm_lightning.evaluation import SCORERS, extract_features, fit_linear_probe, knn_votes, ood_metrics
    from palm_lightning.evaluation.linear import topk_accuracy

    def fmnist(fraction: float) -> FashionMNISTDataModule:
        dm = FashionMNISTDataModule(
            data_dir=data_dir, resolution=32, val_size=VAL_SIZE, train_fraction=fraction, seed=seed, download=True
        )
        dm.prepare_data()
        dm.setup("fit")
        return dm

    full, few = fmnist(1.0), fmnist(0.01)
    full.setup("test")
    digits = DigitsDataModule(resolution=32)
    digits.setup("fit")
    digits.setup("test")
    assert full.test_set is not None and full.train_set is not None and few.train_set is not None
    assert digits.train_set is not None and digits.test_set is not None

    def feats(images: torch.Tensor, dm: ImageDataModule) -> torch.Tensor:
        return extract_features(encoder, images, dm.normalize)

    train_x, train_y = feats(full.train_set.images, full), full.train_set.labels
    test_x, test_y = feats(full.test_set.images, full), full.test_set.labels
    few_x, few_y = feats(few.train_set.images, few), few.train_set.labels
    # Digits are normalised like the in-distribution images (both symmetric [-1, 1]).
    digits_x = feats(torch.cat([digits.train_set.images, digits.test_set.images]), full)

    results: dict[str, float] = {}
    for name, (x, y) in {"linear_100": (train_x, train_y), "linear_1": (few_x, few_y)}.items():
        probe = fit_linear_probe(x, y, test_x, test_y, num_classes=10, seed=seed)
        results[name], results[f"{name}_top5"] = probe["acc"], probe["acc_top5"]
    votes = knn_votes(train_x, train_y, test_x, num_classes=10, k=20, temperature=0.07)
    results["knn"], results["knn_top5"] = topk_accuracy(votes, test_y, 1), topk_accuracy(votes, test_y, 5)

    near_in = torch.isin(train_y, torch.tensor(NEAR_IN_CLASSES))
    near_test_in = torch.isin(test_y, torch.tensor(NEAR_IN_CLASSES))
    pairs = {
        "far": (train_x, train_y, test_x, digits_x),
        "near": (train_x[near_in], train_y[near_in], test_x[near_test_in], test_x[~near_test_in]),
    }
    for pair, (bank_x, bank_y, in_x, out_x) in pairs.items():
        for scorer_name, scorer_cls in SCORERS.items():
            scorer = scorer_cls().fit(bank_x, bank_y)
            metrics = ood_metrics(scorer.score(in_x), scorer.score(out_x))
            for metric, value in metrics.items():
                results[f"{pair}_{scorer_name}_{metric}"] = value
    return results


def train_rows(
    rows: list[Row], row_by_key: dict[str, Row], seeds: list[int], out: Path, data_dir: str, train_missing: bool
) -> None:
    """Train (``train_missing``) or require every run ``rows`` need, for every seed: each row with
    configs, and the row whose architecture a ``random:<key>`` row rebuilds untrained."""
    needed = [row.key for row in rows if row.configs]
    needed += [
        key for row in rows if row.encoder.startswith("random:") and (key := row.encoder.split(":", 1)[1]) not in needed
    ]
    for seed in seeds:
        for key in needed:
            if train_missing:
                train(row_by_key[key], seed, out, data_dir)
            elif not finished(out, key, seed):
                sys.exit(f"{run_dir(out, key, seed)} is not trained: run with --train")


def cached_results(row: Row, seed: int, out: Path, data_dir: str, force: bool = False) -> dict[str, float]:
    """:func:`evaluate` of one row and seed, cached in its run's ``results.json``."""
    cache = run_dir(out, row.key, seed) / "results.json"
    if cache.is_file() and not force:
        return json.loads(cache.read_text())
    start = time.time()
    found = evaluate(build(row, seed, out), seed, data_dir)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(found, indent=2))
    print(f"{row.key} seed {seed}: evaluated in {time.time() - start:.0f} s", flush=True)
    return found


def cell(values: list[float], percent: bool = True) -> str:
    values = [100 * v for v in values] if percent else values
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {std:.1f}"


def table(results: dict[str, dict[str, list[float]]], scorer: str) -> str:
    columns = [
        ("linear, 100%", "linear_100"),
        ("linear, 1%", "linear_1"),
        ("kNN", "knn"),
        ("far AUROC", f"far_{scorer}_auroc"),
        ("far FPR95 ↓", f"far_{scorer}_fpr95"),
        ("near AUROC", f"near_{scorer}_auroc"),
        ("near FPR95 ↓", f"near_{scorer}_fpr95"),
    ]
    lines = ["| encoder | " + " | ".join(title for title, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
    for key, by_metric in results.items():
        lines.append(f"| {ROW_BY_KEY[key].title} | " + " | ".join(cell(by_metric[m]) for _, m in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", default=[row.key for row in ROWS], choices=[row.key for row in ROWS])
    parser.add_argument("--train", action="store_true", help="train the runs that are missing")
    parser.add_argument("--force-eval", action="store_true", help="recompute cached results")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "representation_table")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()

    rows = [ROW_BY_KEY[key] for key in args.rows]
    train_rows(rows, ROW_BY_KEY, args.seeds, args.out, args.data_dir, args.train)

    results: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        for seed in args.seeds:
            found = cached_results(row, seed, args.out, args.data_dir, args.force_eval)
            for metric, value in found.items():
                results.setdefault(row.key, {}).setdefault(metric, []).append(value)

    (args.out / "table.json").write_text(json.dumps(results, indent=2))
    print(f"\nkNN-distance OOD scorer (k = 50); mean ± std over seeds {args.seeds}, in %:\n")
    print(table(results, "knn"))
    print("\nMahalanobis OOD scorer (class means, tied covariance):\n")
    print(table(results, "mahalanobis"))
    print(f"\n(written to {args.out / 'table.json'}; {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
