"""PALM benchmarks: environment throughput, APT reward cost, update time and memory.

    python benchmarks/palm.py                      # all sections, 2 threads, CPU
    python benchmarks/palm.py --device cuda --envs 1 16 256 1024 4096
    python benchmarks/palm.py --sections env       # only the environment table

Sections (each prints a table; ratios are measured side by side in the same run):

- ``env``: frames/s of ``LatentManifold.step`` for N environments, against a bare generator
  forward ``G(z, c)`` at the same batch (target: env/bare time ≤ 1.15, the environment adds little
  to the decoder).
- ``apt``: APT's particle reward (cdist + top-k + normalisation) at batch 256 and 1024, and its
  share of one PALM update (the default config computes one reward per update).
- ``update``: time of one PALM update (``training_step``) and of the collection around it, with
  the default config's sizes, through a real ``Trainer`` on the streaming DataModule (each frame
  encoded once per update: the agent and the reward reuse the representation step's features).
- ``profile``: the parts of one update at the default sizes, timed alone on a fixed batch
  (representation step, the extra encoder pass of each path, reward, DDPG critic + actor), their
  FLOPs (``torch.utils.flop_counter``), and the achieved GFLOP/s beside a convolution and a matmul
  peak measured in the same run.
- ``memory``: resident memory (RSS) while the default run's stream fills a replay buffer and
  wraps around it (capacity reduced with ``--memory-capacity`` so it wraps in a short run): it
  must be flat once the buffer is full.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch

from palm_lightning import load_shipped_generator
from palm_lightning.agents.ddpg import DDPGConfig
from palm_lightning.envs.latent_manifold import LatentManifold
from palm_lightning.losses.apt import particle_reward


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_env(envs: list[int], device: torch.device, budget: float) -> None:
    generator = load_shipped_generator().to(device)
    print("\n## Environment step vs bare generator forward")
    print("| envs | env frames/s | bare G(z, c) frames/s | env / bare time |")
    print("|---:|---:|---:|---:|")
    for n in envs:
        env = LatentManifold(generator, num_envs=n, device=device, episode_length=10**9)
        env.reset()
        action = torch.rand(n, env.action_dim, device=device) * 2 - 1
        z = torch.randn(n, env.latent_dim, device=device)
        c = torch.randint(0, env.num_classes, (n,), device=device)

        def bare(z: torch.Tensor = z, c: torch.Tensor = c) -> None:
            with torch.no_grad():
                generator(z, c)

        probe = timed(bare, 1, device)
        repeats = max(3, min(50, int(budget / max(probe, 1e-6))))
        # Interleave to share any drift in machine load between the two.
        env_times, bare_times = [], []
        for _ in range(3):
            env_times.append(timed(functools.partial(env.step, action), repeats, device))
            bare_times.append(timed(bare, repeats, device))
        t_env, t_bare = min(env_times), min(bare_times)
        print(f"| {n} | {n / t_env:,.0f} | {n / t_bare:,.0f} | {t_env / t_bare:.3f} |", flush=True)


def bench_apt(device: torch.device, update_seconds: float | None, dim: int) -> None:
    # configs/palm.yaml's APT: k = 12, averaged, no running-mean scaling, one reward per update
    # (reward_window: first); the old "sum" window called it n times.
    print("\n## APT particle reward (k = 12, avg; configs/palm.yaml: one reward per update)")
    print("| batch | reward time (ms) | share of one update |")
    print("|---:|---:|---:|")
    for batch in (256, 1024):
        features = torch.randn(batch, dim, device=device)
        t = timed(functools.partial(particle_reward, features, k=12, normalizer=None, knn_clip=0.0), 30, device)
        share = f"{t / update_seconds:.1%} (1 reward/update)" if update_seconds and batch == 256 else "—"
        print(f"| {batch} | {t * 1e3:.2f} | {share} |", flush=True)


def make_run(device: torch.device, capacity: int, steps: int, callbacks: list) -> tuple:
    import lightning as L

    from palm_lightning.datamodules import LatentManifoldDataModule
    from palm_lightning.models import PALM

    # The default config's sizes (configs/palm.yaml), without the probe and the image logging; the
    # environments are stepped before every update (updates_per_step=1, not palm.yaml's 8) so that
    # each gap between updates times one collection.
    model = PALM(agent=DDPGConfig(hidden_dim=256), trajectory_every_n_updates=0)
    data = LatentManifoldDataModule(
        num_envs=16, batch_size=256, buffer_capacity=capacity, nstep=3, seed_frames=4000, updates_per_step=1
    )
    trainer = L.Trainer(
        max_steps=steps,
        accelerator=device.type,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        limit_val_batches=0,
    )
    return trainer, model, data


def bench_update(device: torch.device, steps: int, rounds: int = 2) -> float:
    """Best-of-``rounds`` median update time; prints the table."""
    results = [time_update(device, steps) for _ in range(rounds)]
    print("\n## One PALM update (default config sizes: batch 256, n-step 3, 16 environments)")
    print(f"({rounds} runs of {steps} updates; medians, then the best run)")
    print("| update (ms) | collection + sampling (ms) | whole loop (ms) | updates/s |")
    print("|---:|---:|---:|---:|")
    update, collect = min(results)
    loop = update + collect
    print(f"| {update * 1e3:.1f} | {collect * 1e3:.1f} | {loop * 1e3:.1f} | {1 / loop:.2f} |")
    return update


def time_update(device: torch.device, steps: int) -> tuple[float, float]:
    """Median seconds of one update (``training_step``) and of the collection between updates."""
    import lightning as L

    class Clock(L.Callback):
        def __init__(self) -> None:
            self.update: list[float] = []
            self.between: list[float] = []
            self._end: float | None = None

        def on_train_batch_start(self, *args) -> None:
            self._start = time.perf_counter()
            if self._end is not None:
                self.between.append(self._start - self._end)

        def on_train_batch_end(self, *args) -> None:
            self._end = time.perf_counter()
            self.update.append(self._end - self._start)

    clock = Clock()
    trainer, model, data = make_run(device, 100_000, steps, [clock])
    trainer.fit(model, data)
    skip = min(10, steps // 4)
    return statistics.median(clock.update[skip:]), statistics.median(clock.between[skip:])


def bench_profile(device: torch.device, repeats: int) -> None:
    """The parts of one update on a fixed batch, their FLOPs and the achieved GFLOP/s."""
    from torch.utils.flop_counter import FlopCounterMode

    from palm_lightning.agents.base import Transition
    from palm_lightning.models import PALM
    from palm_lightning.nn.blocks import frozen_batchnorm_stats
    from palm_lightning.rewards import RewardStep

    torch.manual_seed(0)
    model = PALM(agent=DDPGConfig(hidden_dim=256), trajectory_every_n_updates=0).to(device)  # configs/palm.yaml's sizes
    representation_opt, *agent_opts = model.configure_optimizers()
    agent_optimizers = dict(zip(model.agent_optimizer_names, agent_opts, strict=True))
    size, window = 256, 4  # batch 256, n-step 3
    images = torch.rand(size, window, *model.hp.image_shape, device=device) * 2 - 1
    actions = torch.rand(size, window - 1, model.hp.action_dim, device=device) * 2 - 1

    def representation_step() -> None:
        loss, _ = model.representation_loss(images[:, 0], images[:, 1], actions[:, 0])
        representation_opt.zero_grad(set_to_none=True)
        loss.backward()
        representation_opt.step()

    def encode_last_frame() -> torch.Tensor:  # o_t, o_{t+1} come from the representation step above
        with torch.no_grad():
            return model.encoder(images[:, -1])

    def encode_window() -> torch.Tensor:  # the previous path: all n+1 frames again
        with torch.no_grad():
            return model.encoder(images.flatten(0, 1))

    features = encode_window().view(size, window, -1)

    def reward() -> torch.Tensor:
        with torch.no_grad(), frozen_batchnorm_stats(model):
            particles = model.reward_features(features[:, [0, -1]].flatten(0, 1)).view(size, 2, -1)
            return model.intrinsic_reward(RewardStep(particles[:, 0], actions[:, 0], particles[:, 1]))

    intrinsic = reward()

    def agent_step() -> None:
        batch = Transition(features[:, 0], actions[:, 0], intrinsic, torch.ones(size, device=device), features[:, -1])
        model.agent.update(batch, 10_000, agent_optimizers)

    parts = [
        ("representation step: SimSiam on (o_t, o_{t+1}), forward + backward + Adam", representation_step, "both"),
        ("encoder pass for the agent/reward: o_{t+n} only (256 frames, no grad)", encode_last_frame, "current"),
        ("encoder pass for the agent/reward: all n+1 frames (1024 frames, no grad)", encode_window, "previous"),
        ("reward: projector on o_t, o_{t+n} + APT kNN", reward, "both"),
        ("agent: DDPG critic step, actor step, target update", agent_step, "both"),
    ]
    print("\n## The parts of one PALM update (default sizes, fixed batch of 256 windows, timed alone)")
    print("| part | path | time (ms) | GFLOP | GFLOP/s |")
    print("|---|---|---:|---:|---:|")
    totals = {"current": [0.0, 0.0], "previous": [0.0, 0.0]}
    for label, fn, path in parts:
        seconds = timed(fn, repeats, device)
        with FlopCounterMode(display=False) as counter:
            fn()
        gflop = counter.get_total_flops() / 1e9
        for key in ("current", "previous") if path == "both" else (path,):
            totals[key][0] += seconds
            totals[key][1] += gflop
        print(f"| {label} | {path} | {seconds * 1e3:.1f} | {gflop:.2f} | {gflop / seconds:.1f} |", flush=True)
    for key in ("previous", "current"):
        seconds, gflop = totals[key]
        print(f"| **sum of the parts** | {key} | {seconds * 1e3:.1f} | {gflop:.2f} | {gflop / seconds:.1f} |")
    conv_peak, matmul_peak = peak_gflops(device, repeats)
    print(
        f"\npeaks measured in this run: convolution {conv_peak:.1f} GFLOP/s (the encoder's 3×3, 32→32 "
        f"channels, batch 1024), matmul {matmul_peak:.1f} GFLOP/s (2048²); the current update achieves "
        f"{totals['current'][1] / totals['current'][0] / conv_peak:.0%} of the convolution peak",
        flush=True,
    )


def peak_gflops(device: torch.device, repeats: int) -> tuple[float, float]:
    """Achieved GFLOP/s of a large 3×3 convolution (the encoder's shape) and of a large matmul."""
    conv = torch.nn.Conv2d(32, 32, 3).to(device)
    x = torch.rand(1024, 32, 15, 15, device=device)
    a, b = torch.rand(2048, 2048, device=device), torch.rand(2048, 2048, device=device)

    def run_conv() -> None:
        with torch.no_grad():
            conv(x)

    conv_flops = 2 * 1024 * 32 * 13 * 13 * 32 * 9
    conv_rate = conv_flops / timed(run_conv, repeats, device) / 1e9
    matmul_rate = 2 * 2048**3 / timed(lambda: a @ b, repeats, device) / 1e9
    return conv_rate, matmul_rate


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def bench_memory(device: torch.device, capacity: int) -> None:
    import lightning as L

    class Memory(L.Callback):
        def __init__(self) -> None:
            self.samples: list[tuple[int, int, float]] = []

        def on_train_batch_end(self, trainer, module, *args) -> None:
            data = trainer.datamodule
            if int(module.updates) % 25 == 0:
                self.samples.append((int(module.updates), len(data.buffer), rss_mib()))

    memory = Memory()
    # Fill the buffer (after the 4000 seed frames), then wrap around it twice.
    steps = int(3 * capacity / 16)
    trainer, model, data = make_run(device, capacity, steps, [memory])
    trainer.fit(model, data)
    print(f"\n## Resident memory while the replay buffer ({capacity:,} frames) fills and wraps")
    print("| update | frames in buffer | RSS (MiB) |")
    print("|---:|---:|---:|")
    for i, (update, frames, rss) in enumerate(memory.samples):
        if i % max(1, len(memory.samples) // 12) == 0 or i == len(memory.samples) - 1:
            print(f"| {update} | {frames:,} | {rss:.0f} |")
    full = [rss for _, frames, rss in memory.samples if frames >= data.buffer.capacity]
    if len(full) >= 2:
        print(
            f"\nafter the buffer is full: RSS {min(full):.0f}–{max(full):.0f} MiB "
            f"(growth {max(full) - full[0]:+.0f} MiB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024])
    parser.add_argument("--sections", nargs="+", default=["env", "update", "profile", "apt", "memory"])
    parser.add_argument("--update-steps", type=int, default=60)
    parser.add_argument("--update-rounds", type=int, default=2, help="interleaved runs per path (update section)")
    parser.add_argument("--profile-repeats", type=int, default=10)
    parser.add_argument("--memory-capacity", type=int, default=20_000)
    parser.add_argument("--budget", type=float, default=0.5, help="seconds per timing in the env table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    update = None
    if "env" in args.sections:
        bench_env(args.envs, device, args.budget)
    if "update" in args.sections:
        update = bench_update(device, args.update_steps, args.update_rounds)
    if "profile" in args.sections:
        bench_profile(device, args.profile_repeats)
    if "apt" in args.sections:
        bench_apt(device, update, dim=256)
    if "memory" in args.sections:
        bench_memory(device, args.memory_capacity)


if __name__ == "__main__":
    main()
