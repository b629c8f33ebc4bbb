"""Adaptation to held-out targets against the environment steps spent adapting: EAR + CEM,
PEARL, MAML-TRPO and SAC from scratch, on HalfCheetah-Vel and Hopper-Vel.

EAR, PEARL and MAML-TRPO train on the same tasks, each family's 10 training velocities (the
paper's), with ``configs/ear/adaptation/<family>_{ear,pearl,maml}.yaml``; SAC from scratch trains
on one held-out target at a time (``<family>_scratch.yaml``). Every method then meets the family's
3 held-out targets (HalfCheetah-Vel 6.31, 2.67, 0.41 m/s; Hopper-Vel 1.21, 0.51, 0.08 m/s) with
its own adaptation, and the curve is the deterministic evaluation (``--eval-episodes`` fresh
episodes, not counted) against the env steps spent adapting, averaged over ``--trials``
independent adaptations per target (seeded apart; one adaptation's exploration noise is large):

- ``ear_cem``: CEM in the embedding sphere (``palm_lightning.tools.cem_adapt``, the authors' 6
  elites × 15 perturbations, 10 epochs): the best embedding so far after every epoch; steps = the
  CEM episodes (96 per epoch: 19.2k steps on HalfCheetah).
- ``ear_cem_small``: the same EAR runs and search with 2 elites × 3 perturbations (8 episodes = 1.6k
  steps per epoch on HalfCheetah, 10 epochs; our addition): how much of EAR's step cost is the
  authors' population rather than the embedding.
- ``pearl``: posterior sampling (``palm_lightning.tools.pearl_adapt``): the posterior mean after
  0…``--pearl-episodes`` exploration episodes; steps = those episodes.
- ``maml_trpo``: ``--maml-steps`` policy-gradient steps of ``--maml-episodes`` episodes (the
  training K) each (``palm_lightning.tools.maml_adapt``): the policy mean before each step and after
  the last; steps = the inner-step episodes.
- ``sac_scratch``: SAC (OHE-SAC, one task) trained on the target: every kept checkpoint (every 5k
  updates); steps = its training env steps (warm-up included).

Per seed a point is the mean over the targets; the table shows mean ± std over seeds of the last
point within each step budget (``—``: the method has no point that cheap).

    python -m experiments.ear_adaptation --plan                  # the jobs, their estimated cost, the lanes
    python -m experiments.ear_adaptation --train &               # two workers side by side, one thread each
    python -m experiments.ear_adaptation --train &
    wait
    python -m experiments.ear_adaptation --json docs/results/ear_adaptation.json --figure docs/images/ear_adaptation.png

Runs go to ``runs/ear_adaptation/<family>/<method>_s<seed>/version_0/`` (scratch:
``sac_scratch_t<target>_s<seed>``); ``--train`` skips finished runs and resumes interrupted ones
from ``last.ckpt`` (EAR's and PEARL's hold the replay buffer). Workers share the runs through a lock
file per run (``<run name>.lock`` beside it, released by the OS when a worker dies): each ``--train``
process takes the next run no other holds, trains and adapts it, and at the end waits for the
runs held elsewhere and prints the table; any number of workers stay busy until the last run
(fixed lanes, ``--lane K/N``, drift apart by hours when one is paused or the cost estimates are
off). Results are cached per run in ``adaptation.json`` (recomputed when the adaptation settings or
:data:`CACHE_VERSION` change, or with ``--force-adapt``) and copied to the committed store
``experiments/stores/ear_adaptation_runs/`` (``--store``): a run whose curves are stored is neither trained
nor adapted again, so the comparison adds up across machines whose ``runs/`` is gone, and the table
is rebuilt from the store alone. Every adaptation is seeded by the seed and the target, so a
recomputed curve is the same curve.
``--overlay DIR`` adds ``DIR/<method>.yaml`` after that method's config (the test's tiny sizes).
``--stop-by HH:MM`` makes a worker claim only the runs its estimate (below, × ``--slack``) ends by
then: a run cut by the end of a session is lost when the next session starts on a fresh machine.

Cost, measured 2026-11-29 on the 2-core machine (busy with two other trainings) as CPU seconds of
one thread: the difference between 400- and 1200-update runs (MAML: 2 and 8 meta-iterations,
scratch: 400 and 2400 updates), so start-up is excluded and counted apart (~10 s per run). CEM takes
1.7 s per epoch of 96 HalfCheetah episodes (~20 s per target with its evaluations).

| family | method | unit | s / unit | units | per run | runs | total |
|---|---|---|---:|---:|---:|---:|---:|
| halfcheetah_vel | ear_cem | update (10 env steps) | 0.030 | 80k | 40 min | 3 | 2.0 h |
| halfcheetah_vel | pearl | update (10 env steps) | 0.028 | 80k | 37 min | 3 | 1.9 h |
| halfcheetah_vel | maml_trpo | meta-iteration (40k env steps) | 4.3 | 300 | 22 min | 3 | 1.1 h |
| halfcheetah_vel | sac_scratch | update (1 env step) | 0.0050 | 100k | 8 min | 9 | 1.3 h |
| hopper_vel | ear_cem | update | 0.028 | 80k | 37 min | 3 | 1.9 h |
| hopper_vel | pearl | update | 0.025 | 80k | 33 min | 3 | 1.7 h |
| hopper_vel | maml_trpo | meta-iteration | 3.5 | 300 | 18 min | 3 | 0.9 h |
| hopper_vel | sac_scratch | update | 0.0062 | 100k | 10 min | 9 | 1.6 h |

In all 12.2 h of training plus ~0.3 h of start-up and adaptation = 12.5 h of one thread: two lanes
of ~6.2 h each (``--plan`` prints the split), inside the 8 h budget with ~20% to spare, on a machine
whose two cores the lanes have to themselves (while the measurements ran, sharing the cores with two
other trainings, wall-clock rates were 25-35% lower than these CPU times: that would not fit). The
paper's 10 training tasks fit: no reduction to fewer tasks was needed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from experiments import worker_claims
from experiments.representation_table import CONFIGS, ROOT, Row, run_dir, train
from experiments.twin import write_twin

FAMILIES = ("halfcheetah_vel", "hopper_vel")
METHODS = ("ear_cem", "pearl", "maml_trpo", "sac_scratch")
CONFIG_SUFFIX = {"ear_cem": "ear", "pearl": "pearl", "maml_trpo": "maml", "sac_scratch": "scratch"}
TITLES = {
    "ear_cem": "EAR + CEM",
    "ear_cem_small": "EAR + CEM, small population",
    "pearl": "PEARL",
    "maml_trpo": "MAML-TRPO",
    "sac_scratch": "SAC from scratch",
}
BUDGETS = (0, 1_000, 5_000, 20_000, 100_000, 200_000)
"""Env-step budgets of the table: each method's last point within the budget."""
KEYS = ("return", "velocity_error")
TICKS = (0, 1_000, 10_000, 100_000, 1_000_000)

