"""experiments/atari_table.py: its rows point at real configs, its IQM is Agarwal et al.'s, it reads
an RL run's last evaluation, and its probe wiring runs the AtariARI probe on tiny cached frames."""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path

import pytest
import yaml

from tests.atari_fixtures import tiny_atari
from tests.cli_runner import REPO


@pytest.fixture
def table(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "scripts"))
    return importlib.import_module("experiments.atari_table")


def test_rows_name_existing_configs_and_encoders(table) -> None:
    for row in table.ROWS:
        for config in row.configs:
            assert (REPO / "configs" / config).is_file(), config
        if row.encoder.startswith("random:"):
            assert table.ROW_BY_KEY[row.encoder.split(":", 1)[1]].configs
    for rl in table.RL_ROWS:
        assert rl.encoder == "scratch" or table.ROW_BY_KEY[rl.encoder].configs, rl.key
        assert rl.freeze or not rl.standardize, rl.key  # AtariFinetune refuses a fine-tuned standardized run
    # the default table: each encoder once fine-tuned and once frozen, its frozen rows standardized
    default = [table.RL_ROW_BY_KEY[key] for key in table.DEFAULT_RL_ROWS]
    encoders = {rl.encoder for rl in table.RL_ROWS if not rl.control}
    assert "supervised" not in encoders  # the positive control is named, never run by default
    assert sorted((rl.encoder, rl.freeze) for rl in default) == sorted((e, f) for e in encoders for f in (False, True))
    assert all(rl.standardize for rl in default if rl.freeze)
    # the budget overlay sets the size only: a callbacks list would merge into palm_atari.yaml's by index
    budget = yaml.safe_load((REPO / "configs" / table.BUDGET).read_text())
    assert set(budget) == {"trainer"} and "callbacks" not in budget["trainer"]


