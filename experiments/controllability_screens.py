"""Screens of the latent environment's knobs: does any give PALM's explorer something to control?

Each screen is ``configs/palm.yaml`` at 3 000 updates plus the overrides of one knob, for APT and,
where the knob changes the environment, for the uniform random policy too. Every run is trained and
scored by ``experiments.palm_sweep`` (linear probe at 100% and 1% labels, kNN, OOD) and measured by
``palm_lightning.tools.controllability`` (what its actions decide, saturation, latent directions,
class vs episode shares). The hypotheses (D1–D5) are written out in docs/results/controllability.md.

    python -m experiments.controllability_screens --train            # trains what is missing (~30 min a run)
    python -m experiments.controllability_screens --json docs/results/controllability.json --table screens

The best setting at three seeds and the long budget, beside the long-budget rows of the
representation table (random policy, APT, the untrained encoder: same environment, budget and
protocol; the bar against the random policy is printed), as the page's headline table:

    python -m experiments.controllability_screens --train --seeds 0 1 2 --budget 10000 --screens apt_sac \
        --reference palm_random_policy palm_apt random_encoder --json docs/results/controllability.json

Runs go to ``runs/palm_sweep/<screen>`` (seed 0 at 3 000 updates, the screens) or
``runs/palm_sweep/<screen>_u<budget>_s<seed>``; a run's ``results.json`` (probes) and
``controllability.json`` (diagnostic) are reused, and both are copied to the committed store
``experiments/stores/controllability_runs/<run>.json`` (``--store``), read first: a stored run is
not trained again, so the tables rebuild on a machine whose ``runs/`` is gone. Two lanes side by
side: give each its own ``--screens`` and ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from experiments import palm_sweep
from experiments.twin import write_twin

ROOT = palm_sweep.ROOT
STORE = ROOT / "experiments" / "stores" / "controllability_runs"
REFERENCE_TWIN = ROOT / "docs" / "results" / "representation.json"
"""The long-budget rows (``experiments.long_budget_table``) that ``--reference`` names."""
RANDOM = ("--model.init_args.policy", "random")


@dataclass(frozen=True)
class Screen:
    name: str
    title: str
    hypothesis: str
    overrides: tuple[str, ...] = ()


SCREENS = (
    Screen("apt_base", "APT, `configs/palm.yaml`", "-"),
    Screen("random_base", "random policy, `configs/palm.yaml`", "-", RANDOM),
    Screen(
        "apt_a",
        "APT, action_scale 4, λ 0.9",
        "D1",
        ("--data.init_args.action_scale", "4", "--data.init_args.ema", "0.9"),
    ),
    Screen(
        "random_a",
        "random, action_scale 4, λ 0.9",
        "D1",
        (*RANDOM, "--data.init_args.action_scale", "4", "--data.init_args.ema", "0.9"),
    ),
    Screen(
        "apt_b",
        "APT, actions in w-space",
        "D1",
        ("--data.init_args.latent_space", "w", "--model.init_args.action_dim", "128"),
    ),
    Screen(
        "random_b",
        "random, actions in w-space",
        "D1",
        (*RANDOM, "--data.init_args.latent_space", "w", "--model.init_args.action_dim", "128"),
    ),
    Screen(
        "apt_c", "APT, explorer reads an untrained encoder", "D2", ("--model.init_args.explorer_encoder", "untrained")
    ),
    Screen(
        "apt_d",
        "APT, reward on o_t+1 summed over the window, action penalty 1",
        "D3",
        (
            "--model.init_args.reward.init_args.source",
            "next_obs",
            "--model.init_args.reward_window",
            "sum",
            "--model.init_args.action_penalty",
            "1.0",
        ),
    ),
    Screen(
        "random_class_step",
        "random, class redrawn every step",
        "D4",
        (*RANDOM, "--data.init_args.class_resample", "step"),
    ),
    Screen("random_lambda09", "random, λ 0.9", "D4", (*RANDOM, "--data.init_args.ema", "0.9")),
    Screen(
        "apt_sac",
        "SAC explorer (entropy-regularised), APT reward",
        "diag.",
        ("--config", "configs/palm_variants/sac.yaml"),
    ),
    Screen("apt_f", "APT, one update per 16 frames", "D5", ("--data.init_args.updates_per_step", "1")),
    Screen("random_f", "random, one update per 16 frames", "D5", (*RANDOM, "--data.init_args.updates_per_step", "1")),
)
BY_NAME = {screen.name: screen for screen in SCREENS}
PROBES = {"linear_100": "linear_100", "linear_1": "linear_1", "knn": "knn", "far_auroc": "far_knn_auroc"}
DIAGNOSTIC = (
    "action_effect_frame",
    "noise_effect_frame",
    "step_change_frame",
    "saturated",
    "latent_resultant",
    "between_class_reward_space",
    "within_episode_reward_space",
)


def run_name(screen: Screen, seed: int, budget: int) -> str:
    return screen.name if (seed, budget) == (0, 3000) else f"{screen.name}_u{budget}_s{seed}"


def measure(
    screen: Screen, seed: int, budget: int, out: Path, data_dir: str, train: bool, store: Path | None = STORE
) -> dict[str, float] | None:
    """Probes and diagnostic of one run: from ``store`` if it holds the run, else from the run
    (trained first when ``train``; then copied to ``store``); ``None`` if it is not there."""
    from palm_lightning.tools import controllability

    name = run_name(screen, seed, budget)
    stored = None if store is None else store / f"{name}.json"
    if stored is not None and stored.is_file():
        record = json.loads(stored.read_text())
        return row_values(record["probes"], record["diagnostic"])
    run = out / name / "version_0"
    if not train and not (run / "results.json").is_file():
        return None
    overrides = [*screen.overrides, "--trainer.max_steps", str(budget)]  # on PALM_BASE: repr_lr 1e-4
    probes = palm_sweep.run_variant(name, overrides, seed, out, data_dir)
    cache = run / "controllability.json"
    if not cache.is_file():
        reports = controllability.report(run / "checkpoints" / "last.ckpt", None)
        cache.write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n")
    model = json.loads(cache.read_text())[0]
    if stored is not None:
        record = {"screen": screen.name, "seed": seed, "budget": budget, "probes": probes, "diagnostic": model}
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text(json.dumps(record, indent=2) + "\n")
    return row_values(probes, model)


def row_values(probes: dict[str, float], diagnostic: dict[str, float]) -> dict[str, float]:
    """A table row's values: probes in %, the diagnostic's columns as measured."""
    return {**{key: 100 * probes[source] for key, source in PROBES.items()}, **{k: diagnostic[k] for k in DIAGNOSTIC}}


def reference_rows(twin: Path, names: list[str]) -> list[dict]:
    """Rows ``names`` of a results twin's headline (their probes only)."""
    rows = {row["name"]: row for row in json.loads(twin.read_text())["rows"]}
    missing = [n for n in names if n not in rows]
    if missing:
        raise SystemExit(f"{twin} has no rows {missing}; it has {sorted(rows)}")
    return [{"name": n, "metrics": {k: rows[n]["metrics"][k] for k in PROBES}} for n in names]


