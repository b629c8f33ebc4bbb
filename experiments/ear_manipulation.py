"""EAR's manipulation test on Meta-World reach-v3 (``metaworld_reach``: 10 training goals, 5
held-out goals, the goal hidden from the observation): multi-task training against the baselines,
interpolation between two trained goals, and adaptation to held-out goals.

For every seed:

- **multi-task**: EAR, OHE-SAC and MHMT-SAC train on the 10 goals with
  ``configs/ear/metaworld/reach_cpu{,_ohe,_mhmt}.yaml``; each is evaluated on every training goal
  (one deterministic episode per goal: the start and the goal are fixed, so every such episode is
  the same): success rate and the hand's final distance to the goal.
- **interpolation** (EAR): for each pair ``I,J`` of ``--pairs`` the embeddings of goal I (β=1),
  goal J (β=0) and the one halfway, ``normalize(½·Z_I + ½·Z_J)``, drive the decoder for one episode
  (``palm_lightning.tools.interpolate``). The hand's final position halfway is measured against the
  segment between the endpoint rollouts' final hand positions (its distance to it, and where along
  it it falls: 0.5 is the middle) and against the segment between the two goals; the endpoints'
  own distance to their goals says how well the two trained tasks are solved.
- **adaptation** to each held-out goal of ``--targets``: CEM in EAR's embedding sphere
  (``palm_lightning.tools.cem_adapt``, the authors' population by default; the best embedding so
  far evaluated after every epoch) against SAC from scratch on that goal
  (``configs/ear/metaworld/reach_scratch_cpu.yaml``, every kept checkpoint evaluated). Both give a
  curve of success and final distance against the environment steps spent adapting; the table
  reads each curve's last point within each step budget.

Seeds train independently; the table is mean ± std over seeds of each seed's mean over goals (or
pairs). Needs Meta-World (``pip install --no-deps metaworld==3.1.1``).

    python -m experiments.ear_manipulation --seeds 0 1 2 --train       # train what is missing, then measure
    python -m experiments.ear_manipulation --seeds 0 1 2               # measure and write the page only

Runs go to ``runs/ear_manipulation/<method>_s<seed>/version_0/`` (scratch:
``sac_scratch_t<goal>_s<seed>``); finished runs are skipped, interrupted ones resume from
``last.ckpt``. Measurements are cached per run (``manipulation.json``, recomputed when the
settings change or with ``--force``). Writes ``<results>/ear_manipulation.md`` and its JSON twin
(``--results``, default ``docs/results``). ``--overlay DIR`` adds ``DIR/<method>.yaml`` after that
method's config (the test's tiny sizes).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from experiments.ear_adaptation import budget_label, checkpoint_step, value_at
from experiments.representation_table import ROOT, Row, train
from experiments.twin import write_twin

FAMILY = "metaworld_reach"
MULTITASK = ("ear", "ohe_sac", "mhmt_sac")
CONFIGS = {
    "ear": "ear/metaworld/reach_cpu.yaml",
    "ohe_sac": "ear/metaworld/reach_cpu_ohe.yaml",
    "mhmt_sac": "ear/metaworld/reach_cpu_mhmt.yaml",
    "sac_scratch": "ear/metaworld/reach_scratch_cpu.yaml",
}
TITLES = {
    "ear": "EAR",
    "ohe_sac": "OHE-SAC",
    "mhmt_sac": "MHMT-SAC",
    "ear_cem": "EAR + CEM",
    "sac_scratch": "SAC from scratch",
}
KEYS = ("success", "final_hand_to_goal")
"""What every evaluation reports: success rate (reached at any step) and the hand's final distance (m)."""
BUDGETS = (0, 10_000, 50_000, 200_000, 500_000)
"""Env-step budgets of the adaptation table: each method's last point within the budget."""
INTERPOLATION_KEYS = (
    "midpoint_to_rollout_segment",
    "midpoint_rollout_position",
    "midpoint_to_goal_segment",
    "midpoint_goal_position",
    "endpoint_to_own_goal",
)


@dataclass(frozen=True)
class Settings:
    """How the trained runs are measured (stored with the cached results: a change recomputes them)."""

    pairs: tuple[tuple[int, int], ...] = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9))
    cem_elites: int = 6  # CEM: the EAR authors' settings
    cem_perturbations: int = 15
    cem_noise: float = 0.5
    cem_epochs: int = 10


# --- training ------------------------------------------------------------------------------------------


def run_name(method: str, seed: int, target: int | None = None) -> str:
    return f"{method}_s{seed}" if target is None else f"{method}_t{target}_s{seed}"