SECONDS_PER_UNIT = {
    ("halfcheetah_vel", "ear_cem"): 0.030,
    ("halfcheetah_vel", "pearl"): 0.028,
    ("halfcheetah_vel", "maml_trpo"): 4.3,
    ("halfcheetah_vel", "sac_scratch"): 0.0050,
    ("hopper_vel", "ear_cem"): 0.028,
    ("hopper_vel", "pearl"): 0.025,
    ("hopper_vel", "maml_trpo"): 3.5,
    ("hopper_vel", "sac_scratch"): 0.0062,
}
"""CPU seconds of one thread per ``trainer.max_steps`` unit (the docstring's table)."""
OVERHEAD_SECONDS = {"ear_cem": 80.0, "pearl": 30.0, "maml_trpo": 30.0, "sac_scratch": 20.0}
"""Start-up, checkpoints and adaptation per run (CEM: ~20 s per target)."""


STORE = ROOT / "experiments" / "stores" / "ear_adaptation_runs"
"""Committed per-run curves (``<family>/<row>_s<seed>.json``): the checkpoints in ``runs/`` do not
outlive the machine, the curves do, so the comparison adds up across sessions and the table is
rebuilt from the store alone."""

CACHE_VERSION = 2
"""Bumped when the adaptation code changes what it measures, so cached curves are recomputed (2: PEARL's
and MAML-TRPO's action noise seeded by the target's seed; before, it followed the process's RNG state)."""


