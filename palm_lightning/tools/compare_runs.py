"""Compare TensorBoard scalars of several runs: one PNG (a panel per tag) and a Markdown table.

    python -m palm_lightning.tools.compare_runs --out docs/images/ear_vs_baselines.png \\
        --tags eval/velocity_error_mean "eval_velocity_error/v=3.0" \\
        --runs EAR=runs/ear_cpu_alpha001/version_0 EAR=runs/ear_cpu_s1/version_0 \\
               OHE-SAC=runs/ear_cpu_ohe/version_0 OHE-SAC=runs/ear_cpu_ohe_s1/version_0

Each ``--runs`` item is ``label=run_dir`` (a directory with ``events.out.tfevents.*``). Items that
share a label are seeds of one setting: the figure draws their mean with a band of ± one standard
deviation (at the steps every seed logged), and the table gives, per tag and label, the final value
and the mean of the last ``--last`` logged values, each as mean ± std over the seeds. A tag a run
does not have is skipped for that run. Needs matplotlib.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

Series = tuple[list[int], list[float]]


def load_scalars(run_dir: str, tags: list[str]) -> dict[str, Series]:
    """``tag → (steps, values)`` of the tags ``run_dir`` has."""
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"{run_dir} is not a directory: pass label=<the run's version_N directory>")
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    have = set(acc.Tags().get("scalars", []))
    events = {tag: acc.Scalars(tag) for tag in tags if tag in have}
    return {tag: ([e.step for e in series], [e.value for e in series]) for tag, series in events.items()}


def group_runs(items: list[str]) -> dict[str, list[str]]:
    """``["A=dir1", "A=dir2", "B=dir3"]`` → ``{"A": [dir1, dir2], "B": [dir3]}`` (order kept)."""
    groups: dict[str, list[str]] = {}
    for item in items:
        label, sep, run_dir = item.partition("=")
        if not sep or not label or not run_dir:
            raise ValueError(f"--runs items are label=run_dir, got {item!r}")
        groups.setdefault(label, []).append(run_dir)
    return groups


def load_groups(groups: dict[str, list[str]], tags: list[str]) -> dict[str, list[dict[str, Series]]]:
    """Every run's scalars, read once, grouped by label."""
    return {label: [load_scalars(d, tags) for d in dirs] for label, dirs in groups.items()}


def mean_over_seeds(series: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps logged by every seed, and the mean and std of the seeds' values there."""
    common = sorted(set.intersection(*(set(steps) for steps, _ in series)))
    values = np.array([[dict(zip(steps, vals, strict=True))[s] for s in common] for steps, vals in series])
    return np.array(common), values.mean(axis=0), values.std(axis=0)


def plot(data: dict[str, list[dict[str, Series]]], tags: list[str], out: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tags), figsize=(5 * len(tags), 3.4), squeeze=False)
    for label, runs in data.items():
        for ax, tag in zip(axes.flat, tags, strict=True):
            series = [run[tag] for run in runs if tag in run]
            if not series:
                continue
            steps, mean, std = mean_over_seeds(series)
            name = label if len(series) == 1 else f"{label} ({len(series)} seeds)"
            (line,) = ax.plot(steps, mean, marker="o", ms=3, lw=1.2, label=name)
            if len(series) > 1:
                ax.fill_between(steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    for ax, tag in zip(axes.flat, tags, strict=True):
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


def summary(data: dict[str, list[dict[str, Series]]], tags: list[str], last: int = 3) -> list[str]:
    """Markdown rows: per tag and label, final value and mean of the last ``last`` values, mean ± std over seeds."""
    rows = [f"| tag | label | seeds | final value | mean of the last {last} |", "|---|---|---:|---:|---:|"]
    for tag in tags:
        for label, runs in data.items():
            values = [run[tag][1] for run in runs if tag in run]
            if not values:
                continue
            final = np.array([v[-1] for v in values])
            tail = np.array([np.mean(v[-last:]) for v in values])
            rows.append(
                f"| {tag} | {label} | {len(values)} | {final.mean():.2f} ± {final.std():.2f} "
                f"| {tail.mean():.2f} ± {tail.std():.2f} |"
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", required=True, help="label=run_dir items; repeat a label for seeds")
    parser.add_argument("--tags", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--last", type=int, default=3, help="the table's tail: mean of this many last values")
    args = parser.parse_args(argv)
    try:
        groups = group_runs(args.runs)
    except ValueError as err:
        parser.error(str(err))
    data = load_groups(groups, args.tags)
    print("\n".join(summary(data, args.tags, args.last)))
    print(plot(data, args.tags, args.out))


if __name__ == "__main__":
    main()