def train_run(method: str, seed: int, out: Path, overlay: Path | None, target: int | None = None) -> Path:
    """Train (or skip, or resume) one run through the CLI; returns its ``version_0`` folder."""
    configs = [CONFIGS[method]]
    if overlay is not None and (overlay / f"{method}.yaml").is_file():
        configs.append(str((overlay / f"{method}.yaml").resolve()))  # CONFIGS / absolute = absolute
    overrides = () if target is None else ("--data.init_args.tasks", f"[{target}]")
    name = run_name(method, seed, target)
    ckpt = train(Row(name, TITLES[method], tuple(configs)), seed, out, None, name=name, overrides=overrides)
    return ckpt.parent.parent


def require(run: Path) -> Path:
    if not (run / "trained.json").is_file():
        sys.exit(f"{run} is not trained: run with --train")
    return run


# --- measurements --------------------------------------------------------------------------------------


def evaluate_policy(model: Any, tasks: list[int], split: str, seed: int) -> list[dict[str, float]]:
    """One deterministic episode per task (slot ``k`` acts on task ``tasks[k]``)."""
    import torch

    from palm_lightning.envs.multitask import MultiTaskVectorEnv, run_episodes

    info = model.task_info
    env = MultiTaskVectorEnv(info["family"], tasks, split, seed, env_kwargs=info.get("env_kwargs"))
    slots = torch.arange(len(tasks)) if split == "train" else torch.zeros(len(tasks), dtype=torch.long)
    try:
        return run_episodes(env, functools.partial(model.act_deterministic, task=slots), seed=seed)
    finally:
        env.close()


def multitask_results(run: Path, method: str, seed: int) -> dict[str, float]:
    """Success rate and final distance over the run's training goals."""
    from palm_lightning.models import EAR, MHMTSAC, OHESAC, MultiTaskSAC

    classes: dict[str, type[MultiTaskSAC]] = {"ear": EAR, "ohe_sac": OHESAC, "mhmt_sac": MHMTSAC}
    cls = classes[method]
    model = cls.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    model.eval()
    summaries = evaluate_policy(model, list(model.task_info["tasks"]), "train", 10_000 + seed)
    return {key: statistics.mean(s[key] for s in summaries) for key in (*KEYS, "return")}


def interpolation_results(ckpt: Path, pairs: tuple[tuple[int, int], ...], seed: int) -> dict[str, float]:
    """Mean over ``pairs`` of where the halfway embedding's hand ends (see the module docstring);
    ``midpoint_rollout_position`` is left out where every pair's endpoint rollouts end in one place."""
    import numpy as np

    from palm_lightning.tools.interpolate import HAND, interpolate, segment_position

    found: dict[str, list[float]] = {key: [] for key in INTERPOLATION_KEYS}
    for i, j in pairs:
        info, rows = interpolate(str(ckpt), (i, j), [0.0, 0.5, 1.0], episodes=1, seed=seed)
        end_j, middle, end_i = (np.array([row[key] for key in HAND]) for row in rows)
        goal_i, goal_j = (np.array(info["goals"][info["task_names"][k]]) for k in (i, j))
        if np.linalg.norm(end_i - end_j) > 1e-6:
            distance, position = segment_position(middle, end_j, end_i)
            found["midpoint_rollout_position"].append(position)
        else:  # both endpoints end in one place (the decoder ignores the embedding): no "along"
            distance = float(np.linalg.norm(middle - end_i))
        found["midpoint_to_rollout_segment"].append(distance)
        found["midpoint_to_goal_segment"].append(rows[1]["goal_segment_distance"])
        found["midpoint_goal_position"].append(rows[1]["goal_segment_position"])
        found["endpoint_to_own_goal"].append(
            float((np.linalg.norm(end_i - goal_i) + np.linalg.norm(end_j - goal_j)) / 2)
        )
    return {key: statistics.mean(values) for key, values in found.items() if values}


def cem_curve(ckpt: Path, target: int, seed: int, settings: Settings) -> list[dict[str, float]]:
    """The best embedding so far after every CEM epoch, against the env steps of the search."""
    from palm_lightning.tools.cem_adapt import cem_search

    result = cem_search(
        str(ckpt),
        task=target,
        elites=settings.cem_elites,
        perturbations=settings.cem_perturbations,
        noise=settings.cem_noise,
        epochs=settings.cem_epochs,
        final_episodes=1,
        seed=seed,
        eval_episodes=1,  # deterministic: one episode is the embedding's exact score
    )
    return [
        {"env_steps": float(r["env_steps"]), **{key: float(r[f"eval_{key}"]) for key in KEYS}}
        for r in result["history"]
    ]