@dataclass(frozen=True)
class AdaptSettings:
    """How every method adapts (stored with the cached results: a change recomputes them)."""

    eval_episodes: int = 3  # deterministic episodes per point, every method (not counted as steps)
    trials: int = 3  # independent adaptations per target (seeds apart), averaged point by point: one
    # PEARL or MAML-TRPO adaptation's exploration noise moved a seed's mean error by up to 0.5 m/s
    cem_elites: int = 6  # CEM: the EAR authors' settings
    cem_perturbations: int = 15
    cem_noise: float = 0.5
    cem_epochs: int = 10
    cem_small_elites: int = 2  # ear_cem_small: the same EAR runs, 8 episodes per epoch (our choice) ...
    cem_small_perturbations: int = 3  # ... so that CEM has points below the authors' 96 episodes
    pearl_episodes: int = 4  # PEARL: exploration episodes (posterior updated after each)
    maml_steps: int = 3  # MAML: inner policy-gradient steps ...
    maml_episodes: int = 10  # ... of K episodes each (the configs' training K)


@dataclass(frozen=True)
class Job:
    """One training run; ``target`` only for SAC from scratch (one run per held-out target)."""

    family: str
    method: str
    seed: int
    target: int | None = None

    @property
    def key(self) -> str:
        return self.method if self.target is None else f"{self.method}_t{self.target}"

    @property
    def config(self) -> str:
        return f"ear/adaptation/{self.family}_{CONFIG_SUFFIX[self.method]}.yaml"

    def run(self, out: Path) -> Path:
        return run_dir(out / self.family, self.key, self.seed)


def all_jobs(families: list[str], methods: list[str], seeds: list[int], targets: list[int]) -> list[Job]:
    jobs = []
    for seed in seeds:
        for family in families:
            for method in methods:
                if method == "sac_scratch":
                    jobs += [Job(family, method, seed, target) for target in targets]
                else:
                    jobs.append(Job(family, method, seed))
    return jobs


def estimate_seconds(job: Job) -> float:
    """Training and adaptation of ``job`` on one thread, from :data:`SECONDS_PER_UNIT`."""
    config = yaml.safe_load((CONFIGS / job.config).read_text())
    units = int(config["trainer"]["max_steps"])
    return units * SECONDS_PER_UNIT[(job.family, job.method)] + OVERHEAD_SECONDS[job.method]


def split_lanes(jobs: list[Job], lanes: int, cost: Callable[[Job], float] = estimate_seconds) -> list[list[Job]]:
    """Longest first onto the least loaded lane (deterministic: every lane computes the same split);
    each lane then runs its jobs seed by seed, so that whole seeds finish first."""
    loads = [0.0] * lanes
    split: list[list[Job]] = [[] for _ in range(lanes)]
    for job in sorted(jobs, key=lambda j: (-cost(j), j.family, j.method, j.seed, j.target or 0)):
        lane = loads.index(min(loads))
        split[lane].append(job)
        loads[lane] += cost(job)
    order = {job: i for i, job in enumerate(jobs)}
    return [sorted(lane, key=order.__getitem__) for lane in split]


@contextlib.contextmanager
def claimed(job: Job, out: Path, wait: bool) -> Iterator[bool]:
    """Hold ``job``'s lock (``<out>/<family>/<key>_s<seed>.lock``) while the block runs; yields False
    (without waiting) when another worker holds it and ``wait`` is off (:mod:`worker_claims`)."""
    with worker_claims.claimed(job.run(out).parent.with_suffix(".lock"), wait) as ours:
        yield ours


