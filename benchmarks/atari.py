"""Atari benchmarks: the real-game experience stream and the DrQ(ε) update, each against a reference.

    python benchmarks/atari.py                                   # stream and dqn, 1 thread, CPU
    python benchmarks/atari.py --sections stream --envs 1 4
    python benchmarks/atari.py --sections dqn --seconds 10 --rounds 3 --json dqn.json
    python benchmarks/atari.py --sections frozen                 # frozen vs fine-tuned (on request)

Sections (each prints a table; every ratio comes from rounds run side by side in this process: in
each round the sides take turns in short slices, so a change of the machine's load hits all of
them; the printed ratio is the median of the per-round ratios):

- ``stream``: ALE agent steps/s of :class:`~palm_lightning.datamodules.AtariGameDataModule`'s
  collection (``collect``: uniform random actions, every step written into the replay buffer,
  life-loss bookkeeping and resets included) against a bare gymnasium ``SyncVectorEnv`` of the same
  stack (``ALE/<Game>-v5`` at ``frameskip=1``, ``AtariPreprocessing`` 84² grayscale with a 4-frame
  skip and up to 30 no-ops, ``FrameStackObservation`` of 4) stepping random actions, same number
  of environments. Target ≥ 0.8×. One more row times the stream with the DrQ(ε) agent acting
  ε-greedily (a Q-network forward per step): the rate of a real fine-tuning run's collection.
- ``dqn``: updates/s of :class:`~palm_lightning.agents.DrQEpsilonAgent` (batch sampled from our
  replay buffer, then ``update`` with the optimiser :class:`~palm_lightning.models.AtariFinetune`
  builds) against stable-baselines3's ``DQN.train`` (batch sampled from its own n-step buffer),
  both on the CPU from pre-filled buffers, so only sampling + update is timed. Same network:
  AtariFinetune's scratch encoder (:class:`~palm_lightning.nn.encoders.DrQEncoder`, 84×84×4 →
  256) plugged into SB3 as a features extractor (``policy_kwargs``) and our dueling head
  (512-wide streams) as SB3's Q head (a ``DQNPolicy`` whose ``make_q_net`` builds it). Same
  optimiser (Adam, lr 1e-4, eps 1.5e-4), same loss (Huber: SB3's only loss and DrQ(ε)'s), batch
  32, 10-step returns, γ = 0.99. SB3's DQN always clips gradients (``max_grad_norm``, 10) and
  has neither double DQN nor augmentation, and ``train`` does no target update (it happens in
  ``_on_step``): the like-for-like row runs our agent the same way (``grad_clip: 10``,
  ``double_dqn: false``, no shift / intensity augmentation, no target copy in the timed updates).
  Target ≥ 1.0×, aim 1.3×. A third row times our agent as DrQ(ε) publishes it (double DQN,
  augmentation of both observations, target copied after every update, no clipping): more work
  per update than SB3's, shown for scale, not for the target. Needs stable-baselines3:
  ``pip install -c constraints.txt -e ".[bench]"``.

- ``frozen``: updates/s of :class:`~palm_lightning.agents.DrQEpsilonAgent` with a frozen encoder
  against the same agent fine-tuning it, for two encoders: AtariFinetune's scratch one (84×84×4)
  and a PALM-sized one (:class:`~palm_lightning.nn.encoders.DrQEncoder` of ``configs/palm_atari.yaml``,
  1×64×64, 32 channels, 4 layers, 256-d, widened to the 4-frame stack as AtariFinetune does).
  Sides: fine-tuned (DrQ(ε) as published), frozen with DrQ's augmentation kept
  (``frozen_augmentation: true``: two encoder forwards per update, no backward) and frozen on
  features cached in the replay buffer (the default: the update trains the head alone, the frames
  a batch draws for the first time are encoded in it). Every side writes one new frame into its
  buffer per update, as the stream does, so the cached side pays its steady-state encoding (about
  one frame per update); its cache is warm at the start (the state of a run past its first
  updates). DrQ(ε)'s defaults otherwise, the fused Adam AtariFinetune builds. No reference
  library: the ratios frozen / fine-tuned are the numbers.

The frames in the ``dqn`` and ``frozen`` buffers are random ``uint8`` stacks (the update's cost does not depend
on their content), with an episode end every ~100 steps so that both n-step samplers cut windows.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor, nn

from palm_lightning.agents.base import Transition
from palm_lightning.agents.drq_epsilon import DrQEpsilonAgent, DrQEpsilonConfig, DuelingHead
from palm_lightning.datamodules.streams.replay import ReplayBuffer
from palm_lightning.models.atari.finetune import AtariFinetune, expand_input_channels
from palm_lightning.nn.encoders import DrQEncoder

OBS_SHAPE = (4, 84, 84)  # Atari-100k: 4 stacked 84×84 grayscale frames
BENCH_HINT = 'pip install -c constraints.txt -e ".[bench]"'

Row = dict[str, Any]


def metric(value: float, n: int) -> dict[str, Any]:
    """One number in docs/results/benchmarks.json's shape (``mean`` holds the printed median)."""
    return {"mean": round(float(value), 4), "std": None, "n": n}


