"""The Atari tables: the AtariARI state probe and DrQ(ε) fine-tuning, every encoder on the same protocol.

Encoders (``--rows``; all of PALM-Atari's architecture, a ``DrQEncoder`` on one 64×64 grayscale frame):

- ``random_encoder`` (``palm_apt``'s architecture, untrained), ``pixels`` (probe only; frames
  average-pooled 2×2 to 1 024 features, ``PIXEL_POOL``: full 64×64 pixels cost ~880 s per probe epoch
  on one thread, over 10 h for the recipe),
  ``supervised`` (the same encoder trained on the RAM labels: the probe's upper bound,
  ``configs/baselines/supervised_atari.yaml``), ``simsiam_real`` (SimSiam on the real frames,
  ``configs/baselines/simsiam_atari.yaml``);
- ``palm_apt`` (``configs/palm_atari.yaml``) and ``palm_random_policy`` (the same with
  ``configs/palm_variants/random_policy.yaml``), both with ``configs/budget/atari.yaml`` on top;
- ``stdim_real`` (ST-DIM, AtariARI's own method, on the real frames: ``configs/baselines/stdim_atari.yaml``)
  and ``palm_stdim`` (PALM-Atari with ST-DIM's objective: ``configs/palm_variants/stdim.yaml``): the
  local-objective pair, probe only;
- ``palm_inverse`` (PALM-Atari whose encoder learns to predict the action from two consecutive frames,
  ``configs/palm_variants/inverse_dynamics.yaml``, with the random policy so the action is not readable off
  one frame): the objective that must keep what changed, probe only.

Probe (``--probe``): ``configs/eval/atari_probe.yaml`` (``--probe-config`` for another), weighted F1
per game (the mean of AtariARI's category means) and over games; per-variable F1 goes to the
probe's TensorBoard run and the cached ``probe.json``. ``--standardize`` probes the same encoders
with features scaled by their train mean and std (``AtariStateProbe(standardize=True)``; cached in
``probe_standardized.json``, TensorBoard version ``probe_standardized``; ``--features raw standardized``
puts both in one table, rows named ``<row> (raw features)`` and ``<row> (standardized features)``): AtariARI
feeds raw features, and with Adam at 3e-4 for ≤ 100 epochs an encoder whose features vary little between
frames of a game (SimSiam's, 1–2% of their magnitude) reads as uninformed when a linear map can decode it.

RL (``--rl``): ``configs/atari/finetune.yaml`` at 64×64 with each encoder fine-tuned (``_ft``) or
frozen (``_frozen``; ``_frozen_std``: the head reads the features standardized by the seed frames'
statistics, ``AtariFinetune``'s ``agent.standardize_features``); ``scratch`` is the same architecture freshly
initialised and fine-tuned — the from-scratch agent of the comparison. ``--rl-rows`` runs by default
every fine-tuned row and the standardized frozen ones (:data:`DEFAULT_RL_ROWS`); name the raw
``_frozen`` rows, or the positive control (``supervised_ft``, ``supervised_frozen_std``: the encoder
trained on the RAM labels), to add them. Scores: the evaluation games after the last update, raw and
human-normalised, per game, and the IQM over every (game, seed) of a row; and the same for the mean
of the run's second-half evaluations (``late_return``).

    python -m experiments.atari_table --train --seeds 0 --rows palm_apt           # trains or resumes the encoders
    python -m experiments.atari_table --probe --features raw standardized --seeds 0 1 2   # the probe table
    python -m experiments.atari_table --rl --train --seeds 0 1                     # the CPU protocol (see CPU_GAMES)
    python -m experiments.atari_table --probe --rl --seeds 0 1 --json docs/results/atari.json
    python -m experiments.atari_table --rl --train --protocol atari100k --seeds 0 1 2   # the 26 games (a GPU)

Encoder runs go to ``runs/atari_table/<row>_s<seed>/version_0/`` (PALM's data seed follows the
seed; the frame-trained baselines keep the frames' seed 0, so every row sees the same frames), probe
results are cached in ``probe.json`` there, RL runs in ``runs/atari_table/rl_<protocol>/<rl row>_<game>_s<seed>/``
with their scores in ``scores.json`` (``--force-eval`` recomputes the probe); both are copied to the committed
store ``experiments/stores/atari_runs/`` (``--store``), read first, so the tables add up across machines whose
``runs/`` is gone (a stored result carries its encoder's weight hash, ``encoder_sha``). Interrupted runs resume
from their ``last.ckpt`` the next time ``--train`` reaches them. RL workers share the runs: start the
same ``--rl --train`` command twice (``OMP_NUM_THREADS=1`` each); each takes the next run no other
holds (a lock file per run and per encoder), and a worker that trains an encoder lets the other go
on with runs that do not need it. ``--stop-by HH:MM``: a worker starts only the runs that end by then
(estimates below, :data:`MINUTES_PER_1K_AGENT_STEPS`). Encoder trainings alone (``--train`` without
``--rl``) are split by hand: give each process its own ``--rows``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from experiments import worker_claims
from experiments.representation_table import CONFIGS, ROOT, Row, finished, run_dir, train
from palm_lightning.datamodules.atari.game import ATARI_100K_SCORES, human_normalized_score

BUDGET = "budget/atari.yaml"
STORE = ROOT / "experiments" / "stores" / "atari_runs"
"""Committed results (``probe/<row>_s<seed>[_standardized].json``, ``rl_<protocol>/<rl row>_<game>_s<seed>.json``):
``runs/`` does not outlive the machine, these do, so the tables add up across sessions."""
PIXEL_POOL = 2  # the pixel row probes 2x2-pooled frames (1 024 features): 4 096 cost >= 10 h on this CPU
ROWS = (
    Row("random_encoder", "random encoder (same architecture, untrained)", encoder="random:palm_apt"),
    Row("pixels", "raw pixels, 2x2-pooled to 32x32", encoder="pixels"),
    Row("supervised", "supervised on the RAM labels (upper bound)", ("baselines/supervised_atari.yaml",)),
    Row("simsiam_real", "SimSiam on real frames", ("baselines/simsiam_atari.yaml",)),
    Row("palm_apt", "PALM-Atari, APT", ("palm_atari.yaml", BUDGET)),
    Row(
        "palm_random_policy",
        "PALM-Atari, random policy",
        ("palm_atari.yaml", "palm_variants/random_policy.yaml", BUDGET),
    ),
    Row("stdim_real", "ST-DIM on real frames", ("baselines/stdim_atari.yaml",)),
    Row("palm_stdim", "PALM-Atari, ST-DIM objective", ("palm_atari.yaml", BUDGET, "palm_variants/stdim.yaml")),
    Row(
        "palm_inverse",
        "PALM-Atari, inverse-dynamics objective, random policy",
        ("palm_atari.yaml", BUDGET, "palm_variants/random_policy.yaml", "palm_variants/inverse_dynamics.yaml"),
    ),
)
ROW_BY_KEY = {row.key: row for row in ROWS}


@dataclasses.dataclass(frozen=True)
class RLRow:
    """An RL row: which encoder initialises the agent, whether it is trained with the Q head, and
    (frozen only) whether the head reads it standardized (``AtariFinetune``'s ``agent.standardize_features``)."""

    key: str
    title: str
    encoder: str  # a probe row's key, or "scratch" (palm_apt's architecture, untrained)
    freeze: bool
    standardize: bool = False
    control: bool = False  # a positive control, outside the default table (DEFAULT_RL_ROWS)


RL_ROWS = (
    RLRow("scratch", "from scratch (same architecture)", "scratch", freeze=False),
    RLRow("palm_apt_ft", "PALM-Atari APT, fine-tuned", "palm_apt", freeze=False),
    RLRow("palm_apt_frozen", "PALM-Atari APT, frozen", "palm_apt", freeze=True),
    RLRow("palm_random_policy_ft", "PALM-Atari random policy, fine-tuned", "palm_random_policy", freeze=False),
    RLRow("palm_random_policy_frozen", "PALM-Atari random policy, frozen", "palm_random_policy", freeze=True),
    RLRow("simsiam_real_ft", "SimSiam on real frames, fine-tuned", "simsiam_real", freeze=False),
    RLRow("simsiam_real_frozen", "SimSiam on real frames, frozen", "simsiam_real", freeze=True),
    RLRow("random_encoder_frozen", "random encoder, frozen", "scratch", freeze=True),
    # The frozen pair again with the head reading features standardized by the seed frames' statistics:
    # PALM's features vary ~3x less within a game than the untrained encoder's (the probe's scale effect).
    RLRow("palm_apt_frozen_std", "PALM-Atari APT, frozen, standardized", "palm_apt", freeze=True, standardize=True),
    RLRow("random_encoder_frozen_std", "random encoder, frozen, standardized", "scratch", True, standardize=True),
    RLRow(
        "palm_random_policy_frozen_std",
        "PALM-Atari random policy, frozen, standardized",
        "palm_random_policy",
        freeze=True,
        standardize=True,
    ),
    RLRow(
        "simsiam_real_frozen_std",
        "SimSiam on real frames, frozen, standardized",
        "simsiam_real",
        freeze=True,
        standardize=True,
    ),
    # The positive control: the encoder trained on the RAM labels (the probe's upper bound) has been told the
    # state the agent acts on. If it does not beat scratch either, the protocol cannot show an encoder's worth
    # at this budget, whatever the encoder; if it does, the gap is PALM's. Privileged, so out of the default.
    RLRow("supervised_ft", "supervised on the RAM labels, fine-tuned", "supervised", freeze=False, control=True),
    RLRow(
        "supervised_frozen_std",
        "supervised on the RAM labels, frozen, standardized",
        "supervised",
        freeze=True,
        standardize=True,
        control=True,
    ),
)
RL_ROW_BY_KEY = {row.key: row for row in RL_ROWS}
# The table --rl-rows runs by default: every fine-tuned row and the standardized frozen ones, the positive
# control aside. The raw frozen rows (``_frozen``) stay available by name: they are the diagnosis (frozen PALM
# features read below an untrained encoder's at the head's own scale, docs/results/atari.md), and they cost
# another hour over 2 seeds.
DEFAULT_RL_ROWS = tuple(row.key for row in RL_ROWS if not row.control and (not row.freeze or row.standardize))
# --stop-by's estimates, minutes of one thread beside another run at the CPU protocol (docs/results/atari.md),
# the machines of the last sessions plus a margin: fine-tuned 20-23 min per 20 000 agent steps, frozen 3-5 min
# (cached features), an encoder 38-40 min (PALM-Atari, 3 000 updates). The first machine took 50-59 min per
# fine-tuned run: there, give --stop-by an hour early. A run cut short resumes without its replay buffer.
MINUTES_PER_1K_AGENT_STEPS = {False: 1.75, True: 0.4}  # keyed by RLRow.freeze
ENCODER_MINUTES = 45.0
SCREEN = 64  # PALM-Atari's frames
# The CPU protocol (our choice; configs/atari/cpu_protocol.yaml): three of the six PALM-Atari games,
# dense-reward ones (Pong's and Freeway's first points are rare for an agent this young), 20 000 agent
# steps (a fifth of Atari-100k), 10 evaluation games every 4 600 updates, 2 seeds. Checked so far (seed 0,
# docs/results/atari.md): from scratch, Seaquest learns at this budget (202, 262, 290, 190 against random
# play's 68), and MsPacman (431, 1 203, 421 after 4 600 to 13 800 updates; random play 307); Boxing's frozen
# rows did not (-11, -17 with 3 games, random play 0.1), its scratch row ends above random play, noisily
# (-3.8, 6.8, -10.5, 9.3 after 4 600 to 18 400 updates): Boxing stays. Measured update costs
# (configs/atari/finetune.yaml, one busy thread): fine-tuned PALM-sized encoder 62-100 ms, frozen (cached
# features) 6 ms. The default table over 2 seeds, at the run costs measured since (one thread beside another):
# 4 fine-tuned rows x 3 games x 2 seeds x 23-26 min ≈ 10 h of one thread, 4 standardized frozen rows x 6 runs
# x 4-6 min ≈ 2 h, 3 encoders x 2 seeds x 40 min = 4 h: ≈ 8 h on two lanes, the 8 hours (7 h when the
# encoders are already trained; the raw frozen rows add 1 h).
CPU_GAMES = ("Boxing", "Seaquest", "MsPacman")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """An RL protocol: its games, agent steps per run, and the configs every RL run is built from.
    Each protocol's runs live in their own folder (``<out>/rl_<name>/``), so their caches never mix."""

    games: tuple[str, ...]
    agent_steps: int
    configs: tuple[str, ...]


PROTOCOLS = {
    "cpu": Protocol(CPU_GAMES, 20_000, ("atari/finetune.yaml", "atari/cpu_protocol.yaml")),
    # The same games at Atari-100k's 100 000 steps, for the frozen rows (cached features: ~25 min a run on
    # one thread; a fine-tuned one would take ~3 h): does a longer budget separate the encoders?
    "cpu100k": Protocol(CPU_GAMES, 100_000, ("atari/finetune.yaml", "atari/cpu_protocol.yaml", "atari/cpu_100k.yaml")),
    # Atari-100k as published (Kaiser et al. 2020; DrQ(ε): Agarwal et al. 2021): the 26 games, 100 000 agent
    # steps, 100 evaluation games to the end; a GPU run (~26 games x 3 seeds x 9 rows x 98 400 updates).
    "atari100k": Protocol(tuple(ATARI_100K_SCORES), 100_000, ("atari/finetune.yaml", "atari/atari100k.yaml")),
}


def checkpoint(out: Path, key: str, seed: int) -> Path:
    return run_dir(out, key, seed) / "checkpoints" / "last.ckpt"


def encoder_fingerprint(ckpt: Path) -> str:
    """A hash of the encoder weights in ``ckpt``: stored with every result, so that a result measured
    on an encoder retrained by a later session can be told from one measured on the first training."""
    from palm_lightning.checkpoints import load_network

    digest = hashlib.sha256()
    for name, tensor in sorted(load_network(ckpt, kind="encoder").state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def read_json(path: Path | None) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path is not None and path.is_file() else None


def write_json(path: Path | None, doc: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1) + "\n")


def config_label(config: Path) -> str:
    return config.resolve().relative_to(ROOT).as_posix() if config.resolve().is_relative_to(ROOT) else str(config)


def train_encoder(row: Row, seed: int, out: Path, data_dir: str) -> Path:
    """Train (or resume) one encoder run; the frame-trained baselines keep the frames' own seed."""
    palm = row.configs[0].startswith("palm")
    return train(row, seed, out, data_dir, seed_data=palm)


def architecture_file(out: Path, key: str) -> Path:
    """An encoder file with row ``key``'s architecture, for the rows that draw their own initial weights
    (``random_encoder``, ``scratch``): built from the row's configs, without training it (the file's
    weights are never read), so those rows need no 40-minute PALM run on a fresh machine."""
    from palm_lightning.checkpoints import save_network
    from palm_lightning.cli import PalmCLI

    path = out / "architecture" / f"{key}_encoder.pt"
    if not path.is_file():
        configs = [arg for config in ROW_BY_KEY[key].configs for arg in ("--config", str(CONFIGS / config))]
        with torch.random.fork_rng():  # the configs' seed_everything must not move the caller's draws
            cli = PalmCLI(args=[*configs, "--trainer.logger", "false"], run=False)
        save_network(cli.model.encoder, path, kind="encoder")
    return path


def require(out: Path, key: str, seed: int, train_missing: bool, data_dir: str) -> Path:
    if not finished(out, key, seed):
        if not train_missing:
            sys.exit(f"{run_dir(out, key, seed)} is not trained: run with --train")
        train_encoder(ROW_BY_KEY[key], seed, out, data_dir)
    return checkpoint(out, key, seed)


# --- the state probe ---------------------------------------------------------------------------------
def probe_encoder(row: Row, seed: int, out: Path, train_missing: bool, data_dir: str) -> tuple[str, bool]:
    """The probe's ``encoder`` argument and ``random_init`` for a row."""
    if row.encoder == "pixels":
        return "pixels", False
    if row.encoder.startswith("random:"):
        return str(architecture_file(out, row.encoder.split(":", 1)[1])), True
    return str(require(out, row.key, seed, train_missing, data_dir)), False


def run_probe(
    row: Row,
    seed: int,
    out: Path,
    config: Path,
    train_missing: bool,
    data_dir: str,
    force: bool,
    standardize: bool = False,
    store: Path | None = None,
) -> dict[str, Any]:
    """The probe's results for one row and seed: from ``store`` (committed; only a result of the same
    probe config), else the row's run directory; measured when neither has it, and written to both."""
    import lightning as L
    from lightning.pytorch.loggers import TensorBoardLogger

    from palm_lightning.datamodules import AtariFramesDataModule
    from palm_lightning.models import AtariStateProbe

    version = "probe_standardized" if standardize else "probe"
    cache = run_dir(out, row.key, seed) / f"{version}.json"
    suffix = "_standardized" if standardize else ""
    kept = None if store is None else store / "probe" / f"{row.key}_s{seed}{suffix}.json"
    if not force:
        found = read_json(kept)
        if found is not None and found.get("probe_config") == config_label(config):
            return found
        found = read_json(cache)
        if found is not None:
            write_json(kept, {**found, "probe_config": config_label(config)})
            return found
    encoder, random_init = probe_encoder(row, seed, out, train_missing, data_dir)
    spec = yaml.safe_load(config.read_text())
    data_args = {**spec["data"]["init_args"], "data_dir": data_dir, "serve_ram": True}
    model_args = {**spec["model"]["init_args"], "encoder": encoder, "random_init": random_init, "seed": seed}
    if encoder != "pixels":
        model_args["image_shape"] = None
    model_args["pixel_pool"] = PIXEL_POOL if encoder == "pixels" else 1
    model_args["standardize"] = standardize
    L.seed_everything(seed)  # the random encoder's draw
    start = time.time()
    model = AtariStateProbe(**model_args)
    datamodule = AtariFramesDataModule(**data_args)
    logger = TensorBoardLogger(str(out), name=f"{row.key}_s{seed}", version=version)
    L.Trainer(logger=logger, enable_progress_bar=False, enable_checkpointing=False, accelerator="auto", devices=1).test(
        model, datamodule=datamodule
    )
    results = {
        **model.results,
        "seconds": round(time.time() - start),
        "encoder": encoder,
        "random_init": random_init,
        "pixel_pool": model_args["pixel_pool"],
        "standardize": standardize,
        "probe_config": config_label(config),
        "encoder_sha": None if encoder == "pixels" or random_init else encoder_fingerprint(Path(encoder)),
    }
    write_json(cache, results)
    write_json(kept, results)
    print(f"probe {row.key} seed {seed}: F1 {results.get('mean_f1', float('nan')):.3f} ({results['seconds']} s)")
    return results


# --- RL fine-tuning ------------------------------------------------------------------------------------
def rl_run(
    rl: RLRow,
    game: str,
    seed: int,
    out: Path,
    protocol: str,
    agent_steps: int,
    overrides: list[str],
    train_missing: bool,
    data_dir: str,
    store: Path | None = None,
) -> dict[str, Any]:
    """Train (or read) one DrQ(ε) run of ``protocol`` and return its scores: from ``store``
    (committed), else the run's ``scores.json``; a new run's scores are written to both, with the
    fingerprint of the encoder it started from (``encoder_sha``; ``None`` for a random init)."""
    name = f"{rl.key}_{game}_s{seed}"
    rl_out = out / f"rl_{protocol}"
    run = rl_out / name / "version_0"
    cache, kept = rl_result_paths(out, store, protocol, name)
    found = found_scores(cache, kept, agent_steps)
    if found is not None:
        return found
    if not train_missing:
        sys.exit(f"{run} is not trained: run with --rl --train")
    if rl.encoder == "scratch":
        encoder = architecture_file(out, "palm_apt")
    else:
        encoder = require(out, rl.encoder, seed, train_missing, data_dir)
    seed_steps = 1600  # DrQ(ε)'s min replay history (configs/atari/finetune.yaml)
    args = [
        "--data.init_args.game",
        game,
        "--data.init_args.screen_size",
        str(SCREEN),
        "--data.init_args.seed",
        str(seed),
        "--trainer.max_steps",
        str(agent_steps - seed_steps),
        "--model.init_args.encoder",
        str(encoder),
        "--model.init_args.random_init",
        str(rl.encoder == "scratch").lower(),
        "--model.init_args.freeze_encoder",
        str(rl.freeze).lower(),
        *(["--model.init_args.agent.standardize_features", "true"] if rl.standardize else []),
        *overrides,
    ]
    trained = train(Row(rl.key, rl.title, PROTOCOLS[protocol].configs), seed, rl_out, None, name, tuple(args), False)
    scores = {**read_scores(trained.parent.parent, game), "agent_steps": agent_steps}
    scores["encoder_sha"] = None if rl.encoder == "scratch" else encoder_fingerprint(encoder)
    write_json(cache, scores)
    write_json(kept, scores)
    return scores


def rl_result_paths(out: Path, store: Path | None, protocol: str, name: str) -> tuple[Path, Path | None]:
    """Where RL run ``name``'s scores live: its run's ``scores.json`` and the store's copy (``None``: no store)."""
    kept = None if store is None else store / f"rl_{protocol}" / f"{name}.json"
    return out / f"rl_{protocol}" / name / "version_0" / "scores.json", kept


def found_scores(cache: Path, kept: Path | None, agent_steps: int) -> dict[str, Any] | None:
    """An RL run's scores from the store (``kept``), else its run's ``scores.json`` (copied to the
    store); ``None`` when neither has them. A result of another budget stops the script."""
    for path in (kept, cache):
        scores = read_json(path)
        if scores is None:
            continue
        if scores.get("agent_steps") != agent_steps:
            sys.exit(
                f"{path} ran {scores.get('agent_steps')} agent steps, not {agent_steps}: give the same --agent-steps, "
                "or another --out and --store for the new budget"
            )
        if path == cache:
            write_json(kept, scores)
        return scores
    return None


def rl_minutes(rl: RLRow, seed: int, args: argparse.Namespace) -> float:
    """Estimated minutes of one RL run, with its encoder's training where that is still to do."""
    minutes = MINUTES_PER_1K_AGENT_STEPS[rl.freeze] * args.agent_steps / 1000
    if rl.encoder != "scratch" and not finished(args.out, rl.encoder, seed):
        minutes += ENCODER_MINUTES
    return minutes


def rl_worker(jobs: list[tuple[RLRow, str, int]], args: argparse.Namespace, store: Path | None) -> list[str]:
    """Train the RL runs ``jobs`` (row, game, seed) that are not found yet, shared with any other
    worker running the same command (:mod:`worker_claims`): first the runs no other worker holds
    whose encoder is trained or free to train here (a worker trains an encoder under its own lock,
    the others meanwhile take runs that do not need it), then, waiting, the rest, except the runs another
    worker holds that could not end by ``args.stop_by`` (waiting for them would idle this lane). Returns the
    runs left to a later call because ``args.stop_by`` comes before their estimate ends."""
    rl_out = args.out / f"rl_{args.protocol}"
    pending = list(jobs)
    left: list[str] = []

    def fits(rl: RLRow, seed: int) -> bool:
        return args.stop_by is None or time.time() + 60 * rl_minutes(rl, seed, args) <= args.stop_by

    for wait in (False, True):
        deferred = []
        for rl, game, seed in pending:
            name = f"{rl.key}_{game}_s{seed}"
            # Waiting on a run that could not end by --stop-by anyway would idle the lane until its holder
            # is done: leave it to the holder, which finishes or reports it.
            with worker_claims.claimed(rl_out / f"{name}.lock", wait and fits(rl, seed)) as ours:
                if not ours:
                    if not wait:
                        deferred.append((rl, game, seed))
                    continue
                if found_scores(*rl_result_paths(args.out, store, args.protocol, name), args.agent_steps) is not None:
                    continue
                if not fits(rl, seed):
                    left.append(name)  # would be cut by the session's end: a later call runs it
                    continue
                if rl.encoder != "scratch" and not finished(args.out, rl.encoder, seed):
                    lock = run_dir(args.out, rl.encoder, seed).parent.with_suffix(".lock")
                    with worker_claims.claimed(lock, wait) as mine:  # fits() above counted the encoder's time
                        if not mine:
                            deferred.append((rl, game, seed))
                            continue
                        if not finished(args.out, rl.encoder, seed):  # the holder may have trained it
                            train_encoder(ROW_BY_KEY[rl.encoder], seed, args.out, args.data_dir)
                overrides = args.rl_override
                rl_run(rl, game, seed, args.out, args.protocol, args.agent_steps, overrides, True, args.data_dir, store)
        pending = deferred
    return left


def probe_row_name(key: str, kind: str, kinds: list[str]) -> str:
    """A probe row's name: the row's key, with its features named when the table has both kinds."""
    return key if len(kinds) == 1 else f"{key} ({kind} features)"


def probe_table(
    per_row: dict[str, dict[str, list[float]]], kinds: list[str], seeds: list[int], command: str
) -> dict[str, Any]:
    """The probe table in the docs/results JSON shape; raw and standardized rows share one table."""
    title = "AtariARI state probe" + (" on standardized features" if kinds == ["standardized"] else "")
    both = "; raw features (AtariARI's recipe) and standardized" if len(kinds) > 1 else ""
    return {
        "name": f"{title}: weighted F1 (%) per game and mean, seeds {seeds}{both}",
        "command": command,
        "rows": [
            {"name": name, "metrics": {f"f1_{g}": summary(v) for g, v in by_game.items()}}
            for name, by_game in per_row.items()
        ],
    }


def merged_tables(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` with each table of ``new`` merged into the one of its name, in its place (so a regenerated
    table's diff is its own), and the tables of new names at the end.

    Merging is per row: a row of the new table replaces the old row of its name, old rows it does not
    name stay (a command run for a few rows must not drop the others), rows of new names come last.
    When old rows stay, the command becomes both commands: together they rebuild the table."""
    by_name = {t["name"]: t for t in new}
    merged = []
    for table in old:
        update = by_name.pop(table["name"], None)
        if update is None:
            merged.append(table)
            continue
        fresh = {row["name"]: row for row in update["rows"]}
        kept_old = any(row["name"] not in fresh for row in table["rows"])
        rows = [fresh.pop(row["name"], row) for row in table["rows"]]
        command = update["command"]
        earlier = table.get("command", "").split("; ")
        if kept_old and earlier != [""]:
            command = "; ".join(earlier if command in earlier else [*earlier, command])
        merged.append({**update, "command": command, "rows": rows + list(fresh.values())})
    return merged + [t for t in new if t["name"] in by_name]


def read_scores(run: Path, game: str) -> dict[str, Any]:
    """The last evaluation's mean game score of a finished run, raw and human-normalised, and every
    evaluation before it (the run's learning curve)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if "eval/episode_return" not in tags:
        raise RuntimeError(f"{run} logged no eval/episode_return: did the run finish?")
    evaluations = acc.Scalars("eval/episode_return")
    score = evaluations[-1].value
    train_scores = acc.Scalars("train/episode_return") if "train/episode_return" in tags else []
    return {
        "game": game,
        "eval_return": score,
        "eval_hns": human_normalized_score(game, score),
        "train_return_last": train_scores[-1].value if train_scores else None,
        "train_episodes_logged": len(train_scores),
        "eval_curve": [[e.step, e.value] for e in evaluations],  # every evaluation (update, mean score)
        "train_curve": [[e.step, e.value] for e in train_scores],  # every training game (update, score)
    }


def late_return(curve: list[list[float]]) -> float:
    """The mean score of a run's evaluations in its second half (after half its last evaluation's
    updates): at the CPU protocol the last two, 20 games. One 10-game evaluation of Boxing moves by
    ±10 between neighbouring points, so this second reading of the final score halves the games'
    share of the noise; the table's first reading stays the last evaluation (Atari-100k's)."""
    if not curve:
        raise ValueError("no evaluations in the run's curve")
    return statistics.mean(second_half(curve, curve[-1][0]))


def second_half(curve: list[list[float]], last_update: float) -> list[float]:
    """The values of ``curve`` ([update, value] pairs) logged after half of ``last_update``."""
    return [value for step, value in curve if step > last_update / 2]


def late_train_return(scores: dict[str, Any]) -> float | None:
    """The mean score of the training games that ended in the run's second half (after half its last
    evaluation's updates), or ``None`` for a result stored before ``train_curve`` was. A third reading of
    the final score: the agent plays them at ε 0.01 while it learns, not at the evaluation's ε, but at
    100 000 steps there are ~50 (Boxing) to ~80 (MsPacman) of them against the evaluations' 30."""
    curve = scores.get("train_curve")
    if curve is None:
        return None
    late = second_half(curve, scores["eval_curve"][-1][0])
    return statistics.mean(late) if late else None


def iqm(values: list[float]) -> float:
    """Interquartile mean (Agarwal et al. 2021): the mean of the middle 50% of the sorted values,
    with fractional weights at the edges when the count is not a multiple of 4."""
    x = sorted(values)
    n = len(x)
    if n == 0:
        return float("nan")
    lo, hi = 0.25 * n, 0.75 * n
    total = 0.0
    for i, v in enumerate(x):
        weight = max(0.0, min(i + 1, hi) - max(i, lo))
        total += weight * v
    return total / (hi - lo)


def summary(values: list[float]) -> dict[str, float | int | None]:
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else None,
        "n": len(values),
    }


def cell(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    if not values:
        return "–"
    std = statistics.stdev(values) * scale if len(values) > 1 else 0.0
    return f"{statistics.mean(values) * scale:.{digits}f} ± {std:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1],
        help="the issue's minimum, which the 8-hour CPU budget is sized for; add 2 for its aim of three",
    )
    parser.add_argument("--rows", nargs="+", default=[r.key for r in ROWS], choices=list(ROW_BY_KEY))
    parser.add_argument("--rl-rows", nargs="+", default=list(DEFAULT_RL_ROWS), choices=list(RL_ROW_BY_KEY))
    parser.add_argument("--train", action="store_true", help="train (or resume) what is missing")
    parser.add_argument("--probe", action="store_true", help="the state-probe table")
    parser.add_argument("--probe-config", type=Path, default=CONFIGS / "eval" / "atari_probe.yaml")
    parser.add_argument("--rl", action="store_true", help="the RL fine-tuning table")
    parser.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default="cpu",
        help="RL protocol: the CPU table, its frozen rows at 100k steps, or Atari-100k (a GPU)",
    )
    parser.add_argument("--games", nargs="+", help="RL games (gymnasium names; default: the protocol's)")
    parser.add_argument("--agent-steps", type=int, help="agent steps per RL run (default: the protocol's)")
    parser.add_argument(
        "--stop-by",
        type=worker_claims.stop_by_clock,
        help="with --rl --train: start only the RL runs estimated to end by HH:MM (local time); leave the rest",
    )
    parser.add_argument("--rl-override", nargs="*", default=[], help="extra CLI arguments for every RL run")
    parser.add_argument("--force-eval", action="store_true", help="recompute cached probe results")
    parser.add_argument("--standardize", action="store_true", help="probe standardized features (see above)")
    parser.add_argument(
        "--features",
        nargs="+",
        choices=["raw", "standardized"],
        help="the probe's features, one table for both (default: raw; --standardize: standardized)",
    )
    parser.add_argument("--json", type=Path, help="write the tables in the docs/results JSON shape")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "atari_table")
    parser.add_argument("--store", type=Path, default=STORE, help="committed results, read first ('none': off)")
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    args = parser.parse_args()
    if args.standardize and args.features not in (None, ["standardized"]):
        parser.error("--standardize is --features standardized; give --features raw standardized for both")
    args.features = list(dict.fromkeys(args.features or (["standardized"] if args.standardize else ["raw"])))
    protocol = PROTOCOLS[args.protocol]
    args.games = args.games or list(protocol.games)
    args.agent_steps = args.agent_steps or protocol.agent_steps
    args.out.mkdir(parents=True, exist_ok=True)
    store = None if str(args.store) == "none" else args.store
    started = time.time()
    tables: list[dict[str, Any]] = []
    command = "python -m experiments.atari_table " + " ".join(sys.argv[1:])

    if not args.probe and not args.rl:  # training only
        if not args.train:
            parser.error("nothing to do: give --train, --probe and/or --rl")
        for seed in args.seeds:
            for key in args.rows:
                row = ROW_BY_KEY[key]
                if row.configs:
                    train_encoder(row, seed, args.out, args.data_dir)
                elif row.encoder.startswith("random:"):
                    architecture_file(args.out, row.encoder.split(":", 1)[1])

    if args.probe:
        per_row: dict[str, dict[str, list[float]]] = {}
        for kind in args.features:
            for key in args.rows:
                name = probe_row_name(key, kind, args.features)
                for seed in args.seeds:
                    found = run_probe(
                        ROW_BY_KEY[key],
                        seed,
                        args.out,
                        args.probe_config,
                        args.train,
                        args.data_dir,
                        args.force_eval,
                        kind == "standardized",
                        store,
                    )
                    for game, result in found.items():
                        if isinstance(result, dict) and "mean_f1" in result:
                            per_row.setdefault(name, {}).setdefault(game, []).append(100 * result["mean_f1"])
                    per_row.setdefault(name, {}).setdefault("mean", []).append(100 * found["mean_f1"])
        games = sorted({g for by_game in per_row.values() for g in by_game if g != "mean"})
        print("\n| encoder | " + " | ".join(games) + " | mean |\n|---|" + "---:|" * (len(games) + 1))
        for name, by_game in per_row.items():
            print(f"| {name} | " + " | ".join(cell(by_game.get(g, [])) for g in [*games, "mean"]) + " |")
        tables.append(probe_table(per_row, args.features, args.seeds, command))

    if args.rl:
        if args.train:
            jobs = [(RL_ROW_BY_KEY[k], g, seed) for k in args.rl_rows for g in args.games for seed in args.seeds]
            left = rl_worker(jobs, args, store)
            if left:
                print(
                    f"--stop-by: {len(left)} RL runs would end too late and were left for a later call: "
                    + ", ".join(left)
                )
                return
        per_rl: dict[str, dict[str, list[float]]] = {}
        hns: dict[str, list[float]] = {}
        late_hns: dict[str, list[float]] = {}
        late_train_hns: dict[str, list[float]] = {}
        for key in args.rl_rows:
            for game in args.games:
                for seed in args.seeds:
                    found = rl_run(
                        RL_ROW_BY_KEY[key],
                        game,
                        seed,
                        args.out,
                        args.protocol,
                        args.agent_steps,
                        args.rl_override,
                        args.train,
                        args.data_dir,
                        store,
                    )
                    late = late_return(found["eval_curve"])
                    per_rl.setdefault(key, {}).setdefault(f"return_{game}", []).append(found["eval_return"])
                    per_rl[key].setdefault(f"hns_{game}", []).append(found["eval_hns"])
                    per_rl[key].setdefault(f"late_return_{game}", []).append(late)
                    hns.setdefault(key, []).append(found["eval_hns"])
                    late_hns.setdefault(key, []).append(human_normalized_score(game, late))
                    late_train = late_train_return(found)
                    if late_train is not None:
                        per_rl[key].setdefault(f"late_train_return_{game}", []).append(late_train)
                        late_train_hns.setdefault(key, []).append(human_normalized_score(game, late_train))
        # the training games' reading only for rows whose every run stored its train_curve
        late_train_hns = {k: v for k, v in late_train_hns.items() if len(v) == len(hns[k])}
        for key, by_metric in per_rl.items():
            if key not in late_train_hns:
                for game in args.games:
                    by_metric.pop(f"late_train_return_{game}", None)
        readings = [("last evaluation", "return", hns), ("second half", "late_return", late_hns)]
        if late_train_hns:
            readings.append(("training games, second half", "late_train_return", late_train_hns))
        for title, prefix, normalized in readings:
            columns = " | ".join(args.games)
            print(f"\n{title}:\n| agent | {columns} | IQM HNS |\n|---|" + "---:|" * (len(args.games) + 1))
            for key, by_metric in per_rl.items():
                if key not in normalized:
                    continue
                cells = [cell(by_metric[f"{prefix}_{g}"]) for g in args.games]
                print(f"| {key} | " + " | ".join(cells) + f" | {iqm(normalized[key]):.3f} |")
        tables.append(
            {
                "name": f"DrQ(ε) on {', '.join(args.games)}, {args.agent_steps} agent steps, seeds {args.seeds}: "
                "evaluation game score and human-normalised score (hns); iqm_hns over every (game, seed); "
                "late_*: the mean of the evaluations in the run's second half (late_return)"
                + ("; late_train_*: of the training games in it (late_train_return)" if late_train_hns else ""),
                "command": command,
                "rows": [
                    {
                        "name": key,
                        "metrics": {
                            **{m: summary(v) for m, v in by_metric.items()},
                            "iqm_hns": {"mean": iqm(hns[key]), "std": None, "n": len(hns[key])},
                            "late_iqm_hns": {"mean": iqm(late_hns[key]), "std": None, "n": len(late_hns[key])},
                            **(
                                {"late_train_iqm_hns": {"mean": iqm(v), "std": None, "n": len(v)}}
                                if (v := late_train_hns.get(key))
                                else {}
                            ),
                        },
                    }
                    for key, by_metric in per_rl.items()
                ],
            }
        )

    if args.json and tables:
        doc = json.loads(args.json.read_text()) if args.json.is_file() else {"tables": []}
        doc["tables"] = merged_tables(doc.get("tables", []), tables)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\n({time.time() - started:.0f} s; torch {torch.__version__})")


if __name__ == "__main__":
    main()
