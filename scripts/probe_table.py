"""The README's PALM table: linear-probe accuracy on real Fashion-MNIST, same protocol for every row.

Rows: PALM (``configs/palm.yaml``), PALM with the random policy (no exploration), the same encoder
randomly initialised, and raw pixels; columns: 100% and 1% of the training labels; mean ± std over
seeds. Every probe is ``configs/eval/linear_fmnist.yaml`` (frozen encoder, linear head, tested on
the 10 000 test images), built through the same CLI as the command line.

    python scripts/probe_table.py --seeds 0 1 2 --train      # trains the PALM runs it needs
    python scripts/probe_table.py --seeds 0 1 2              # only probes existing runs

PALM runs go to ``runs/table/palm_<policy>_s<seed>/`` (``--train`` skips runs that finished).
Results are written to ``runs/table/probe_table.json`` and printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE_CONFIG = ROOT / "configs" / "eval" / "linear_fmnist.yaml"
PALM_CONFIG = ROOT / "configs" / "palm.yaml"


def palm_checkpoint(out: Path, policy: str, seed: int) -> Path:
    return out / f"palm_{policy}_s{seed}" / "version_0" / "checkpoints" / "last.ckpt"


def train_palm(out: Path, policy: str, seed: int, extra: list[str]) -> Path:
    ckpt = palm_checkpoint(out, policy, seed)
    if ckpt.is_file():
        return ckpt
    command = [
        sys.executable, "-m", "palm_lightning", "fit", "--config", str(PALM_CONFIG),
        "--seed_everything", str(seed), "--model.init_args.policy", policy,
        "--data.init_args.seed", str(seed),
        "--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", f"palm_{policy}_s{seed}",
        "--trainer.logger.init_args.version", "0", "--trainer.enable_progress_bar", "false", *extra,
    ]
    print("+", " ".join(command), flush=True)
    start = time.time()
    subprocess.run(command, check=True, cwd=ROOT)
    print(f"  trained in {time.time() - start:.0f} s", flush=True)
    return ckpt


def probe(encoder: str, random_init: bool, fraction: float, seed: int, data_dir: str) -> float:
    """Fit the linear probe of PROBE_CONFIG on ``encoder`` and return its test accuracy."""
    from palm_lightning.cli import PalmCLI

    args = [
        "--config", str(PROBE_CONFIG), "--seed_everything", str(seed),
        "--model.init_args.encoder", encoder, "--model.init_args.random_init", str(random_init).lower(),
        "--data.init_args.train_fraction", str(fraction), "--data.init_args.data_dir", data_dir,
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--trainer.callbacks", "[]",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]
    cli = PalmCLI(args=args, run=False)
    cli.trainer.fit(cli.model, cli.datamodule)
    return float(cli.trainer.test(cli.model, cli.datamodule, verbose=False)[0]["test/acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.01])
    parser.add_argument("--train", action="store_true", help="train the PALM runs that are missing")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "table")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--palm-args", nargs=argparse.REMAINDER, default=[], help="extra args for the PALM runs")
    args = parser.parse_args()

    rows: dict[str, list[tuple[str, bool]]] = {}
    for seed in args.seeds:
        checkpoints = {}
        for policy in ("apt", "random"):
            ckpt = train_palm(args.out, policy, seed, args.palm_args) if args.train else palm_checkpoint(args.out, policy, seed)
            if not ckpt.is_file():
                sys.exit(f"missing {ckpt}: run with --train, or train it with configs/palm.yaml")
            checkpoints[policy] = str(ckpt)
        rows.setdefault("PALM (APT policy)", []).append((checkpoints["apt"], False))
        rows.setdefault("PALM, random policy", []).append((checkpoints["random"], False))
        rows.setdefault("same encoder, random init", []).append((checkpoints["apt"], True))
        rows.setdefault("raw pixels", []).append(("pixels", False))

    results: dict[str, dict[str, list[float]]] = {}
    for name, runs in rows.items():
        for fraction in args.fractions:
            for seed, (encoder, random_init) in zip(args.seeds, runs, strict=True):
                start = time.time()
                acc = probe(encoder, random_init, fraction, seed, args.data_dir)
                results.setdefault(name, {}).setdefault(str(fraction), []).append(acc)
                print(f"{name:28s} labels {fraction:>5.0%} seed {seed}: {acc:.4f} ({time.time() - start:.0f} s)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe_table.json").write_text(json.dumps(results, indent=2))
    header = "| encoder | " + " | ".join(f"linear probe, {f:.0%} labels" for f in args.fractions) + " |"
    print("\n" + header + "\n|---|" + "---|" * len(args.fractions))
    for name, by_fraction in results.items():
        cells = []
        for fraction in args.fractions:
            accs = [100 * a for a in by_fraction[str(fraction)]]
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            cells.append(f"{statistics.mean(accs):.2f} ± {std:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\n(mean ± std over seeds {args.seeds}; written to {args.out / 'probe_table.json'})")


if __name__ == "__main__":
    main()