def machine_note() -> str:
    """Cores and load: the numbers of a shared machine are only comparable within one run."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    cores = os.cpu_count()
    busy = (
        " (other jobs are running: absolute rates are shared-CPU rates; compare the ratios)"
        if (os.getloadavg()[0] > 0.5)
        else ""
    )
    return f"# machine: {cores} cores, load average {load}{busy}"


def side_by_side(
    sides: dict[str, Callable[[], int]], seconds: float, rounds: int, chunk: float = 0.5
) -> dict[str, list[float]]:
    """Units per second of every side (each call returns the units it did), per round.

    Within a round the sides take turns in ``chunk``-second slices until each has run ``seconds``:
    on a shared machine the load moves within seconds, and fine turns spread it over all sides.
    """
    chunk = min(chunk, seconds)
    for step in sides.values():  # warm-up (allocations, first-call dispatch)
        step()
        step()
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        done = dict.fromkeys(sides, 0)
        spent = dict.fromkeys(sides, 0.0)
        while min(spent.values()) < seconds:
            for name, step in sides.items():
                start = time.perf_counter()
                while time.perf_counter() - start < chunk:
                    done[name] += step()
                spent[name] += time.perf_counter() - start
        for name in sides:
            rates[name].append(done[name] / spent[name])
    return rates


def ratio_of(rates: dict[str, list[float]], ours: str, reference: str) -> float:
    """The median over rounds of the per-round ratio (both sides of a round shared its load)."""
    return statistics.median(o / r for o, r in zip(rates[ours], rates[reference], strict=True))


# --- stream ---------------------------------------------------------------------------------------
def bare_vector_env(game: str, num_envs: int, seed: int) -> gymnasium.vector.SyncVectorEnv:
    """gymnasium alone: the same ALE v5 env and wrappers as the stream, in a ``SyncVectorEnv``."""
    import ale_py

    gymnasium.register_envs(ale_py)

    def make() -> gymnasium.Env:
        env = gymnasium.make(f"ALE/{game}-v5", frameskip=1, repeat_action_probability=0.0)
        env = gymnasium.wrappers.AtariPreprocessing(
            env, noop_max=30, frame_skip=4, screen_size=84, terminal_on_life_loss=False, grayscale_obs=True
        )
        return gymnasium.wrappers.FrameStackObservation(env, 4)

    vec = gymnasium.vector.SyncVectorEnv([make for _ in range(num_envs)])
    vec.reset(seed=seed)
    return vec


def bench_stream(game: str, envs: Sequence[int], seconds: float, rounds: int) -> dict[str, Any]:
    from palm_lightning.datamodules import AtariGameDataModule

    print(f"\n## Stream: {game} agent steps/s, our collection vs a bare gymnasium SyncVectorEnv")
    print(f"({rounds} rounds of {seconds:g} s per side, taking turns in 0.5 s slices; medians)")
    print("| envs | bare SyncVectorEnv, random | our stream, random, into replay | ours / bare | ours, DrQ(ε) acting |")
    print("|---:|---:|---:|---:|---:|")
    rows: list[Row] = []
    for n in envs:
        dm = AtariGameDataModule(game=game, num_envs=n, buffer_capacity=max(2 * n, 10_000), seed_frames=10**12)
        # The stream as a fine-tuning run drives it: DrQ(ε)'s ε-greedy policy (ε = 0.01 after its
        # schedule), one Q-network forward on the newest stacks per step; other emulators.
        acting = AtariGameDataModule(game=game, num_envs=n, buffer_capacity=max(2 * n, 2_000), seed_frames=0, seed=1)
        for data in (dm, acting):
            data.setup("fit")
        module = AtariFinetune(agent=DrQEpsilonConfig(epsilon_warmup=0, epsilon_decay_period=0))
        acting.attach_policy(module.build(dm.obs_shape, int(dm.env.action_space.n)).act)
        vec = bare_vector_env(game, n, seed=0)

        def collect(data: AtariGameDataModule, n: int = n) -> int:
            data.collect(20)
            return 20 * n

        def bare_steps(vec: gymnasium.vector.SyncVectorEnv = vec, n: int = n) -> int:
            for _ in range(20):
                vec.step(vec.action_space.sample())
            return 20 * n

        rates = side_by_side(
            {"bare": bare_steps, "ours": functools.partial(collect, dm), "acting": functools.partial(collect, acting)},
            seconds,
            rounds,
        )
        for closing in (vec, dm.env, acting.env):
            closing.close()
        bare_rate, ours_rate, acting_rate = (statistics.median(rates[k]) for k in ("bare", "ours", "acting"))
        ratio = ratio_of(rates, "ours", "bare")
        print(f"| {n} | {bare_rate:,.0f} | {ours_rate:,.0f} | **{ratio:.2f}×** | {acting_rate:,.0f} |", flush=True)
        rows.append(
            {
                "name": f"{game}, {n} envs",
                "metrics": {
                    "bare_syncvectorenv_steps_per_s": metric(bare_rate, rounds),
                    "our_stream_steps_per_s": metric(ours_rate, rounds),
                    "ours_over_bare": metric(ratio, rounds),
                    "our_stream_drq_acting_steps_per_s": metric(acting_rate, rounds),
                },
            }
        )
    print("(target: ours / bare ≥ 0.8)")
    return {"name": f"Atari stream vs bare gymnasium SyncVectorEnv ({game})", "rows": rows}


# --- dqn ------------------------------------------------------------------------------------------
def episode_ends(steps: int, rng: np.random.Generator) -> np.ndarray:
    """Where episodes end in the pre-filled buffers (about every 100 steps)."""
    return rng.random(steps) < 0.01


def our_buffer(frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, ends: np.ndarray) -> ReplayBuffer:
    """Our replay buffer (one environment), holding the random trajectory as the stream writes it."""
    buffer = ReplayBuffer(
        len(frames) + int(ends.sum()) + 8, 1, frames.shape[1:], (), obs_dtype=torch.uint8, action_dtype=torch.long
    )
    buffer.add(torch.from_numpy(frames[:1]), first=True)
    for t in range(1, len(frames)):
        buffer.add(
            torch.from_numpy(frames[t : t + 1]),
            torch.tensor([int(actions[t])]),
            torch.tensor([float(rewards[t])]),
            torch.tensor([bool(ends[t])]),
        )
        if ends[t]:
            buffer.add(torch.from_numpy(frames[t : t + 1]), first=True)
    return buffer


def make_ours(num_actions: int, like_sb3: bool) -> tuple[DrQEpsilonAgent, torch.optim.Optimizer]:
    """Our agent and the optimiser AtariFinetune gives it (scratch encoder on 84×84×4 stacks)."""
    settings = (
        DrQEpsilonConfig(double_dqn=False, shift_pad=0, intensity_scale=0.0, target_update_period=10**9, grad_clip=10.0)
        if like_sb3
        else DrQEpsilonConfig()
    )
    module = AtariFinetune(agent=settings)
    agent = module.build(OBS_SHAPE, num_actions)
    (optimizer,) = module.configure_optimizers()
    return agent, optimizer


def ours_update(agent: DrQEpsilonAgent, optimizer: torch.optim.Optimizer, buffer: ReplayBuffer) -> Callable[[], int]:
    """One sample + update, as AtariFinetune's ``training_step`` does it (without the logging)."""

    def step() -> int:
        b = buffer.sample(32, nstep=10, gamma=0.99)
        transition = Transition(b["obs"], b["action"], b["reward"], b["discount"], b["next_obs"])
        agent.update(transition, 10_000, {"q": optimizer})
        return 1

    return step