def scratch_curve(run: Path, target: int, seed: int) -> list[dict[str, float]]:
    """Every kept checkpoint of a SAC-from-scratch run, acting with the policy mean."""
    from palm_lightning.models import OHESAC

    checkpoints = sorted((run / "checkpoints").glob("*step=*.ckpt"), key=checkpoint_step)
    if not checkpoints:
        raise FileNotFoundError(f"{run}/checkpoints holds no kept checkpoints (*step=*.ckpt)")
    curve = []
    for ckpt in checkpoints:
        model = OHESAC.load_from_checkpoint(ckpt, map_location="cpu")
        model.eval()
        if model.task_info.get("split") != "adapt" or model.task_info.get("tasks") != [target]:
            raise ValueError(f"{ckpt} trained on {model.task_info.get('tasks')}, not held-out goal [{target}]")
        (summary,) = evaluate_policy(model, [target], "adapt", 10_000 + seed)
        curve.append({"env_steps": float(int(model.env_steps)), **{key: summary[key] for key in KEYS}})
    return curve


def cached(run: Path, key: str, settings: Settings, force: bool, measure: Callable[[], Any]) -> Any:
    """``measure()``, cached under ``key`` in the run's ``manipulation.json`` for these settings."""
    path = run / "manipulation.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    if doc.get("settings") != json.loads(json.dumps(asdict(settings))):
        doc = {"settings": asdict(settings)}
    if force or key not in doc:
        start = time.time()
        doc[key] = measure()
        path.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"{run.parent.name} {key}: measured in {time.time() - start:.0f} s", flush=True)
    return doc[key]


# --- the table -----------------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
        "n": len(values),
    }


def adaptation_metrics(curves_by_seed: dict[int, list[list[dict[str, float]]]]) -> dict[str, dict[str, Any]]:
    """Per key and budget: mean ± std over seeds of the mean over held-out goals of the last point
    within the budget (left out where a goal has no point that cheap); and the final points."""
    metrics = {}
    for key in KEYS:
        for budget in BUDGETS:
            per_seed = []
            for curves in curves_by_seed.values():
                picked = [value_at(curve, budget, key) for curve in curves]
                if all(v is not None for v in picked):
                    per_seed.append(statistics.mean(v for v in picked if v is not None))
            if len(per_seed) == len(curves_by_seed):
                metrics[f"{key}_at_{budget_label(budget)}"] = summary(per_seed)
        metrics[f"{key}_final"] = summary([statistics.mean(c[-1][key] for c in cs) for cs in curves_by_seed.values()])
    metrics["env_steps_final"] = summary(
        [statistics.mean(c[-1]["env_steps"] for c in cs) for cs in curves_by_seed.values()]
    )
    return metrics


def cell(metric: dict[str, Any] | None, digits: int = 2) -> str:
    if metric is None:
        return "—"
    return f"{metric['mean']:.{digits}f} ± {metric['std'] or 0:.{digits}f}"


def page(rows: list[dict[str, Any]], command: str, seeds: list[int], settings: Settings) -> str:
    """The results page: what was measured, the three tables, the command; the conclusion is
    written by hand after reading them."""
    by_name = {row["name"]: row["metrics"] for row in rows}
    lines = [
        "# EAR on Meta-World reach: multi-task training, interpolation, adaptation",
        "",
        "EAR, OHE-SAC and MHMT-SAC trained on 10 reach-v3 goals (goal hidden from the observation, 500-step",
        f"episodes, `configs/ear/metaworld/reach_cpu*.yaml`); mean ± std over seeds {seeds} (n per cell).",
        "",
        "Training goals: success rate and the hand's final distance to the goal (m):",
        "",
        "| method | success | final distance |",
        "|---|---:|---:|",
    ]
    for method in MULTITASK:
        m = by_name.get(f"{method}/trained_goals")
        if m is not None:
            lines.append(f"| {TITLES[method]} | {cell(m['success'])} | {cell(m['final_hand_to_goal'], 3)} |")
    m = by_name.get("ear/interpolation")
    if m is not None:
        lines += [
            "",
            f"Interpolation halfway between two trained goals (pairs {list(settings.pairs)}): the hand's final",
            "position against the segment between the two endpoint rollouts' final positions and between",
            "the two goals (distance in m; position 0 at goal J, 1 at goal I, 0.5 in the middle):",
            "",
            "| to rollouts: distance | position | to goals: distance | position | endpoints to own goal |",
            "|---:|---:|---:|---:|---:|",
            "| " + " | ".join(cell(m.get(key), 3) for key in INTERPOLATION_KEYS) + " |",
        ]
    adaptation = [
        (name, by_name[f"{name}/heldout"]) for name in ("ear_cem", "sac_scratch") if f"{name}/heldout" in by_name
    ]
    for key, title in (("success", "success rate"), ("final_hand_to_goal", "final distance (m)")):
        if not adaptation:
            break
        lines += [
            "",
            f"Held-out goals, {title}: last point within each budget of adaptation env steps (—: none):",
            "",
            "| method | " + " | ".join(f"≤ {budget_label(b)}" for b in BUDGETS) + " | final | final steps |",
            "|---|" + "---:|" * (len(BUDGETS) + 2),
        ]
        for name, m in adaptation:
            cells = [cell(m.get(f"{key}_at_{budget_label(b)}")) for b in BUDGETS]
            cells += [cell(m[f"{key}_final"]), f"{m['env_steps_final']['mean']:.0f}"]
            lines.append(f"| {TITLES[name]} | " + " | ".join(cells) + " |")
    lines += ["", "```bash", command, "```", "", "Conclusion: to be written from the tables above.", ""]
    return "\n".join(lines)


