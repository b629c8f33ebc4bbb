"""Smoke-run each GPU-sized config for a bounded wall time and report its rate.

The GPU-sized configs (``configs/palm_gpu.yaml``, EAR and PEARL at the authors' sizes, the
Atari-100k overlay) were written on a CPU-only machine. When a GPU is lent for a few minutes, this
script checks that each of them trains on CUDA (its precision, its device placement, its first
validation) and measures updates per second, from which the full run's length is projected.

Each config runs in its own process, stopped by Lightning's ``max_time``, so one failure does not
hide the others. Rates come from the run's TensorBoard scalars (first to last logged step); peak
GPU memory from ``nvidia-smi`` polled once a second. Results: a table on stdout, and
``<out>/gpu_smoke.json`` with the logs beside it.

    python -m experiments.gpu_smoke --out /tmp/smoke            # every check
    python -m experiments.gpu_smoke --only palm_gpu --seconds 60
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@dataclass
class Check:
    """One GPU-sized config, the overrides that bound it, and its full length in updates."""

    name: str
    configs: list[str]
    seconds: int
    full_steps: int
    overrides: list[str] = field(default_factory=list)


def checks(probe_dir: str | None) -> list[Check]:
    """The GPU-sized configs. ``probe_dir`` points PALM's probe at a carried copy of Fashion-MNIST."""
    palm_probe = [] if probe_dir is None else [f"--data.init_args.probe_data.init_args.system_dir={probe_dir}"]
    return [
        Check("palm_gpu", ["configs/palm_gpu.yaml"], 120, 100_000, palm_probe),
        Check("ear_halfcheetah_vel", ["configs/ear/halfcheetah_vel.yaml"], 90, 200_000),
        Check("pearl_paper", ["configs/ear/halfcheetah_vel_pearl_paper.yaml"], 60, 1_000_000),
        Check(
            "atari100k_pong",
            ["configs/atari/finetune.yaml", "configs/atari/atari100k.yaml"],
            75,
            98_400,
        ),
    ]


class MemoryPoller(threading.Thread):
    """Polls ``nvidia-smi`` for the GPU memory in use; ``peak_mib`` is None where it cannot."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mib: int | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
                used = max(int(line) for line in out.split())
                self.peak_mib = used if self.peak_mib is None else max(self.peak_mib, used)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
            self.stopped.wait(1.0)


def read_scalars(log_dir: Path) -> tuple[int | None, float | None, dict[str, float]]:
    """Steps reached, the training rate, and the last value of every scalar.

    The rate is taken over the most often logged training tag, first to last point, so the warm-up
    collection and the first validation before it do not count against it.
    """
    runs = sorted(log_dir.glob("**/events.out.tfevents.*"))
    if not runs:
        return None, None, {}
    acc = EventAccumulator(str(runs[-1].parent), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if not tags:
        return None, None, {}
    last = {tag: acc.Scalars(tag)[-1].value for tag in tags}
    steps = max(acc.Scalars(tag)[-1].step for tag in tags)
    train_tags = [tag for tag in tags if tag.startswith("train/")] or tags
    series = max((acc.Scalars(tag) for tag in train_tags), key=len)
    elapsed = series[-1].wall_time - series[0].wall_time
    rate = (series[-1].step - series[0].step) / elapsed if len(series) > 1 and elapsed > 0 else None
    return steps, rate, last


def command(check: Check, log_dir: Path, seconds: int, extra: list[str]) -> list[str]:
    """The CLI call of one check: its configs, stopped after ``seconds`` of training."""
    cmd = [sys.executable, "-m", "palm_lightning", "fit"]
    for config in check.configs:
        cmd += ["--config", config]
    return [
        *cmd,
        f"--trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--trainer.enable_progress_bar=false",
        *check.overrides,
        *extra,
    ]


def run_check(check: Check, out: Path, runs: Path, seconds: int | None, extra: list[str]) -> dict:
    budget = seconds or check.seconds
    log_dir = runs / check.name
    cmd = command(check, log_dir, budget, extra)
    poller = MemoryPoller()
    poller.start()
    start = time.time()
    with open(out / f"{check.name}.log", "w") as log:
        try:
            # Setup (imports, warm-up collection, checkpoint writes) comes on top of max_time.
            rc = subprocess.run(cmd, check=False, stdout=log, stderr=subprocess.STDOUT, timeout=budget + 60).returncode
        except subprocess.TimeoutExpired:
            rc = None
    wall = time.time() - start
    poller.stopped.set()
    poller.join()
    result: dict[str, object] = {
        "name": check.name,
        "command": " ".join(cmd),
        "returncode": rc,
        "wall_s": round(wall, 1),
    }
    steps, rate, last = read_scalars(log_dir)
    result["peak_gpu_mib"] = poller.peak_mib
    result["steps"] = steps
    result["steps_per_s"] = None if rate is None else round(rate, 2)
    result["full_run_hours"] = round(check.full_steps / rate / 3600, 2) if rate else None
    result["last"] = last
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "runs/gpu_smoke")))
    parser.add_argument("--runs-dir", type=Path, help="TensorBoard logs (default: <out>/runs)")
    parser.add_argument("--only", nargs="*", help="names of the checks to run (default: all)")
    parser.add_argument("--seconds", type=int, help="max_time of every check (default: each its own)")
    parser.add_argument(
        "--extra", default="", help="overrides added to every command, e.g. '--trainer.accelerator=cpu'"
    )
    parser.add_argument("--probe-dir", help="a directory with Fashion-MNIST's gzipped IDX files for PALM's probe")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for check in checks(args.probe_dir):
        if args.only and check.name not in args.only:
            continue
        result = run_check(check, args.out, args.runs_dir or args.out / "runs", args.seconds, shlex.split(args.extra))
        results.append(result)
        (args.out / "gpu_smoke.json").write_text(json.dumps(results, indent=2))
        print(
            f"{result['name']:<22} rc={result['returncode']} wall={result['wall_s']:>6}s "
            f"steps={result.get('steps')} rate={result.get('steps_per_s')} /s "
            f"full={result.get('full_run_hours')} h peak_gpu={result['peak_gpu_mib']} MiB",
            flush=True,
        )


if __name__ == "__main__":
    main()