def make_sb3(num_actions: int, frames: np.ndarray, actions: np.ndarray, rewards: np.ndarray, ends: np.ndarray) -> Any:
    """stable-baselines3's DQN with our network, its n-step buffer filled with the same trajectory."""
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from stable_baselines3.dqn.policies import DQNPolicy, QNetwork

    class Encoder(BaseFeaturesExtractor):
        """AtariFinetune's scratch encoder; SB3 hands images in [0, 1], ours take [-1, 1]."""

        def __init__(self, observation_space: gymnasium.spaces.Box) -> None:
            encoder = DrQEncoder(OBS_SHAPE, 32, 4, 256, weight_init="orthogonal")
            super().__init__(observation_space, encoder.out_dim)
            self.encoder = encoder

        def forward(self, obs: Tensor) -> Tensor:
            out: Tensor = self.encoder(obs * 2.0 - 1.0)
            return out

    class DuelingQNetwork(QNetwork):
        """SB3's Q network with our dueling head in place of its MLP."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.q_net = DuelingHead(self.features_dim, int(self.action_space.n), 512)  # type: ignore[assignment,unused-ignore]  # SB3 may be absent (then Any)

    class DuelingPolicy(DQNPolicy):
        def make_q_net(self) -> QNetwork:
            net_args = self._update_features_extractor(self.net_args, features_extractor=None)
            return DuelingQNetwork(**net_args).to(self.device)

    class Spaces(gymnasium.Env):
        """Only the spaces: SB3 builds its buffer and networks from them; nothing is stepped."""

        observation_space = gymnasium.spaces.Box(0, 255, OBS_SHAPE, dtype=np.uint8)
        action_space = gymnasium.spaces.Discrete(num_actions)

        def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
            return np.zeros(OBS_SHAPE, dtype=np.uint8), {}

        def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
            return np.zeros(OBS_SHAPE, dtype=np.uint8), 0.0, False, False, {}

    model = DQN(
        DuelingPolicy,
        Spaces(),
        learning_rate=1e-4,
        buffer_size=len(frames),
        learning_starts=0,
        batch_size=32,
        gamma=0.99,
        n_steps=10,
        max_grad_norm=10.0,
        policy_kwargs={
            "features_extractor_class": Encoder,
            "optimizer_class": torch.optim.Adam,
            "optimizer_kwargs": {"eps": 1.5e-4},
        },
        device="cpu",
        seed=0,
        verbose=0,
    )
    model.set_logger(Logger(None, []))  # train() records its loss; learn() would set this up
    assert model.replay_buffer is not None  # made by the constructor
    for t in range(len(frames) - 1):
        model.replay_buffer.add(
            frames[t : t + 1],
            frames[t + 1 : t + 2],
            np.array([[actions[t + 1]]]),
            np.array([rewards[t + 1]], dtype=np.float32),
            np.array([ends[t + 1]]),
            [{}],
        )
    return model


def parameters(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Parameter shapes in registration order, names dropped (the two sides name them differently)."""
    return [(type(m).__name__, tuple(p.shape)) for m in module.modules() for p in m.parameters(recurse=False)]


