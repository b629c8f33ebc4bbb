"""Plot TensorBoard scalars of several runs on shared axes (one panel per tag), to PNG.

    python scripts/compare_runs.py --out docs/images/ear_vs_baselines.png \\
        --tags eval/velocity_error_mean "eval_velocity_error/v=3.0" \\
        --runs EAR=runs/ear_cpu_alpha001/version_0 OHE-SAC=runs/ear_cpu_ohe/version_0 \\
               MHMT-SAC=runs/ear_cpu_mhmt/version_0

Each ``--runs`` item is ``label=run_dir`` (a directory with ``events.out.tfevents.*``); a tag a run
does not have is skipped for that run. Needs matplotlib.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def load_scalars(run_dir: str, tags: list[str]) -> dict[str, tuple[list[int], list[float]]]:
    """``tag → (steps, values)`` of the tags ``run_dir`` has."""
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"{run_dir} is not a directory: pass label=<the run's version_N directory>")
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    have = set(acc.Tags().get("scalars", []))
    events = {tag: acc.Scalars(tag) for tag in tags if tag in have}
    return {tag: ([e.step for e in series], [e.value for e in series]) for tag, series in events.items()}


def plot(runs: dict[str, str], tags: list[str], out: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tags), figsize=(5 * len(tags), 3.4), squeeze=False)
    for label, run_dir in runs.items():
        scalars = load_scalars(run_dir, tags)
        for ax, tag in zip(axes.flat, tags):
            if tag in scalars:
                ax.plot(*scalars[tag], marker="o", ms=3, lw=1.2, label=label)
    for ax, tag in zip(axes.flat, tags):
        ax.set_title(tag, fontsize=10)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="label=run_dir items")
    parser.add_argument("--tags", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    runs = {}
    for item in args.runs:
        label, sep, run_dir = item.partition("=")
        if not sep or not label or not run_dir:
            parser.error(f"--runs items are label=run_dir, got {item!r}")
        runs[label] = run_dir
    print(plot(runs, args.tags, args.out))


if __name__ == "__main__":
    main()
