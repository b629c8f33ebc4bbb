"""The latent-manifold environment: dynamics, episodes, gymnasium API, bad input."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import palm_lightning  # noqa: F401  (registers the environments)
from palm_lightning.envs import LATENT_MANIFOLD_ID, LatentManifold, from_uint8, to_uint8
from palm_lightning.nn.protocols import GeneratorProtocolError
from tests.palm_fixtures import tiny_generator, tiny_generator_file


def test_reset_and_step_shapes_and_episode_structure():
    env = LatentManifold(tiny_generator(), num_envs=5, episode_length=4, seed=1)
    obs, info = env.reset()
    assert obs.shape == (5, 1, 16, 16) and obs.dtype == torch.uint8
    labels = info["class"].clone()
    for t in range(1, 5):
        obs, reward, terminated, truncated, info = env.step(torch.zeros(5, 8))
        assert obs.shape == (5, 1, 16, 16)
        assert torch.equal(reward, torch.zeros(5)) and not terminated.any()
        assert torch.equal(info["class"], labels), "the class is kept for the whole episode"
        assert truncated.all() == (t == 4)


def test_transition_is_the_documented_ema():
    env = LatentManifold(tiny_generator(), num_envs=3, ema=0.8, action_scale=0.5, seed=0)
    env.reset()
    before = env.latent.clone()
    action = torch.rand(3, 8) * 2 - 1
    rng_state = env.rng.get_state()
    env.step(action)
    noise = torch.randn(3, 8, generator=torch.Generator().set_state(rng_state))
    expected = 0.8 * before + math.sqrt(1 - 0.8**2) * (noise + 0.5 * action)
    torch.testing.assert_close(env.latent, expected)
    plain = LatentManifold(tiny_generator(), num_envs=3, ema=0.8, variance_preserving=False)
    assert plain.kappa == pytest.approx(0.2)


def test_variance_preserving_latents_keep_the_prior_with_zero_actions():
    env = LatentManifold(tiny_generator(), num_envs=512, ema=0.9, seed=0, episode_length=1000)
    env.reset()
    for _ in range(40):
        env.step(torch.zeros(512, 8))
    assert env.latent.std().item() == pytest.approx(1.0, abs=0.1)


def test_observation_is_the_generator_decoding_of_the_state():
    generator = tiny_generator()
    env = LatentManifold(generator, num_envs=2, seed=3)
    env.reset()
    obs, *_ = env.step(torch.rand(2, 8) * 2 - 1)
    with torch.no_grad():
        expected = to_uint8(generator(env.latent, env.labels))
    assert torch.equal(obs, expected)
    assert (from_uint8(obs) - generator(env.latent, env.labels)).abs().max() <= 1 / 127.5 + 1e-6


def test_seeded_reset_is_reproducible_and_state_dict_round_trips():
    a = LatentManifold(tiny_generator(), num_envs=3)
    b = LatentManifold(tiny_generator(), num_envs=3)
    assert torch.equal(a.reset(seed=7)[0], b.reset(seed=7)[0])
    a.step(torch.zeros(3, 8))
    b.load_state_dict(a.state_dict())
    action = torch.rand(3, 8)
    assert torch.equal(a.step(action)[0], b.step(action)[0])


def test_class_weights_select_classes():
    env = LatentManifold(tiny_generator(), num_envs=64, class_weights=[0.0, 1.0, 0.0])
    _, info = env.reset()
    assert (info["class"] == 1).all()
    with pytest.raises(ValueError, match="one per generator class"):
        LatentManifold(tiny_generator(), class_weights=[1.0, 1.0])


def test_w_space_uses_the_mapping_and_w_sized_actions():
    generator = tiny_generator()  # z: 8-d, w: 16-d, 3 classes
    with torch.no_grad():  # class means of w that are far from 0 and from each other
        generator.mapping.w_avg.copy_(torch.arange(3.0)[:, None] * 5.0 + torch.linspace(-1, 1, 16)[None])
    calls = []

    def record(module, args, kwargs, output):
        calls.append((args[0].clone(), args[1].clone(), kwargs.get("truncation_psi", 1.0), output.clone()))

    env = LatentManifold(generator, num_envs=3, latent_space="w", ema=0.6, action_scale=0.5, seed=0)
    handle = generator.mapping.register_forward_hook(record, with_kwargs=True)
    assert env.action_dim == 16 and env.latent_dim == 16
    _, info = env.reset()
    # reset: one pass of z-sized noise with the episode's classes through the mapping; its output is the state
    assert len(calls) == 1
    noise, labels, psi, w = calls[0]
    assert noise.shape == (3, 8) and torch.equal(labels, info["class"]) and psi == 1.0
    torch.testing.assert_close(env.latent, w)
    # and the observation is the generator's image of that noise and class
    obs, _ = env.reset(seed=5)
    noise, labels, _, _ = calls[-1]
    with torch.no_grad():
        assert torch.equal(obs, to_uint8(generator(noise, labels)))

    # a step maps fresh noise again; the action displaces the w-latent
    twin = LatentManifold(generator, num_envs=3, latent_space="w", ema=0.6, action_scale=0.5, seed=0, check=False)
    twin.load_state_dict(env.state_dict())
    before = env.latent.clone()
    action = torch.linspace(-1, 1, 48).reshape(3, 16)
    calls.clear()
    obs_moved, *_ = env.step(action)
    assert len(calls) == 1 and calls[0][0].shape == (3, 8) and torch.equal(calls[0][1], env.labels)
    obs_still, *_ = twin.step(torch.zeros(3, 16))
    handle.remove()
    assert len(calls) == 2 and torch.equal(calls[0][0], calls[1][0])
    # same noise in both (same random state): the difference is the action alone, times
    # κ = sqrt(1 − 0.6²) = 0.8 and action_scale = 0.5
    torch.testing.assert_close(env.latent - twin.latent, 0.4 * action)
    assert not torch.equal(obs_moved, obs_still)
    # with λ = 0.6 the state keeps 0.6 of its offset from the class mean w, and takes 0.8 of the new
    # mapped w's (μ = the class's mean w: 0, 5, 10 + linspace(-1, 1))
    mu = generator.mapping.w_avg[twin.labels]
    torch.testing.assert_close(twin.latent - mu, 0.6 * (before - mu) + 0.8 * (calls[1][3] - mu))
    with pytest.raises(ValueError, match=r"shape \(3, 16\).*w-latent size.*got \(3, 8\)"):
        env.step(torch.zeros(3, 8))  # a z-sized action is refused in w-space


def test_bad_actions_are_refused_with_the_expected_shape():
    env = LatentManifold(tiny_generator(), num_envs=2)
    env.reset()
    with pytest.raises(ValueError, match=r"shape \(2, 8\).*got \(2, 5\)"):
        env.step(torch.zeros(2, 5))
    action = torch.zeros(2, 8)
    action[1, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or inf \(environments \[1\]\)"):
        env.step(action)


def test_a_non_generator_is_refused():
    class NotAGenerator(torch.nn.Module):
        def forward(self, z, c):
            return z

    with pytest.raises(GeneratorProtocolError, match="missing latent_dim"):
        LatentManifold(NotAGenerator())

    class Flat(torch.nn.Module):
        latent_dim, num_classes, image_shape = 4, 2, (1, 8, 8)

        def forward(self, z, c):
            return torch.zeros(z.shape[0], 3)

    with pytest.raises(GeneratorProtocolError, match=r"shape \(2, 1, 8, 8\)"):
        LatentManifold(Flat())

    class Plain(Flat):
        def forward(self, z, c):
            return torch.zeros(z.shape[0], 1, 8, 8)

    LatentManifold(Plain(), num_envs=1)  # follows the protocol
    with pytest.raises(GeneratorProtocolError, match="latent_space='w'"):
        LatentManifold(Plain(), latent_space="w")
    with pytest.raises(GeneratorProtocolError, match="truncation_psi"):
        LatentManifold(Plain(), truncation_psi=0.7)


def test_gymnasium_single_env_passes_check_env(tmp_path):
    env = gymnasium.make(LATENT_MANIFOLD_ID, generator=str(tiny_generator_file(tmp_path)), episode_length=5)
    check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs.shape == (1, 16, 16) and obs.dtype == np.uint8 and "class" in info
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward == 0.0 and not terminated
    assert truncated


def test_gymnasium_vector_env_autoresets_on_the_next_step(tmp_path):
    envs = gymnasium.make_vec(
        LATENT_MANIFOLD_ID, num_envs=3, generator=str(tiny_generator_file(tmp_path)), episode_length=2
    )
    obs, info = envs.reset(seed=0)
    assert obs.shape == (3, 1, 16, 16)
    _, _, _, truncated, _ = envs.step(envs.action_space.sample())
    assert not truncated.any()
    _, _, _, truncated, info = envs.step(envs.action_space.sample())
    assert truncated.all()
    _, reward, _, truncated, info = envs.step(envs.action_space.sample())
    assert not truncated.any() and (info["elapsed"] == 0).all() and (reward == 0).all()


def test_shipped_generator_is_the_default():
    env = gymnasium.make(LATENT_MANIFOLD_ID)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1, 32, 32) and env.action_space.shape == (64,)


def test_sphere_latents_keep_the_prior_norm_whatever_the_actions():
    env = LatentManifold(tiny_generator(), num_envs=4, ema=0.5, latent_norm="sphere", seed=0)
    env.reset()
    dim = env.latent_dim
    for _ in range(20):  # a saturated policy: with latent_norm free the mean would drift by 1.73 per dimension
        env.step(torch.ones(4, dim))
    assert torch.allclose(env.latent.norm(dim=1), torch.full((4,), dim**0.5), atol=1e-4)
    free = LatentManifold(tiny_generator(), num_envs=4, ema=0.5, seed=0)
    free.reset()
    for _ in range(20):
        free.step(torch.ones(4, dim))
    assert free.latent.norm(dim=1).min() > 1.5 * dim**0.5
    with pytest.raises(ValueError, match="latent_norm"):
        LatentManifold(tiny_generator(), num_envs=2, latent_norm="ball")


def test_class_resample_step_draws_a_fresh_label_every_step_episode_keeps_it():
    kept = LatentManifold(tiny_generator(), num_envs=64, seed=0)
    fresh = LatentManifold(tiny_generator(), num_envs=64, seed=0, class_resample="step")
    action = torch.zeros(64, kept.action_dim)
    for env in (kept, fresh):
        env.reset()
    first_kept, first_fresh = kept.labels.clone(), fresh.labels.clone()
    *_, info_kept = kept.step(action)
    *_, info_fresh = fresh.step(action)
    assert torch.equal(info_kept["class"], first_kept)
    assert not torch.equal(info_fresh["class"], first_fresh)  # 64 environments, 3 classes: some change
    with pytest.raises(ValueError, match="class_resample must be 'episode' or 'step'"):
        LatentManifold(tiny_generator(), class_resample="always")