def bench_dqn(seconds: float, rounds: int, buffer_steps: int, num_actions: int) -> dict[str, Any] | None:
    try:
        import stable_baselines3
    except ImportError:
        print(f"\n## DQN update: skipped, stable-baselines3 is not installed ({BENCH_HINT})")
        return None
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (buffer_steps, *OBS_SHAPE), dtype=np.uint8)
    actions = rng.integers(0, num_actions, buffer_steps)
    rewards = rng.choice(np.array([-1.0, 0.0, 0.0, 0.0, 1.0], dtype=np.float32), buffer_steps)
    ends = episode_ends(buffer_steps, rng)
    buffer = our_buffer(frames, actions, rewards, ends)
    torch.manual_seed(0)
    like, like_opt = make_ours(num_actions, like_sb3=True)
    full, full_opt = make_ours(num_actions, like_sb3=False)
    model = make_sb3(num_actions, frames, actions, rewards, ends)
    if parameters(like.q) != parameters(model.q_net):
        raise RuntimeError(f"the SB3 network is not our architecture:\n{parameters(like.q)}\n{parameters(model.q_net)}")
    count = sum(p.numel() for p in like.q.parameters())

    def sb3_step() -> int:
        model.train(gradient_steps=1, batch_size=32)  # what DQN.learn calls (gradient_steps=1)
        return 1

    sides: dict[str, Callable[[], int]] = {
        "ours": ours_update(like, like_opt, buffer),
        "sb3": sb3_step,
        "drq": ours_update(full, full_opt, buffer),
    }
    print(
        f"\n## DQN update: DrQEpsilonAgent vs stable-baselines3 {stable_baselines3.__version__} DQN "
        f"(same network, {count:,} parameters; batch 32, 10-step, CPU)"
    )
    rates = side_by_side(sides, seconds, rounds, chunk=1.0)
    for r in range(rounds):
        print(
            f"round {r}: ours {rates['ours'][r]:.2f}  SB3 {rates['sb3'][r]:.2f}  ours/SB3 "
            f"{rates['ours'][r] / rates['sb3'][r]:.2f}  (DrQ(ε) as published {rates['drq'][r]:.2f}) upd/s"
        )
    ours, sb3, drq = (statistics.median(rates[k]) for k in ("ours", "sb3", "drq"))
    ratio, ratio_drq = ratio_of(rates, "ours", "sb3"), ratio_of(rates, "drq", "sb3")
    print(f"\n({rounds} rounds of {seconds:g} s per side, taking turns in 1 s slices; medians)")
    print("| DQN update (sample + update), batch 32 | updates/s | vs SB3 |\n|---|---:|---:|")
    print(f"| stable-baselines3 `DQN.train` (Huber, clip 10, no double, no augmentation) | {sb3:.2f} | 1.00× |")
    print(f"| DrQEpsilonAgent, the same work (clip 10, no double, no augmentation) | {ours:.2f} | **{ratio:.2f}×** |")
    print(
        f"| DrQEpsilonAgent as DrQ(ε) (double DQN, shift + intensity, target copy each update) | {drq:.2f} "
        f"| {ratio_drq:.2f}× |"
    )
    print("(target: the same-work ratio ≥ 1.0, aim 1.3)")
    rows = [
        {"name": "stable-baselines3 DQN.train, our network", "metrics": {"updates_per_s": metric(sb3, rounds)}},
        {"name": "DrQEpsilonAgent, same work as SB3", "metrics": {"updates_per_s": metric(ours, rounds)}},
        {"name": "ratio DrQEpsilonAgent / stable-baselines3", "metrics": {"ratio": metric(ratio, rounds)}},
        {
            "name": "DrQEpsilonAgent as DrQ(eps) publishes it",
            "metrics": {"updates_per_s": metric(drq, rounds), "ratio_vs_sb3": metric(ratio_drq, rounds)},
        },
    ]
    return {"name": "DrQ(eps) update vs stable-baselines3 DQN", "rows": rows}