def test_iqm_is_the_mean_of_the_middle_half(table) -> None:
    assert table.iqm([1.0, 2.0, 3.0, 4.0]) == pytest.approx(2.5)
    assert table.iqm([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 100.0]) == pytest.approx(3.5)  # the outlier is cut
    assert table.iqm([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(3.0)  # fractional edge weights
    assert table.iqm([7.0]) == pytest.approx(7.0)


def test_late_return_averages_the_evaluations_of_the_runs_second_half(table) -> None:
    curve = [[4600, -18.0], [9200, -5.0], [13800, 2.0], [18400, -4.0]]
    assert table.late_return(curve) == pytest.approx(-1.0)  # 13 800 and 18 400; 9 200 is the half itself
    assert table.late_return([[100, 3.0]]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="no evaluations"):
        table.late_return([])


def test_late_train_return_averages_the_training_games_of_the_runs_second_half(table) -> None:
    scores = {"eval_curve": [[50, 0.0], [100, 9.0]], "train_curve": [[10, -20.0], [50, -10.0], [60, 2.0], [90, 4.0]]}
    assert table.late_train_return(scores) == pytest.approx(3.0)  # after update 50, the half of the last evaluation's
    assert table.late_train_return({"eval_curve": [[100, 9.0]]}) is None  # stored before train_curve was
    assert table.late_train_return({**scores, "train_curve": [[10, -20.0]]}) is None  # no game in the second half


def test_read_scores_takes_the_last_evaluation(table, tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    for step, score in ((10, 1.0), (20, 5.0)):
        writer.add_scalar("eval/episode_return", score, step)
    writer.add_scalar("train/episode_return", -3.0, 15)
    writer.close()
    scores = table.read_scores(tmp_path, "Boxing")
    assert scores["eval_return"] == 5.0 and scores["train_return_last"] == -3.0
    assert scores["eval_curve"] == [[10, 1.0], [20, 5.0]] and scores["train_curve"] == [[15, -3.0]]
    assert scores["eval_hns"] == pytest.approx((5.0 - 0.1) / (12.1 - 0.1))  # Boxing: random 0.1, human 12.1
    empty = tmp_path / "empty"
    SummaryWriter(str(empty)).close()
    with pytest.raises(RuntimeError, match="no eval/episode_return"):
        table.read_scores(empty, "Boxing")


def test_probe_row_runs_the_state_probe_and_caches_it(table, tmp_path: Path) -> None:
    data = tmp_path / "data"
    dm = tiny_atari(data)  # Pong and Boxing, 16×16 synthetic frames cached in data/atari
    config = tmp_path / "probe.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"init_args": {"encoder": "pixels", "image_shape": [1, 16, 16], "max_epochs": 3}},
                "data": {
                    "init_args": {
                        "games": ["Pong", "Boxing"],
                        "frames_per_game": 300,
                        "screen_size": 16,
                        "min_episode_length": 0,
                        "batch_size": 64,
                    }
                },
            }
        )
    )
    assert dm.roms == ("pong", "boxing")
    out = tmp_path / "runs"
    results = table.run_probe(table.ROW_BY_KEY["pixels"], 0, out, config, False, str(data), False)
    assert set(results) >= {"pong", "boxing", "mean_f1"}
    assert 0.0 <= results["mean_f1"] <= 1.0 and results["encoder"] == "pixels"
    assert results["pixel_pool"] == table.PIXEL_POOL == 2
    cache = out / "pixels_s0" / "version_0" / "probe.json"
    assert json.loads(cache.read_text())["mean_f1"] == results["mean_f1"]
    cache.write_text(json.dumps({**results, "mean_f1": -1.0}))  # a value no probe computes
    again = table.run_probe(table.ROW_BY_KEY["pixels"], 0, out, config, False, str(data), False)
    assert again["mean_f1"] == -1.0  # read back, not recomputed
    # standardized features: a probe of its own, cached beside the raw one and not mistaken for it
    scaled = table.run_probe(table.ROW_BY_KEY["pixels"], 0, out, config, False, str(data), False, standardize=True)
    assert scaled["standardize"] is True and scaled["mean_f1"] >= 0.0
    assert json.loads((cache.parent / "probe_standardized.json").read_text())["standardize"] is True
    hparams = yaml.safe_load((out / "pixels_s0" / "probe_standardized" / "hparams.yaml").read_text())
    assert hparams["standardize"] is True  # the probe itself got the flag, in its own TensorBoard run

    # the committed store: a run's result is copied there, and read from there once runs/ is gone
    store = tmp_path / "store"
    table.run_probe(table.ROW_BY_KEY["pixels"], 0, out, config, False, str(data), False, store=store)
    kept = json.loads((store / "probe" / "pixels_s0.json").read_text())
    assert kept["mean_f1"] == -1.0 and kept["probe_config"] == str(config)
    import shutil

    shutil.rmtree(out)
    assert table.run_probe(table.ROW_BY_KEY["pixels"], 0, out, config, False, str(data), False, store=store) == kept
    other = tmp_path / "other_probe.yaml"  # another probe recipe does not take the stored result
    other.write_text(config.read_text())
    fresh = table.run_probe(table.ROW_BY_KEY["pixels"], 0, out, other, False, str(data), False, store=store)
    assert fresh["mean_f1"] >= 0.0 and fresh["probe_config"] == str(other)


def test_a_row_that_needs_an_untrained_run_says_how_to_train_it(table, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="is not trained: run with --train"):
        table.probe_encoder(table.ROW_BY_KEY["palm_apt"], 0, tmp_path, False, str(tmp_path))


def test_rows_that_draw_their_own_weights_need_no_trained_run(table, tmp_path: Path) -> None:
    """The random encoder and the from-scratch agent take PALM-Atari's architecture from its configs."""
    from palm_lightning.models.evaluation.frozen_encoder import build_encoder

    encoder, random_init = table.probe_encoder(table.ROW_BY_KEY["random_encoder"], 0, tmp_path, False, "")
    assert random_init and Path(encoder) == tmp_path / "architecture" / "palm_apt_encoder.pt"
    assert not (tmp_path / "palm_apt_s0").exists()  # nothing trained
    network = build_encoder(encoder, random_init=True)
    assert type(network).__name__ == "DrQEncoder" and tuple(network.image_shape) == (1, table.SCREEN, table.SCREEN)
    assert network.out_dim == 256