def train_job(job: Job, out: Path, overlay: Path | None) -> None:
    configs = [job.config]
    if overlay is not None and (overlay / f"{job.method}.yaml").is_file():
        configs.append(str((overlay / f"{job.method}.yaml").resolve()))  # CONFIGS / absolute = absolute
    overrides = () if job.target is None else ("--data.init_args.tasks", f"[{job.target}]")
    train(Row(job.key, TITLES[job.method], tuple(configs)), job.seed, out / job.family, None, overrides=overrides)


# --- adaptation: one curve per held-out target, [{env_steps, return, velocity_error}] --------------------


def point(env_steps: float, record: dict[str, Any], prefix: str = "") -> dict[str, float]:
    return {"env_steps": float(env_steps), **{key: float(record[prefix + key]) for key in KEYS}}


def adapt_ear(
    ckpt: Path, target: int, seed: int, settings: AdaptSettings, small: bool = False
) -> list[dict[str, float]]:
    """CEM with the authors' population, or (``small``) with ``cem_small_*``: the same search, fewer
    episodes per epoch (how much of EAR's step cost is the population the authors chose)."""
    from palm_lightning.tools.cem_adapt import cem_search

    result = cem_search(
        str(ckpt),
        task=target,
        elites=settings.cem_small_elites if small else settings.cem_elites,
        perturbations=settings.cem_small_perturbations if small else settings.cem_perturbations,
        noise=settings.cem_noise,
        epochs=settings.cem_epochs,
        final_episodes=settings.eval_episodes,
        seed=seed,
        eval_episodes=settings.eval_episodes,
    )
    return [point(record["env_steps"], record, "eval_") for record in result["history"]]


def adapt_pearl(ckpt: Path, target: int, seed: int, settings: AdaptSettings) -> list[dict[str, float]]:
    from palm_lightning.tools.pearl_adapt import adapt_checkpoint

    result = adapt_checkpoint(ckpt, target, settings.pearl_episodes, settings.eval_episodes, seed)
    return [point(record["env_steps"], record) for record in result["curve"]]


def adapt_maml(ckpt: Path, target: int, seed: int, settings: AdaptSettings) -> list[dict[str, float]]:
    from palm_lightning.tools.maml_adapt import adapt_checkpoint

    result = adapt_checkpoint(
        ckpt, target, settings.maml_steps, settings.maml_episodes, seed, eval_episodes=settings.eval_episodes
    )
    return [point(record["env_steps"], record, "eval_") for record in result["curve"]]


def checkpoint_step(path: Path) -> int:
    return int(path.stem.split("step=")[1])


def evaluate_scratch(run: Path, target: int, seed: int, settings: AdaptSettings) -> list[dict[str, float]]:
    """Every kept checkpoint of a SAC-from-scratch run, acting with the policy mean; its env steps
    are the run's (counted every ``log_every_n_updates``, which divides the checkpoint interval)."""
    import torch

    from palm_lightning.envs.multitask import MultiTaskVectorEnv, run_episodes
    from palm_lightning.models import OHESAC

    checkpoints = sorted((run / "checkpoints").glob("*step=*.ckpt"), key=checkpoint_step)
    if not checkpoints:
        raise FileNotFoundError(f"{run}/checkpoints holds no kept checkpoints (*step=*.ckpt)")
    curve = []
    for ckpt in checkpoints:
        model = OHESAC.load_from_checkpoint(ckpt, map_location="cpu")
        model.eval()
        info = model.task_info
        if info.get("split") != "adapt" or info.get("tasks") != [target]:
            raise ValueError(
                f"{ckpt} trained on {info.get('split')} tasks {info.get('tasks')}, not held-out [{target}]"
            )
        env = MultiTaskVectorEnv(
            info["family"], [target] * settings.eval_episodes, "adapt", seed + 10_000, env_kwargs=info["env_kwargs"]
        )
        slots = torch.zeros(settings.eval_episodes, dtype=torch.long)
        try:
            summaries = run_episodes(env, functools.partial(model.act_deterministic, task=slots), seed=seed + 10_000)
        finally:
            env.close()
        mean = {key: statistics.mean(s[key] for s in summaries) for key in KEYS}
        curve.append(point(int(model.env_steps), mean))
    return curve