# --- frozen ---------------------------------------------------------------------------------------
def frozen_encoders() -> dict[str, Callable[[], nn.Module]]:
    """The section's encoders (fresh ones per side, same initialisation): AtariFinetune's scratch
    encoder and a PALM-sized one widened to the stack (``stack_init: mean``)."""
    return {
        "scratch 84x84x4": lambda: DrQEncoder(OBS_SHAPE, 32, 4, 256, weight_init="orthogonal"),
        "PALM-sized 64x64 (x4 frames)": lambda: expand_input_channels(
            DrQEncoder((1, 64, 64), 32, 4, 256, weight_init="orthogonal"), 4, "mean"
        ),
    }


def frozen_side(
    encoder: nn.Module, num_actions: int, buffer: ReplayBuffer, fresh: Tensor, mode: str
) -> Callable[[], int]:
    """One side of the ``frozen`` section: ``mode`` ``"fine-tuned"``, ``"augmented"`` (frozen,
    ``frozen_augmentation``) or ``"cached"`` (frozen, features cached in ``buffer``); each call
    writes one of ``fresh``'s frames into ``buffer``, samples and updates, as a fine-tuning run."""
    frozen = mode != "fine-tuned"
    agent = DrQEpsilonAgent(
        encoder, num_actions, DrQEpsilonConfig(frozen_augmentation=mode == "augmented"), freeze_encoder=frozen
    )
    optimizer = torch.optim.Adam(agent.optimizer_groups()["q"], fused=True)  # as AtariFinetune
    if mode == "cached":
        buffer.cache_features(agent.encode, agent.q.out_dim)
        rows = torch.arange(buffer.size)
        buffer.features_at(rows, torch.zeros_like(rows))  # a warm cache: a run past its first updates
    written = [0]

    def step() -> int:
        t = written[0] = written[0] + 1
        buffer.add(fresh[t % len(fresh)][None], torch.tensor([t % num_actions]), torch.zeros(1), torch.zeros(1) > 0)
        b = buffer.sample(32, nstep=10, gamma=0.99)
        transition = Transition(b["obs"], b["action"], b["reward"], b["discount"], b["next_obs"])
        features = (b["obs_features"], b["next_obs_features"]) if mode == "cached" else None
        agent.update(transition, 10_000, {"q": optimizer}, features=features)
        return 1

    return step