def bar(row: dict, baseline: dict) -> str:
    """Issue 44's bar: the row beats ``baseline`` by more than one std (the larger of the two) on
    the full-label linear probe and on kNN."""
    parts, passed = [], True
    for key in ("linear_100", "knn"):
        mine, theirs = row["metrics"][key], baseline["metrics"][key]
        diff, std = mine["mean"] - theirs["mean"], max(mine["std"], theirs["std"])
        passed &= diff > std
        parts.append(f"{key} {diff:+.1f} (std {std:.1f})")
    verdict = "beats" if passed else "does not beat"
    return f"{row['name']} {verdict} {baseline['name']} by more than one std: " + ", ".join(parts)


def cell(metric: dict, digits: int) -> str:
    """``mean ± std`` over seeds; the mean alone for one seed."""
    if metric["n"] == 1:
        return f"{metric['mean']:.{digits}f}"
    return f"{metric['mean']:.{digits}f} ± {metric['std']:.{digits}f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--screens", nargs="+", default=[s.name for s in SCREENS], choices=sorted(BY_NAME))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--budget", type=int, default=3000, help="updates per run")
    parser.add_argument("--train", action="store_true", help="train and measure what is missing")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "palm_sweep")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--store", type=Path, default=STORE, help="committed per-run results ('none': off)")
    parser.add_argument("--reference", nargs="*", default=[], help=f"rows of {REFERENCE_TWIN.name} to add")
    parser.add_argument("--reference-twin", type=Path, default=REFERENCE_TWIN)
    parser.add_argument("--json", type=Path, help="write the table into a results twin")
    parser.add_argument("--table", help="with --json: a named table of the twin (default: its headline)")
    args = parser.parse_args(argv)
    store = None if str(args.store) == "none" else args.store
    columns = [*PROBES, *DIAGNOSTIC]
    print("| screen | D | n | " + " | ".join(columns) + " |")
    print("|---|---|---:|" + "---:|" * len(columns))
    rows = []
    for name in args.screens:
        screen = BY_NAME[name]
        found = [
            m
            for seed in args.seeds
            if (m := measure(screen, seed, args.budget, args.out, args.data_dir, args.train, store))
        ]
        if not found:
            continue
        by_column = {c: [m[c] for m in found] for c in columns}
        metrics = {
            c: {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
            for c, v in by_column.items()
        }
        cells = [cell(metrics[c], 1 if c in PROBES else 3) for c in columns]
        print(f"| {screen.title} | {screen.hypothesis} | {len(found)} | " + " | ".join(cells) + " |", flush=True)
        rows.append({"name": screen.name, "metrics": metrics})
    references = reference_rows(args.reference_twin, args.reference) if args.reference else []
    for ref in references:
        cells = [cell(ref["metrics"][c], 1) if c in PROBES else "–" for c in columns]
        n = max(m["n"] for m in ref["metrics"].values())
        print(f"| {ref['name']} ({args.reference_twin.name}) | – | {n} | " + " | ".join(cells) + " |")
    baseline = next((r for r in references if r["name"].endswith("random_policy")), None)
    if baseline is not None:
        for row in rows:
            print(bar(row, baseline))
    if args.json:
        command = "python -m experiments.controllability_screens " + " ".join(sys.argv[1:] if argv is None else argv)
        all_rows = rows + references
        if args.table:
            write_twin_table(args.json, {"name": args.table, "command": command, "rows": all_rows})
        else:
            write_twin(args.json, command, all_rows)


def write_twin_table(path: Path, table: dict) -> None:
    """Put ``table`` into the twin's ``tables`` (by name), keeping its headline."""
    doc = json.loads(path.read_text())
    write_twin(path, doc["command"], doc["rows"], tables=[table])


if __name__ == "__main__":
    main()