# --- driver --------------------------------------------------------------------------------------------


def parse_pair(text: str) -> tuple[int, int]:
    try:
        i, j = (int(x) for x in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"a pair is I,J (two training-goal indices), got {text!r}") from error
    if i == j:
        raise argparse.ArgumentTypeError(f"a pair needs two different goals, got {text!r}")
    return i, j


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="held-out goal indices")
    parser.add_argument("--train", action="store_true", help="train (or resume) the runs that are missing")
    parser.add_argument("--overlay", type=Path, help="a folder of overlays: <method>.yaml after that method's config")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ear_manipulation")
    parser.add_argument("--results", type=Path, default=ROOT / "docs" / "results", help="where the page and twin go")
    parser.add_argument("--force", action="store_true", help="recompute cached measurements")
    defaults = Settings()
    parser.add_argument("--pairs", type=parse_pair, nargs="+", default=list(defaults.pairs), metavar="I,J")
    for name, value in asdict(defaults).items():
        if name != "pairs":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = Settings(**{name: getattr(args, name) for name in asdict(defaults)} | {"pairs": tuple(args.pairs)})
    started = time.time()

    results: dict[str, dict[int, Any]] = {}
    for seed in args.seeds:
        for method in MULTITASK:
            trained = train_run(method, seed, args.out, args.overlay) if args.train else None
            run = require(trained or args.out / run_name(method, seed) / "version_0")
            measure = functools.partial(multitask_results, run, method, seed)
            results.setdefault(f"{method}/trained_goals", {})[seed] = cached(
                run, "trained_goals", settings, args.force, measure
            )
            if method != "ear":
                continue
            ckpt = run / "checkpoints" / "last.ckpt"
            measure = functools.partial(interpolation_results, ckpt, settings.pairs, seed)
            results.setdefault("ear/interpolation", {})[seed] = cached(
                run, "interpolation", settings, args.force, measure
            )
            results.setdefault("ear_cem/heldout", {})[seed] = [
                cached(run, f"cem_t{t}", settings, args.force, functools.partial(cem_curve, ckpt, t, seed, settings))
                for t in args.targets
            ]
        curves = []
        for target in args.targets:
            trained = train_run("sac_scratch", seed, args.out, args.overlay, target) if args.train else None
            run = require(trained or args.out / run_name("sac_scratch", seed, target) / "version_0")
            curve = functools.partial(scratch_curve, run, target, seed)
            curves.append(cached(run, "curve", settings, args.force, curve))
        results.setdefault("sac_scratch/heldout", {})[seed] = curves

    rows = []
    for name, by_seed in results.items():
        if name.endswith("/heldout"):
            metrics = adaptation_metrics(by_seed)
        else:
            keys = dict.fromkeys(key for found in by_seed.values() for key in found)  # a seed may lack one
            metrics = {key: summary([f[key] for f in by_seed.values() if key in f]) for key in keys}
        rows.append({"name": name, "metrics": metrics})
    command = "python -m experiments.ear_manipulation " + " ".join(sys.argv[1:] if argv is None else argv)
    text = page(rows, command, args.seeds, settings)
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    write_twin(
        args.results / "ear_manipulation.json",
        command,
        rows,
        family=FAMILY,
        targets=list(args.targets),
        settings=asdict(settings),
        budgets=list(BUDGETS),
    )
    (args.results / "ear_manipulation.md").write_text(text)
    print(f"wrote {args.results / 'ear_manipulation.md'} and its JSON twin ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
