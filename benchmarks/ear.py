"""EAR / multi-task SAC benchmarks: update speed against stable-baselines3, collection speed.

    python benchmarks/ear.py                       # all sections, 2 threads, CPU
    python benchmarks/ear.py --sections sac        # only ours vs stable-baselines3
    python benchmarks/ear.py --device cuda

Sections (each prints a table; ratios come from runs side by side in this process):

- ``sac``: gradient updates/s of our SAC update (:meth:`MultiTaskSAC.update`, batch sampled
  from our replay buffer) against stable-baselines3's ``SAC.train`` (batch sampled from its own
  buffer), same batch (256), same networks (256×256 policy and twin Q), on HalfCheetah-v5-sized
  data, no gradient clipping on either side. Target: ours ≥ 1.5× SB3, never below 1.0×.
  Needs ``pip install -c constraints.txt stable-baselines3`` (an optional benchmark dependency).
- ``multitask``: updates/s of EAR, OHE-SAC and MHMT-SAC at the authors' sizes (10 tasks, batch
  1280, 400-wide nets).
- ``collect``: environment steps/s of the multi-task stream's collection (random actions, written
  into the replay buffer) against a bare gymnasium ``SyncVectorEnv`` of the same environments.
  Target ≥ 0.8×. Also with EAR's policy acting (the rate of a real run's collection).
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings

import gymnasium
import numpy as np
import torch

from palm_lightning.agents.sac import SACConfig
from palm_lightning.datamodules.streams.multitask import MultiTaskDataModule
from palm_lightning.envs.families import make_task_env
from palm_lightning.models import EAR, MHMTSAC, OHESAC


def filled_datamodule(num_tasks: int, batch_per_task: int, steps: int, device: torch.device) -> MultiTaskDataModule:
    dm = MultiTaskDataModule(
        "halfcheetah_vel",
        tasks=list(range(num_tasks)),
        batch_size_per_task=batch_per_task,
        warmup_steps_per_task=steps,
        buffer_capacity_per_task=max(steps * 2, 1000),
    )
    dm.device = device
    dm.setup("fit")
    dm.warm_up()
    return dm


def updates_per_s(module, dm: MultiTaskDataModule, seconds: float) -> float:
    optimizer = module.configure_optimizers()
    for _ in range(5):
        module.update(dm.sample_batch(), optimizer)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        module.update(dm.sample_batch(), optimizer)
        done += 1
    return done / (time.perf_counter() - start)


def sb3_updates_per_s(seconds: float, device: torch.device) -> float:
    from stable_baselines3 import SAC

    env = gymnasium.make("HalfCheetah-v5")
    model = SAC(
        "MlpPolicy",
        env,
        batch_size=256,
        learning_starts=10_000,
        buffer_size=20_000,
        policy_kwargs={"net_arch": [256, 256]},
        device=str(device),
        verbose=0,
        seed=0,
    )
    model.learn(total_timesteps=2_000)  # fills the buffer; no training before learning_starts
    model.train(gradient_steps=5, batch_size=256)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.train(gradient_steps=20, batch_size=256)
        done += 20
    return done / (time.perf_counter() - start)


def bench_sac(device: torch.device, seconds: float, rounds: int) -> None:
    dm = filled_datamodule(1, 256, 2_000, device)
    ours_module = OHESAC(
        obs_dim=17,
        action_dim=6,
        num_tasks=1,
        agent=SACConfig(hidden_dim=256, q_layers=2, grad_clip=None),
        policy_layers=2,
    ).to(device)
    rows = []
    for r in range(rounds):  # interleaved, so drifts of the machine hit both sides alike
        ours = updates_per_s(ours_module, dm, seconds)
        sb3 = sb3_updates_per_s(seconds, device)
        rows.append((ours, sb3))
        print(f"round {r}: ours {ours:7.1f} upd/s   stable-baselines3 {sb3:7.1f} upd/s   ratio {ours / sb3:.2f}")
    ours, sb3 = (float(np.median([row[i] for row in rows])) for i in (0, 1))
    print("\n| SAC update, batch 256, 256×256 nets | updates/s |\n|---|---|")
    print(f"| palm_lightning (OHESAC, 1 task) | {ours:.1f} |\n| stable-baselines3 SAC | {sb3:.1f} |")
    print(f"| **ratio (target ≥ 1.5)** | **{ours / sb3:.2f}×** |\n")


def bench_multitask(device: torch.device, seconds: float) -> None:
    dm = filled_datamodule(10, 128, 400, device)
    print(
        "| multi-task SAC, 10 tasks, batch 1280, 400-wide | updates/s | env steps/s at 1 step per task per update |\n"
        "|---|---|---|"
    )
    for cls in (EAR, OHESAC, MHMTSAC):
        module = cls(obs_dim=17, action_dim=6, num_tasks=10).to(device)
        rate = updates_per_s(module, dm, seconds)
        print(f"| {cls.__name__} | {rate:.1f} | {10 * rate:.0f} |")
    print()


def bench_collect(device: torch.device, seconds: float, num_tasks: int) -> None:
    dm = filled_datamodule(num_tasks, 16, 200, device)
    n = dm.num_envs

    def stream_rate(policy) -> float:
        dm.policy = policy
        dm.seed_frames = 0 if policy is not None else 10**12
        dm.collect(10)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            dm.collect(50)
            done += 50 * n
        return done / (time.perf_counter() - start)

    def bare_rate() -> float:
        vec = gymnasium.vector.SyncVectorEnv(
            [functools.partial(make_task_env, "halfcheetah_vel", t) for t in range(num_tasks)]
        )
        vec.reset(seed=0)
        actions = vec.action_space
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(50):
                vec.step(actions.sample())
            done += 50 * n
        vec.close()
        return done / (time.perf_counter() - start)

    ear = EAR(obs_dim=17, action_dim=6, num_tasks=num_tasks).to(device)
    bare, ours = bare_rate(), stream_rate(None)
    bare2, ours2 = bare_rate(), stream_rate(None)
    bare, ours = (bare + bare2) / 2, (ours + ours2) / 2
    acting = stream_rate(ear.act)
    print(f"| collection, {num_tasks} HalfCheetahVel envs | env steps/s | vs bare |\n|---|---|---|")
    print(f"| gymnasium SyncVectorEnv, random actions | {bare:.0f} | 1.00 |")
    print(f"| our stream, random actions, into the buffer | {ours:.0f} | **{ours / bare:.2f}×** (target ≥ 0.8) |")
    print(f"| our stream, EAR policy acting | {acting:.0f} | {acting / bare:.2f}× |\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sections", nargs="+", default=["sac", "multitask", "collect"], choices=["sac", "multitask", "collect"]
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per cell")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of ours vs SB3")
    parser.add_argument("--collect-tasks", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {args.threads} threads, device {device}\n")
    if "sac" in args.sections:
        bench_sac(device, args.seconds, args.rounds)
    if "multitask" in args.sections:
        bench_multitask(device, args.seconds)
    if "collect" in args.sections:
        bench_collect(device, args.seconds, args.collect_tasks)


if __name__ == "__main__":
    main()
