"""Speed of the default conditional StyleGAN2: generator inference and one GAN training iteration.

What it measures
----------------
1. **Generator forward throughput.** The generator of ``configs/generator/fmnist.yaml`` (z 64,
   w 128, 10 classes, 32×32×1, channel_base 512, channel_max 128; freshly initialised — speed
   does not depend on the weights) in ``eval()`` mode under :func:`torch.inference_mode`, called
   as the package calls it, ``generator(z, c)`` (mapping + synthesis, constant noise, clamp), on
   inputs already on the device. For every batch size (default 1, 2, 4, …, 1024): ``--warmup``
   untimed calls, then ``--repeats`` timed repeats. One repeat runs the forward back to back
   ``k`` times and divides by ``k``; ``k`` is chosen once per batch size so that a repeat lasts at
   least ``--min-time`` seconds (as :mod:`timeit` does), which keeps sub-millisecond calls above
   timer and launch noise. On CUDA the device is synchronised before starting and before stopping
   the clock, so queued kernels are counted. The table reports the **median** repeat as
   ms/forward, images/s = batch / (s/forward), and images/s relative to the smallest batch size
   (batch 1 by default), all from the same run so the ratios are comparable.

2. **One GAN training iteration.** :class:`~palm_lightning.models.ConditionalStyleGAN` with the
   config's hyperparameters, trained by a real :class:`lightning.Trainer` (``logger=False``, no
   checkpointing, progress bar or model summary) on an in-memory ``DataLoader`` of random images
   in [-1, 1] and random labels, at the config's batch size (32) and twice it (64) by default.
   A real Trainer is used because ``training_step`` needs one (``self.optimizers()``,
   ``manual_backward``, ``self.log``) and because the Lightning overhead around the step is part
   of what a training iteration costs. A callback stamps the clock (after a CUDA synchronise) at
   ``on_train_batch_start`` and ``on_train_batch_end``:

   - *step* = start → end of the same batch: the whole ``training_step`` (D step, G step, EMA
     update, logging) plus Lightning's hooks around it;
   - *loop* = end → end of consecutive batches: the step plus fetching the batch from the
     in-memory loader and moving it to the device (no disk I/O or decoding, unlike real data).

   The first ``--train-warmup`` iterations are dropped (allocator, cuDNN and autograd warm-up;
   iteration 0 is an R1 iteration, so the double-backward path is warmed too). The module applies
   the lazy R1 penalty on iterations ``0, r1_interval, 2·r1_interval, …`` (every 16th) and folds it
   into that iteration's D step, so R1 iterations are slower. The reported **mean** is over
   ``--train-iterations`` consecutive iterations — use a multiple of ``r1_interval`` (default 32)
   so the window holds exactly the training schedule's share of R1 iterations and the mean is
   the **R1-amortised** cost. The means of R1 and non-R1 iterations are shown separately too.
   Note ``trainer.max_steps`` counts optimiser steps, two per iteration; the script checks that
   the callback saw exactly the iterations it asked for.

The header gives the device name, torch/Lightning versions, intra-op thread count and the
1-minute load average: on a shared CPU, anything else running (e.g. a training job) makes the
numbers meaningless, so check the load first.

How to run
----------
::

    python benchmarks/generator.py                               # CPU, full sweep
    python benchmarks/generator.py --device cuda
    python benchmarks/generator.py --threads 2 --repeats 10
    python benchmarks/generator.py --config-from configs/generator/fmnist.yaml
    python benchmarks/generator.py --batch-sizes 1 4 --repeats 2 --train-iterations 4  # smoke test

Without ``--config-from`` the model of ``configs/generator/fmnist.yaml`` is measured; with it,
``model.init_args`` and ``data.init_args.batch_size`` are read from that LightningCLI config.
``torch.set_float32_matmul_precision("high")`` is set as ``palm_lightning.cli.main`` does (TF32 on
recent GPUs; no effect on CPU). ``--train-batch-sizes`` with no values skips the training
measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

# Runnable as ``python benchmarks/generator.py`` from a checkout without installing the package.
_REPO_ROOT = Path(__file__).resolve().parents[1]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

import lightning as L  # noqa: E402  (after the sys.path insert above)

from palm_lightning.models import ConditionalStyleGAN  # noqa: E402  (after the sys.path insert above)
from palm_lightning.nn.stylegan import StyleGANGenerator  # noqa: E402  (after the sys.path insert above)

#: The generator config whose model and batch size are benchmarked unless --config-from says otherwise.
DEFAULT_CONFIG = _REPO_ROOT / "configs" / "generator" / "fmnist.yaml"
DEFAULT_BATCH_SIZE = 32
DEFAULT_FORWARD_BATCH_SIZES = [2**i for i in range(11)]  # 1 … 1024


# --- configuration ------------------------------------------------------------------------------
def load_config(path: str | None) -> tuple[dict[str, Any], int]:
    """``(model init_args, training batch size)`` from a LightningCLI YAML (default: the shipped
    generator's config); arguments it leaves out take the module's defaults."""
    import yaml

    with open(path or DEFAULT_CONFIG) as f:
        cfg = yaml.safe_load(f) or {}
    model_args = dict((cfg.get("model") or {}).get("init_args") or {})
    batch_size = ((cfg.get("data") or {}).get("init_args") or {}).get("batch_size", DEFAULT_BATCH_SIZE)
    return model_args, int(batch_size)


def _accepted_kwargs(cls: type[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``kwargs`` that ``cls.__init__`` accepts."""
    names = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return {k: v for k, v in kwargs.items() if k in names}


def build_generator(model_args: dict[str, Any], device: torch.device) -> StyleGANGenerator:
    """The generator with the config's sizes, in eval mode, on ``device``."""
    return StyleGANGenerator(**_accepted_kwargs(StyleGANGenerator, model_args)).to(device).eval()


# --- timing helpers -----------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """Human-readable name of the device (GPU model, or CPU model from /proc/cpuinfo)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's info banners and its small-dataset / few-workers warnings."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


# --- 1. generator forward -----------------------------------------------------------------------
@dataclass
class ForwardResult:
    batch_size: int
    ms_per_forward: float  # median over repeats
    images_per_s: float
    calls_per_repeat: int
    repeats_ms: list[float] = field(default_factory=list)


@torch.inference_mode()
def time_generator_forward(
    generator: StyleGANGenerator,
    batch_size: int,
    device: torch.device,
    repeats: int,
    warmup: int,
    min_time: float,
) -> ForwardResult:
    """Median seconds of ``generator(z, c)`` at ``batch_size`` (see the module docstring)."""
    z = torch.randn(batch_size, generator.latent_dim, device=device)
    c = torch.randint(0, generator.num_classes, (batch_size,), device=device)
    for _ in range(warmup):
        generator(z, c)
    # Calibrate the number of back-to-back calls per repeat from one synchronised call.
    _sync(device)
    t0 = time.perf_counter()
    generator(z, c)
    _sync(device)
    single = time.perf_counter() - t0
    calls = max(1, min(10_000, math.ceil(min_time / max(single, 1e-9)))) if min_time > 0 else 1
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(calls):
            generator(z, c)
        _sync(device)
        times.append((time.perf_counter() - t0) / calls)
    median = statistics.median(times)
    return ForwardResult(batch_size, median * 1e3, batch_size / median, calls, [t * 1e3 for t in times])


# --- 2. training iteration ----------------------------------------------------------------------
class IterationTimer(L.Callback):
    """Clock stamps (after a device synchronise) around every training batch."""

    def __init__(self, device: torch.device, r1_interval: int) -> None:
        self.device = device
        self.r1_interval = r1_interval
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.is_r1: list[bool] = []

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Same test as ConditionalStyleGAN.training_step uses to decide on the lazy R1 step.
        model = cast(ConditionalStyleGAN, pl_module)  # the module this callback times
        gamma = model.hp.r1_gamma
        self.is_r1.append(gamma > 0 and int(model.iterations) % self.r1_interval == 0)
        _sync(self.device)
        self.starts.append(time.perf_counter())

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        _sync(self.device)
        self.ends.append(time.perf_counter())


@dataclass
class TrainResult:
    batch_size: int
    iterations: int
    r1_iterations: int
    step_ms_mean: float  # R1-amortised when iterations is a multiple of r1_interval
    step_ms_median: float
    step_ms_r1: float  # mean over R1 iterations (nan if none)
    step_ms_no_r1: float  # mean over the others (nan if none)
    loop_ms_mean: float

    @property
    def images_per_s(self) -> float:
        return self.batch_size / (self.step_ms_mean / 1e3)


def time_training_iteration(
    model_args: dict[str, Any],
    batch_size: int,
    device: torch.device,
    iterations: int,
    warmup: int,
) -> TrainResult:
    """Mean wall time of one ``ConditionalStyleGAN`` iteration under a real Trainer."""
    model = ConditionalStyleGAN(**_accepted_kwargs(ConditionalStyleGAN, model_args))
    hp = model.hp
    total = warmup + iterations
    images = torch.rand(total * batch_size, hp.img_channels, hp.img_resolution, hp.img_resolution) * 2 - 1
    labels = torch.randint(0, hp.num_classes, (total * batch_size,))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(images, labels),
        batch_size=batch_size,
        shuffle=False,
        drop_last=True,
        num_workers=0,
        pin_memory=device.type == "cuda",
    )
    timer = IterationTimer(device, int(hp.r1_interval))
    with tempfile.TemporaryDirectory() as root, quiet_lightning():
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index or 0] if device.type == "cuda" else 1,
            max_steps=2 * total,  # global_step counts optimiser steps: D + G per iteration
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=root,
            callbacks=[timer],
        )
        trainer.fit(model, train_dataloaders=loader)
    if len(timer.starts) != total or len(timer.ends) != total or int(model.iterations) != total:
        raise RuntimeError(
            f"expected {total} training iterations, the timer saw {len(timer.starts)} "
            f"(module counted {int(model.iterations)})"
        )
    steps = [(e - s) * 1e3 for s, e in zip(timer.starts, timer.ends, strict=True)][warmup:]
    loops = [(timer.ends[i] - timer.ends[i - 1]) * 1e3 for i in range(max(warmup, 1), total)]
    r1 = timer.is_r1[warmup:]
    with_r1 = [t for t, flag in zip(steps, r1, strict=True) if flag]
    without = [t for t, flag in zip(steps, r1, strict=True) if not flag]
    return TrainResult(
        batch_size=batch_size,
        iterations=len(steps),
        r1_iterations=len(with_r1),
        step_ms_mean=statistics.fmean(steps),
        step_ms_median=statistics.median(steps),
        step_ms_r1=statistics.fmean(with_r1) if with_r1 else math.nan,
        step_ms_no_r1=statistics.fmean(without) if without else math.nan,
        loop_ms_mean=statistics.fmean(loops) if loops else math.nan,
    )