def bench_frozen(seconds: float, rounds: int, buffer_steps: int, num_actions: int) -> dict[str, Any]:
    print("\n## Frozen vs fine-tuned encoder: DrQEpsilonAgent updates/s (sample + update, batch 32, 10-step, CPU)")
    print(f"({rounds} rounds of {seconds:g} s per side, taking turns in 1 s slices; medians)")
    print(
        "| encoder | fine-tuned | frozen, augmented | frozen, cached | augmented / fine-tuned "
        "| cached / fine-tuned |\n|---|---:|---:|---:|---:|---:|"
    )
    rows: list[Row] = []
    for name, make in frozen_encoders().items():
        shape = tuple(int(s) for s in getattr(make(), "image_shape"))  # noqa: B009  (the encoder contract's field)
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 256, (buffer_steps, *shape), dtype=np.uint8)
        actions = rng.integers(0, num_actions, buffer_steps)
        rewards = rng.choice(np.array([-1.0, 0.0, 0.0, 0.0, 1.0], dtype=np.float32), buffer_steps)
        ends = episode_ends(buffer_steps, rng)
        fresh = torch.from_numpy(rng.integers(0, 256, (64, *shape), dtype=np.uint8))
        shared, cached = (our_buffer(frames, actions, rewards, ends) for _ in range(2))
        sides: dict[str, Callable[[], int]] = {}
        for mode in ("fine-tuned", "augmented", "cached"):
            torch.manual_seed(0)
            sides[mode] = frozen_side(make(), num_actions, cached if mode == "cached" else shared, fresh, mode)
        rates = side_by_side(sides, seconds, rounds, chunk=1.0)
        fine, augmented, cache = (statistics.median(rates[k]) for k in ("fine-tuned", "augmented", "cached"))
        ratio_aug, ratio_cache = ratio_of(rates, "augmented", "fine-tuned"), ratio_of(rates, "cached", "fine-tuned")
        print(
            f"| {name} | {fine:.2f} | {augmented:.2f} | {cache:.2f} | {ratio_aug:.2f}× | **{ratio_cache:.1f}×** |",
            flush=True,
        )
        rows.append(
            {
                "name": f"{name}: frozen vs fine-tuned encoder",
                "metrics": {
                    "fine_tuned_updates_per_s": metric(fine, rounds),
                    "frozen_augmented_updates_per_s": metric(augmented, rounds),
                    "frozen_cached_updates_per_s": metric(cache, rounds),
                    "frozen_augmented_over_fine_tuned": metric(ratio_aug, rounds),
                    "frozen_cached_over_fine_tuned": metric(ratio_cache, rounds),
                },
            }
        )
    return {"name": "DrQ(eps) update: frozen (cached features) vs fine-tuned encoder", "rows": rows}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", nargs="+", default=["stream", "dqn"], choices=["stream", "dqn", "frozen"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per side and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the sides take turns within each)")
    parser.add_argument("--game", default="Pong", help="stream: gymnasium's game name")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 4], help="stream: environments")
    parser.add_argument(
        "--buffer-steps", type=int, default=5000, help="dqn, frozen: transitions in the pre-filled buffers"
    )
    parser.add_argument("--num-actions", type=int, default=6, help="dqn, frozen: actions (Pong's minimal set: 6)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    command = "python benchmarks/atari.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU")
    print(machine_note())
    tables = []
    if "stream" in args.sections:
        tables.append(bench_stream(args.game, args.envs, args.seconds, args.rounds))
    if "dqn" in args.sections:
        table = bench_dqn(args.seconds, args.rounds, args.buffer_steps, args.num_actions)
        if table is not None:
            tables.append(table)
    if "frozen" in args.sections:
        tables.append(bench_frozen(args.seconds, args.rounds, args.buffer_steps, args.num_actions))
    print(machine_note())
    if args.json is not None:
        for table in tables:
            table["command"] = command
        args.json.write_text(json.dumps({"tables": tables}, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