Adaptation = Callable[[Path, int, int, AdaptSettings], list[dict[str, float]]]
ADAPT: dict[str, Adaptation] = {
    "ear_cem": adapt_ear,
    "ear_cem_small": functools.partial(adapt_ear, small=True),
    "pearl": adapt_pearl,
    "maml_trpo": adapt_maml,
}
VARIANTS = {"ear_cem": ("ear_cem", "ear_cem_small")}
"""The adaptation rows of a training method (default: the method alone): ``ear_cem_small`` adapts
the ``ear_cem`` runs with a smaller CEM population, cached apart (``adaptation_ear_cem_small.json``)."""


def average_curves(curves: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Point by point mean of trials of one adaptation (env steps too: Hopper's episodes end early)."""
    if len({len(c) for c in curves}) != 1:
        raise RuntimeError(f"trials of one adaptation have different lengths: {[len(c) for c in curves]}")
    return [{key: statistics.mean(p[key] for p in points) for key in points[0]} for points in zip(*curves, strict=True)]


def variants(job: Job) -> tuple[str, ...]:
    return VARIANTS.get(job.method, (job.method,))


def stored_path(job: Job, store: Path, method: str) -> Path:
    """``<store>/<family>/<row>_s<seed>.json``, e.g. ``hopper_vel/ear_cem_small_s1.json``."""
    key = method if job.target is None else f"{method}_t{job.target}"
    return store / job.family / f"{key}_s{job.seed}.json"


def fresh_curves(path: Path | None, settings: AdaptSettings, wanted: list[int]) -> list[dict[str, Any]] | None:
    """The curves cached at ``path`` if they were measured with ``settings``, :data:`CACHE_VERSION` and
    on the ``wanted`` targets; ``None`` otherwise (missing, stale or another selection)."""
    if path is None or not path.is_file():
        return None
    found = json.loads(path.read_text())
    fresh = found["settings"] == asdict(settings) and found.get("version") == CACHE_VERSION
    return found["targets"] if fresh and [t["task"] for t in found["targets"]] == wanted else None


def write_curves(path: Path, settings: AdaptSettings, targets: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"settings": asdict(settings), "version": CACHE_VERSION, "targets": targets}
    path.write_text(json.dumps(doc, indent=2) + "\n")


def is_stored(job: Job, store: Path | None, targets: list[int], settings: AdaptSettings) -> bool:
    """Every adaptation row of ``job`` is in the store: the run need not be trained (again)."""
    wanted = [job.target] if job.target is not None else targets
    return store is not None and all(
        fresh_curves(stored_path(job, store, method), settings, wanted) is not None for method in variants(job)
    )


def adapted(
    job: Job,
    out: Path,
    targets: list[int],
    settings: AdaptSettings,
    force: bool,
    method: str | None = None,
    store: Path | None = None,
) -> list[dict[str, Any]]:
    """The job's curves on its held-out targets under adaptation row ``method`` (default: the job's
    own): from ``store`` (committed, outlives the machine), else from the run's ``adaptation.json`` (a
    variant's: ``adaptation_<method>.json``), else measured on the run's checkpoint; written to both."""
    from palm_lightning.envs.families import family_class

    method = method or job.method
    run = job.run(out)
    cache = run / ("adaptation.json" if method == job.method else f"adaptation_{method}.json")
    wanted = [job.target] if job.target is not None else targets
    kept = None if store is None else stored_path(job, store, method)
    if not force:
        for path in (kept, cache):
            found = fresh_curves(path, settings, wanted)
            if found is not None:
                if kept is not None and path != kept:
                    write_curves(kept, settings, found)
                return found
    start = time.time()
    results = []
    for target in wanted:
        trials = []
        for trial in range(settings.trials):
            seed = 1000 * job.seed + target + 100_000 * trial
            if job.method == "sac_scratch":
                trials.append(evaluate_scratch(run, target, seed, settings))
            else:
                trials.append(ADAPT[method](run / "checkpoints" / "last.ckpt", target, seed, settings))
        curve = average_curves(trials)
        steps = [p["env_steps"] for p in curve]
        if steps != sorted(steps):
            raise RuntimeError(f"{job.key} seed {job.seed}, target {target}: env steps not monotone: {steps}")
        name = family_class(job.family).task_name(target, "adapt")
        results.append({"task": target, "name": name, "curve": curve})
    write_curves(cache, settings, results)
    if kept is not None:
        write_curves(kept, settings, results)
    label = job.key if method == job.method else f"{job.key} ({method})"
    print(f"{job.family} {label} seed {job.seed}: adapted in {time.time() - start:.0f} s", flush=True)
    return results


# --- aggregation ---------------------------------------------------------------------------------------


def budget_label(budget: int) -> str:
    """``20_000`` → ``"20k"``, ``1_000_000`` → ``"1M"``."""
    if budget >= 1_000_000:
        return f"{budget / 1_000_000:g}M"
    return f"{budget / 1000:g}k" if budget >= 1000 else str(budget)


def value_at(curve: list[dict[str, float]], budget: float, key: str) -> float | None:
    """The last point within ``budget`` env steps (``None``: none that cheap)."""
    inside = [p[key] for p in curve if p["env_steps"] <= budget]
    return inside[-1] if inside else None


def value_of(curve: list[dict[str, float]], index: int, key: str) -> float:
    return curve[index][key]


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "mean": round(statistics.mean(values), 4),
        "std": round(statistics.stdev(values), 4) if len(values) > 1 else None,
        "n": len(values),
        "values": [round(v, 4) for v in values],
    }


def per_seed(
    by_seed: dict[int, list[dict[str, Any]]], pick: Callable[[list[dict[str, float]]], float | None]
) -> list[float]:
    """One value per seed, the mean over its targets of ``pick(curve)``; ``[]`` when a target has none."""
    values = []
    for targets in by_seed.values():
        picked = [pick(t["curve"]) for t in targets]
        if any(v is None for v in picked):
            return []
        values.append(statistics.mean(v for v in picked if v is not None))
    return values


def row_metrics(by_seed: dict[int, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    metrics = {}
    for key in KEYS:
        for budget in BUDGETS:
            values = per_seed(by_seed, functools.partial(value_at, budget=budget, key=key))
            if values:
                metrics[f"{key}_at_{budget_label(budget)}"] = summary(values)
        metrics[f"{key}_final"] = summary(per_seed(by_seed, functools.partial(value_of, index=-1, key=key)))
    metrics["env_steps_final"] = summary(per_seed(by_seed, functools.partial(value_of, index=-1, key="env_steps")))
    return metrics


def mean_curve(by_seed: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Point by point (CEM epoch, PEARL episode, MAML step, scratch checkpoint): the mean env steps
    and, per key, mean ± std over seeds of the mean over targets."""
    curves = [t["curve"] for targets in by_seed.values() for t in targets]
    points = []
    for i in range(min(len(c) for c in curves)):
        record: dict[str, Any] = {"env_steps": round(statistics.mean(c[i]["env_steps"] for c in curves), 1)}
        for key in KEYS:
            record[key] = summary(per_seed(by_seed, functools.partial(value_of, index=i, key=key)))
        points.append(record)
    return points


def target_rows(results: dict[tuple[str, str], dict[int, list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """Each method's last point on each held-out target (mean ± std over seeds): the means over
    targets hide that, e.g., a method can win on the slow targets and lose on the fast one."""
    rows = []
    for (family, method), by_seed in results.items():
        tasks: dict[int, str] = {}
        for targets in by_seed.values():
            tasks.update((t["task"], t["name"]) for t in targets)
        for task, name in sorted(tasks.items()):
            finals = [t["curve"][-1] for targets in by_seed.values() for t in targets if t["task"] == task]
            metrics = {f"{key}_final": summary([p[key] for p in finals]) for key in (*KEYS, "env_steps")}
            rows.append({"name": f"{family}/{method}/{name}", "metrics": metrics})
    return rows


def target_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "\nlast point per held-out target (mean ± std over seeds):\n",
        "| family | method | target | return | velocity error | env steps |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        family, method, target = row["name"].split("/")
        m = row["metrics"]
        lines.append(
            f"| {family} | {method} | {target} | {cell(m['return_final'])} | {cell(m['velocity_error_final'])} "
            f"| {m['env_steps_final']['mean']:.0f} |"
        )
    return "\n".join(lines)


def cell(metric: dict[str, Any] | None) -> str:
    if metric is None:
        return "—"
    return f"{metric['mean']:.2f} ± {metric['std'] or 0:.2f}"


def markdown(rows: list[dict[str, Any]], families: list[str]) -> str:
    """Per family and key: methods × budgets (rows named ``<family>/<method>``)."""
    lines = []
    for family in families:
        for key in KEYS:
            lines += [
                f"\n{family}, {key.replace('_', ' ')} (mean ± std over seeds of the mean over held-out targets):\n",
                "| method | " + " | ".join(f"≤ {budget_label(b)} steps" for b in BUDGETS) + " | final | final steps |",
                "|---|" + "---:|" * (len(BUDGETS) + 2),
            ]
            for row in rows:
                row_family, method = row["name"].split("/")
                if row_family != family:
                    continue
                m = row["metrics"]
                cells = [cell(m.get(f"{key}_at_{budget_label(b)}")) for b in BUDGETS]
                cells += [cell(m[f"{key}_final"]), f"{m['env_steps_final']['mean']:.0f}"]
                lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(curves: list[dict[str, Any]], families: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedFormatter, FixedLocator

    fig, axes = plt.subplots(len(KEYS), len(families), figsize=(5.5 * len(families), 7), squeeze=False)
    for col, family in enumerate(families):
        for row, key in enumerate(KEYS):
            ax = axes[row][col]
            for curve in (c for c in curves if c["name"].split("/")[0] == family):
                x = [p["env_steps"] for p in curve["points"]]
                mean = [p[key]["mean"] for p in curve["points"]]
                std = [p[key]["std"] or 0.0 for p in curve["points"]]
                ax.plot(x, mean, marker="o", ms=3, label=TITLES[curve["name"].split("/")[1]])
                ax.fill_between(
                    x,
                    [m - s for m, s in zip(mean, std, strict=True)],
                    [m + s for m, s in zip(mean, std, strict=True)],
                    alpha=0.2,
                )
            ax.set_xscale("symlog", linthresh=1000)  # linear to 1k steps (PEARL), logarithmic beyond
            ax.xaxis.set_major_locator(FixedLocator(TICKS))
            ax.xaxis.set_major_formatter(FixedFormatter([budget_label(t) for t in TICKS]))
            ax.set_xlabel("env steps spent adapting")
            ax.set_ylabel(key.replace("_", " "))
            ax.set_title(f"{family}: {key.replace('_', ' ')}", fontsize=10)
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def parse_lane(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--lane takes K/N, e.g. 1/2, got {text!r}") from error
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"--lane K/N needs 1 ≤ K ≤ N, got {text!r}")
    return k, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--targets", type=int, nargs="+", default=[0, 1, 2], help="held-out task indices")
    parser.add_argument("--train", action="store_true", help="train (or resume) the runs that are missing")
    parser.add_argument(
        "--lane",
        type=parse_lane,
        help="K/N: only lane K of N of the cost-balanced split (--plan); without it workers share all runs",
    )
    parser.add_argument(
        "--stop-by",
        type=worker_claims.stop_by_clock,
        help="with --train: claim only the runs expected (estimate × --slack) to end by HH:MM; leave the rest",
    )
    parser.add_argument(
        "--slack",
        type=float,
        default=1.5,
        help="--stop-by's factor on the one-thread estimate (two workers side by side: mostly 1.0-1.5x, up to 3.1x)",
    )
    parser.add_argument("--plan", action="store_true", help="print the jobs, their estimated cost and the lanes")
    parser.add_argument("--overlay", type=Path, help="a folder of overlays: <method>.yaml after that method's config")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "ear_adaptation")
    parser.add_argument(
        "--store",
        type=Path,
        default=STORE,
        help="committed per-run curves: a run found here is neither trained nor adapted again ('none': off)",
    )
    parser.add_argument("--json", type=Path, help="write the rows in the docs/results JSON shape")
    parser.add_argument("--figure", type=Path, help="write the curves as a PNG")
    parser.add_argument("--force-adapt", action="store_true", help="recompute cached adaptation results")
    defaults = AdaptSettings()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = AdaptSettings(**{name: getattr(args, name) for name in asdict(defaults)})
    store = None if str(args.store) == "none" else args.store
    started = time.time()

    jobs = all_jobs(args.families, args.methods, args.seeds, args.targets)
    lanes = split_lanes(jobs, args.lane[1] if args.lane else 1)
    if args.plan:
        for k, lane in enumerate(lanes, 1):
            total = sum(estimate_seconds(job) for job in lane)
            print(f"lane {k}/{len(lanes)}: {len(lane)} runs, ~{total / 3600:.1f} h on one thread")
            for job in lane:
                print(f"  {job.family:16} {job.key:16} seed {job.seed}  ~{estimate_seconds(job) / 60:.0f} min")
        return 0
    mine = lanes[args.lane[0] - 1] if args.lane else jobs
    if args.train:  # first pass: the runs no other worker holds; second: wait for the others' runs
        pending = list(mine)
        deferred: list[Job] = []
        for wait in (False, True):
            held_elsewhere = []
            for job in pending:
                if is_stored(job, store, args.targets, settings) and not args.force_adapt:
                    continue
                if args.stop_by is not None and time.time() + args.slack * estimate_seconds(job) > args.stop_by:
                    deferred.append(job)  # would outlast the machine or session: a later call trains it
                    continue
                with claimed(job, args.out, wait) as ours:
                    if not ours:
                        held_elsewhere.append(job)
                        continue
                    train_job(job, args.out, args.overlay)
                    for method in variants(job):
                        adapted(job, args.out, args.targets, settings, args.force_adapt and not wait, method, store)
            pending = held_elsewhere
        if deferred:
            names = ", ".join(f"{job.family}/{job.key}_s{job.seed}" for job in deferred)
            print(f"--stop-by: {len(deferred)} runs would end too late and were left for a later call: {names}")
            return 0
    for job in mine:
        if not is_stored(job, store, args.targets, settings) and not (job.run(args.out) / "trained.json").is_file():
            sys.exit(f"{job.run(args.out)} is not trained: run with --train (or wait for the workers)")
    results: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = {}
    for job in mine:
        for method in variants(job):
            force = args.force_adapt and not args.train
            found = adapted(job, args.out, args.targets, settings, force, method, store)
            results.setdefault((job.family, method), {}).setdefault(job.seed, []).extend(found)
    if args.lane:
        print(
            f"lane {args.lane[0]}/{args.lane[1]} done in {time.time() - started:.0f} s; once every lane is, run "
            "the same command without --train and --lane (with --json, --figure) for the table"
        )
        return 0

    rows = [
        {"name": f"{family}/{method}", "metrics": row_metrics(by_seed)} for (family, method), by_seed in results.items()
    ]
    curves = [
        {"name": f"{family}/{method}", "points": mean_curve(by_seed)} for (family, method), by_seed in results.items()
    ]
    per_target = target_rows(results)
    print(markdown(rows, args.families))
    print(target_markdown(per_target))
    if args.json:
        command = "python -m experiments.ear_adaptation " + " ".join(sys.argv[1:] if argv is None else argv)
        doc: dict[str, Any] = {
            "command": command,
            "train_command": "python -m experiments.ear_adaptation --train  # two workers side by side",
            "adaptation": asdict(settings),
            "budgets": list(BUDGETS),
            "rows": rows,
            "curves": curves,
            "tables": [{"name": "last point per held-out target", "command": command, "rows": per_target}],
        }
        write_twin(args.json, doc.pop("command"), doc.pop("rows"), **doc)
        print(f"\nwrote {args.json}")
    if args.figure:
        print(f"wrote {plot(curves, args.families, args.figure)}")
    print(f"({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