@pytest.mark.parametrize("name", ["cpu", "cpu100k", "atari100k"])
def test_each_protocols_configs_set_its_budget(table, name) -> None:
    from palm_lightning.datamodules.atari.game import human_normalized_score
    from tests.cli_runner import run_cli

    protocol = table.PROTOCOLS[name]
    for game in protocol.games:
        human_normalized_score(game, 0.0)  # every game has its published random and human scores
    configs = [arg for config in protocol.configs for arg in ("--config", str(REPO / "configs" / config))]
    result = run_cli("fit", *configs, "--print_config", cwd=REPO)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["trainer"]["max_steps"] == protocol.agent_steps - 1600  # after the seed steps
    assert resolved["data"]["init_args"]["buffer_capacity"] >= protocol.agent_steps
    model = resolved["model"]["init_args"]
    if name == "atari100k":  # as published: the 26 games, 100 evaluation games played to their end
        assert len(protocol.games) == 26 and protocol.agent_steps == 100_000
        assert model["eval_episodes"] == 100 and model["eval_max_steps"] is None
    else:  # enough evaluation games to tell rows apart, and a learning curve
        assert model["eval_episodes"] >= 10 and 0 < model["eval_every"] < resolved["trainer"]["max_steps"]


def test_rl_scores_are_kept_in_the_store_and_read_first(table, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "rl_cpu" / "scratch_Boxing_s0" / "version_0"
    run.mkdir(parents=True)
    (run / "scores.json").write_text(json.dumps({"game": "Boxing", "eval_return": 3.0, "agent_steps": 20_000}))
    scratch, store, out = table.RL_ROW_BY_KEY["scratch"], tmp_path / "store", tmp_path / "runs"
    assert table.rl_run(scratch, "Boxing", 0, out, "cpu", 20_000, [], False, "", store)["eval_return"] == 3.0
    kept = store / "rl_cpu" / "scratch_Boxing_s0.json"
    assert json.loads(kept.read_text())["eval_return"] == 3.0
    (run / "scores.json").unlink()  # runs/ is gone: the store answers
    assert table.rl_run(scratch, "Boxing", 0, out, "cpu", 20_000, [], False, "", store)["eval_return"] == 3.0
    with pytest.raises(SystemExit, match=r"scratch_Boxing_s0\.json ran 20000 agent steps, not 5000"):
        table.rl_run(scratch, "Boxing", 0, out, "cpu", 5_000, [], False, "", store)


def test_the_encoder_fingerprint_follows_the_weights(table, tmp_path: Path) -> None:
    import torch

    from palm_lightning.checkpoints import save_network
    from palm_lightning.nn.encoders import DrQEncoder

    torch.manual_seed(0)
    network = DrQEncoder(image_shape=(1, 16, 16), channels=4, num_layers=2, repr_dim=8)
    first = table.encoder_fingerprint(save_network(network, tmp_path / "a.pt", kind="encoder"))
    assert first == table.encoder_fingerprint(save_network(network, tmp_path / "b.pt", kind="encoder"))
    with torch.no_grad():
        next(network.parameters()).add_(1e-6)
    assert first != table.encoder_fingerprint(save_network(network, tmp_path / "c.pt", kind="encoder"))


def test_a_cached_rl_run_of_another_budget_is_refused(table, tmp_path: Path) -> None:
    run = tmp_path / "rl_cpu" / "scratch_Boxing_s0" / "version_0"
    run.mkdir(parents=True)
    (run / "scores.json").write_text(json.dumps({"game": "Boxing", "eval_return": 3.0, "agent_steps": 20_000}))
    scratch = table.RL_ROW_BY_KEY["scratch"]
    assert table.rl_run(scratch, "Boxing", 0, tmp_path, "cpu", 20_000, [], False, "")["eval_return"] == 3.0
    with pytest.raises(SystemExit, match="ran 20000 agent steps, not 5000"):
        table.rl_run(scratch, "Boxing", 0, tmp_path, "cpu", 5_000, [], False, "")


def test_rl_workers_share_runs_and_leave_an_encoder_in_training_to_its_worker(table, tmp_path: Path) -> None:
    """While another worker holds palm_apt's encoder (training it), this worker takes the runs that do not
    need it, then waits; a run found in the store is not trained again."""
    import argparse
    import threading

    claims = table.worker_claims
    order: list[str] = []
    trained: list[str] = []
    table.train_encoder = lambda row, seed, out, data_dir: trained.append(row.key)

    def fake_rl_run(rl, game, seed, out, protocol, agent_steps, overrides, train_missing, data_dir, store):
        order.append(f"{rl.key}_{game}")
        table.write_json(store / f"rl_{protocol}" / f"{rl.key}_{game}_s{seed}.json", {"agent_steps": agent_steps})

    table.rl_run = fake_rl_run
    store, out = tmp_path / "store", tmp_path / "runs"
    table.write_json(store / "rl_cpu" / "scratch_Seaquest_s0.json", {"agent_steps": 20_000})  # found: skipped
    args = argparse.Namespace(out=out, protocol="cpu", agent_steps=20_000, rl_override=[], data_dir="", stop_by=None)
    rows = [table.RL_ROW_BY_KEY[k] for k in ("palm_apt_ft", "scratch")]
    jobs = [(rl, game, 0) for rl in rows for game in ("Boxing", "Seaquest")]
    with claims.claimed(out / "palm_apt_s0.lock", wait=False) as held:  # "another worker" trains palm_apt
        assert held
        worker = threading.Thread(target=table.rl_worker, args=(jobs, args, store))
        worker.start()
        for _ in range(200):
            if order:
                break
            worker.join(0.05)
        worker.join(0.3)
        assert order == ["scratch_Boxing"] and worker.is_alive()  # waiting for palm_apt's encoder
        (out / "palm_apt_s0" / "version_0").mkdir(parents=True)
        (out / "palm_apt_s0" / "version_0" / "trained.json").write_text("{}")  # the other worker finished it
    worker.join(10)
    assert not worker.is_alive()
    assert order == ["scratch_Boxing", "palm_apt_ft_Boxing", "palm_apt_ft_Seaquest"] and trained == []


def test_rl_worker_does_not_wait_on_a_held_run_that_could_not_end_by_stop_by(table, tmp_path: Path) -> None:
    """Another worker holds a fine-tuned run (60 min) and --stop-by is 30 min away: this worker, out of its own
    runs, returns at once (its lane would otherwise idle until the holder is done) and leaves the run to the
    holder instead of reporting it; a held run that fits is waited for."""
    import argparse
    import threading

    claims = table.worker_claims
    order: list[str] = []
    table.rl_run = lambda rl, game, seed, *rest: order.append(f"{rl.key}_{game}")
    args = argparse.Namespace(
        out=tmp_path, protocol="cpu", agent_steps=20_000, rl_override=[], data_dir="", stop_by=time.time() + 1800
    )
    scratch = table.RL_ROW_BY_KEY["scratch"]
    with claims.claimed(tmp_path / "rl_cpu" / "scratch_Boxing_s0.lock", wait=False) as held:
        assert held
        result: list[list[str]] = []
        worker = threading.Thread(target=lambda: result.append(table.rl_worker([(scratch, "Boxing", 0)], args, None)))
        worker.start()
        worker.join(10)
        assert not worker.is_alive() and result == [[]] and order == []
        args.stop_by = time.time() + 4 * 3600  # now it fits: the worker waits for the holder
        worker = threading.Thread(target=table.rl_worker, args=([(scratch, "Boxing", 0)], args, None))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()
    worker.join(10)
    assert not worker.is_alive() and order == ["scratch_Boxing"]  # the holder died without a result: run here


def test_rl_worker_with_stop_by_starts_only_what_ends_in_time(table, tmp_path: Path) -> None:
    """A frozen run (15 min) fits in 30 minutes, a fine-tuned one (60) and a frozen one whose encoder is still
    to train (15 + 45) do not: they are left, named, for a later call."""
    import argparse

    order: list[str] = []
    table.train_encoder = lambda row, seed, out, data_dir: order.append(f"encoder {row.key}")
    table.rl_run = lambda rl, game, seed, *rest: order.append(f"{rl.key}_{game}")
    args = argparse.Namespace(
        out=tmp_path, protocol="cpu", agent_steps=20_000, rl_override=[], data_dir="", stop_by=time.time() + 1800
    )
    keys = ("random_encoder_frozen", "scratch", "palm_apt_frozen")
    left = table.rl_worker([(table.RL_ROW_BY_KEY[k], "Boxing", 0) for k in keys], args, tmp_path / "store")
    assert order == ["random_encoder_frozen_Boxing"]
    assert left == ["scratch_Boxing_s0", "palm_apt_frozen_Boxing_s0"]


def test_json_tables_are_merged_in_place_row_by_row_and_new_ones_appended(table) -> None:
    def rows(*pairs):
        return [{"name": name, "metrics": {"f1": value}} for name, value in pairs]

    old = [
        {"name": "probe", "command": "p", "rows": rows(("a", 1))},
        {"name": "rl", "command": "all rows", "rows": rows(("scratch", 1), ("palm", 1), ("simsiam", 1))},
        {"name": "generator", "command": "g", "rows": rows(("x", 1))},
    ]
    new = [
        {"name": "rl", "command": "two rows", "rows": rows(("palm", 2), ("control", 2))},
        {"name": "rl 100k", "command": "c", "rows": rows(("palm", 2))},
    ]
    assert table.merged_tables(old, new) == [
        old[0],
        # a command for a few rows updates them and keeps the others; both commands rebuild the table
        {
            "name": "rl",
            "command": "all rows; two rows",
            "rows": rows(("scratch", 1), ("palm", 2), ("simsiam", 1), ("control", 2)),
        },
        old[2],
        new[1],
    ]
    # the same few-row command run again does not repeat itself in the table's command
    merged = table.merged_tables(old, new)
    assert table.merged_tables(merged, new)[1]["command"] == "all rows; two rows"
    # a command that names every row again replaces the table, command and all
    again = [{"name": "rl", "command": "all rows, again", "rows": rows(("simsiam", 3), ("scratch", 3), ("palm", 3))}]
    assert table.merged_tables(old, again)[1] == {
        "name": "rl",
        "command": "all rows, again",
        "rows": rows(("scratch", 3), ("palm", 3), ("simsiam", 3)),
    }


def test_probe_table_puts_raw_and_standardized_rows_in_one_table(table, tmp_path: Path, monkeypatch) -> None:
    calls = []

    def fake_probe(row, seed, out, config, train, data_dir, force, standardize=False, store=None):
        calls.append((row.key, seed, standardize))
        f1 = 0.5 + 0.2 * standardize + 0.01 * seed
        return {"pong": {"mean_f1": f1}, "mean_f1": f1}

    monkeypatch.setattr(table, "run_probe", fake_probe)
    doc = tmp_path / "atari.json"
    argv = ["atari_table.py", "--probe", "--seeds", "0", "1", "--rows", "random_encoder", "palm_apt"]
    argv += ["--features", "raw", "standardized", "--json", str(doc), "--out", str(tmp_path), "--store", "none"]
    monkeypatch.setattr("sys.argv", argv)
    table.main()
    assert len(calls) == 8 and {standardize for *_, standardize in calls} == {False, True}
    (written,) = json.loads(doc.read_text())["tables"]
    assert written["name"].endswith("seeds [0, 1]; raw features (AtariARI's recipe) and standardized")
    rows = {row["name"]: row["metrics"] for row in written["rows"]}
    assert list(rows) == [
        "random_encoder (raw features)",
        "palm_apt (raw features)",
        "random_encoder (standardized features)",
        "palm_apt (standardized features)",
    ]
    assert rows["palm_apt (standardized features)"]["f1_mean"]["mean"] == pytest.approx(70.5)
    assert rows["palm_apt (raw features)"]["f1_pong"]["n"] == 2
    # one kind keeps the rows' plain keys and the table's old name; --standardize is its shorthand
    monkeypatch.setattr("sys.argv", [*argv[:8], "--standardize", *argv[11:]])
    table.main()
    tables = json.loads(doc.read_text())["tables"]
    assert [row["name"] for row in tables[-1]["rows"]] == ["random_encoder", "palm_apt"]
    assert tables[-1]["name"].startswith("AtariARI state probe on standardized features: weighted F1")
    monkeypatch.setattr("sys.argv", [*argv, "--standardize"])
    with pytest.raises(SystemExit):  # --standardize with raw features asked for is a contradiction
        table.main()