# --- report -------------------------------------------------------------------------------------
def header_line(device: torch.device) -> str:
    """One line: device, versions, thread count, load."""
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "n/a"
    parts = [
        f"device: {device_name(device)} ({device})",
        f"torch {torch.__version__}",
        f"lightning {L.__version__}",
        f"threads: {torch.get_num_threads()} (of {os.cpu_count()} CPUs)",
        f"load avg (1 min): {load}",
        f"matmul precision: {torch.get_float32_matmul_precision()}",
    ]
    return "# " + " | ".join(parts)


def busy_warning() -> str | None:
    """A warning line when the 1-minute load average says other work is competing for the CPU."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    cpus = os.cpu_count() or 1
    if load > 0.5 * cpus:
        return (
            f"> WARNING: load average {load:.2f} on {cpus} CPUs before starting: other processes are "
            "competing for the CPU (and for the GPU's host thread), so these timings are unreliable."
        )
    return None


def format_forward_table(results: list[ForwardResult]) -> str:
    """Markdown table: batch | ms/forward | images/s | relative images/s."""
    base = results[0]
    lines = [
        f"| batch | ms/forward | images/s | images/s vs batch {base.batch_size} |",
        "|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.batch_size} | {r.ms_per_forward:.3f} | {r.images_per_s:.1f} "
            f"| {r.images_per_s / base.images_per_s:.2f}× |"
        )
    return "\n".join(lines)


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def format_train_table(results: list[TrainResult]) -> str:
    """Markdown table of the training-iteration timings (ms per iteration unless stated)."""
    lines = [
        (
            "| batch | iterations (of which R1) | ms/iteration (mean) | median | mean R1 iteration "
            "| mean non-R1 iteration | loop ms/iteration (mean) | images/s (from mean) |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.batch_size} | {r.iterations} ({r.r1_iterations}) | {_ms(r.step_ms_mean)} "
            f"| {_ms(r.step_ms_median)} | {_ms(r.step_ms_r1)} | {_ms(r.step_ms_no_r1)} "
            f"| {_ms(r.loop_ms_mean)} | {r.images_per_s:.1f} |"
        )
    return "\n".join(lines)


# --- entry point --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=DEFAULT_FORWARD_BATCH_SIZES,
        help="generator forward batch sizes (default: 1 2 4 … 1024)",
    )
    p.add_argument("--repeats", type=int, default=10, help="timed repeats per batch size; the median is reported")
    p.add_argument("--warmup", type=int, default=3, help="untimed forward calls per batch size")
    p.add_argument(
        "--min-time",
        type=float,
        default=0.05,
        help="minimum seconds per repeat; short calls are looped to reach it (0 = one call)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    p.add_argument(
        "--config-from",
        default=None,
        help="LightningCLI YAML to read model.init_args and data batch_size from "
        "(default: configs/generator/fmnist.yaml)",
    )
    p.add_argument(
        "--train-batch-sizes",
        type=int,
        nargs="*",
        default=None,
        help="batch sizes for the training-iteration timing (default: config batch and 2×; empty to skip)",
    )
    p.add_argument(
        "--train-iterations",
        type=int,
        default=32,
        help="timed iterations; a multiple of r1_interval (16) gives the R1-amortised mean",
    )
    p.add_argument("--train-warmup", type=int, default=5, help="untimed training iterations before timing")
    args = p.parse_args(argv)
    if args.repeats < 1 or args.train_iterations < 1 or args.warmup < 0 or args.train_warmup < 0:
        p.error("--repeats and --train-iterations must be ≥ 1, warm-ups ≥ 0")
    if any(b < 1 for b in args.batch_sizes + (args.train_batch_sizes or [])):
        p.error("batch sizes must be ≥ 1")
    return args


def _progress(message: str) -> None:
    """Progress on stderr, so that stdout holds the markdown report alone."""
    print(f"[benchmark] {message} …", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark, print the markdown report and return it."""
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    model_args, config_batch = load_config(args.config_from)
    train_batches = args.train_batch_sizes
    if train_batches is None:
        train_batches = [config_batch, 2 * config_batch]
    r1_interval = int(model_args.get("r1_interval", 16))

    old_threads, old_precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    try:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        torch.set_float32_matmul_precision("high")  # as palm_lightning.cli.main
        torch.manual_seed(0)
        out = [header_line(device)]
        warning = busy_warning()
        out += [warning, ""] if warning else [""]
        out.append(
            "## Generator forward (eval, inference_mode; "
            f"z {model_args['z_dim']}, w {model_args['w_dim']}, {model_args['num_classes']} classes, "
            f"{model_args['img_channels']}×{model_args['img_resolution']}×{model_args['img_resolution']}, "
            f"channel_base {model_args['channel_base']}, channel_max {model_args['channel_max']}); "
            f"median of {args.repeats} repeats after {args.warmup} warm-up calls"
        )
        out.append("")
        generator = build_generator(model_args, device)
        forward = []
        for b in sorted(set(args.batch_sizes)):
            _progress(f"generator forward, batch {b}")
            forward.append(time_generator_forward(generator, b, device, args.repeats, args.warmup, args.min_time))
        del generator
        out.append(format_forward_table(forward))
        if train_batches:
            out += [
                "",
                f"## GAN training iteration (D step + G step + EMA, Lightning Trainer, manual optimisation); "
                f"mean of {args.train_iterations} iterations after {args.train_warmup} warm-up; "
                f"lazy R1 every {r1_interval} iterations folded into the D step"
                + (
                    " (mean is R1-amortised)"
                    if args.train_iterations % r1_interval == 0
                    else f" (NOT R1-amortised: {args.train_iterations} iterations is not a multiple of {r1_interval})"
                ),
                "",
            ]
            train = []
            for b in train_batches:
                _progress(f"training iterations, batch {b}")
                train.append(time_training_iteration(model_args, b, device, args.train_iterations, args.train_warmup))
            out.append(format_train_table(train))
            out.append("")
            out.append(
                "step = on_train_batch_start → on_train_batch_end; loop = batch end → next batch end "
                "(adds in-memory data loading and host→device copy)."
            )
    finally:
        torch.set_num_threads(old_threads)
        torch.set_float32_matmul_precision(old_precision)
    report = "\n".join(out)
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
