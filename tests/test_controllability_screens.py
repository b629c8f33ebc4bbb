"""experiments.controllability_screens: every screen's overrides parse on configs/palm.yaml and change
what its hypothesis names."""

from __future__ import annotations

import json

import pytest
import yaml

from experiments import controllability_screens as screens
from tests.cli_runner import REPO, run_cli


@pytest.mark.parametrize("screen", screens.SCREENS, ids=lambda s: s.name)
def test_each_screen_parses_on_the_main_config(screen, tmp_path):
    args = ["fit", "--config", str(REPO / "configs" / "palm.yaml"), *screen.overrides, "--print_config"]
    result = run_cli(*args, cwd=REPO)  # as the driver runs it: overlays named from the repository root
    assert result.returncode == 0, result.stderr[-1500:]
    printed = yaml.safe_load(result.stdout)
    policy = printed["model"]["init_args"]["policy"]
    assert policy == ("random" if screen.name.startswith("random") else "apt")


def test_run_names_keep_the_screens_store_and_tell_budgets_and_seeds_apart():
    screen = screens.BY_NAME["apt_c"]
    assert screens.run_name(screen, 0, 3000) == "apt_c"
    assert screens.run_name(screen, 2, 10000) == "apt_c_u10000_s2"


def stored_run(store, name, seed, linear, knn):
    diagnostic = dict.fromkeys(screens.DIAGNOSTIC, 0.5)
    probes = {"linear_100": linear, "linear_1": 0.7, "knn": knn, "far_knn_auroc": 0.8}
    record = {"screen": name, "seed": seed, "budget": 10000, "probes": probes, "diagnostic": diagnostic}
    (store / f"{name}_u10000_s{seed}.json").write_text(json.dumps(record))


def test_stored_runs_make_the_long_budget_table_beside_the_reference_rows(tmp_path, capsys):
    """Three stored seeds are read without training, the representation twin's random policy is added,
    the bar is decided from both rows' std, and the twin keeps its headline beside the new table."""
    store = tmp_path / "store"
    store.mkdir()
    for seed, (linear, knn) in enumerate([(0.850, 0.860), (0.852, 0.862), (0.848, 0.858)]):
        stored_run(store, "apt_sac", seed, linear, knn)
    metric = {"mean": 84.0, "std": 0.5, "n": 3}
    reference = {
        "command": "x",
        "rows": [{"name": "palm_random_policy", "metrics": dict.fromkeys(screens.PROBES, metric)}],
    }
    (tmp_path / "representation.json").write_text(json.dumps(reference))
    twin = tmp_path / "controllability.json"
    twin.write_text(json.dumps({"command": "screens", "rows": [{"name": "apt_base", "metrics": {}}]}))
    argv = ["--seeds", "0", "1", "2", "--budget", "10000", "--screens", "apt_sac", "--store", str(store)]
    argv += ["--out", str(tmp_path / "runs"), "--reference", "palm_random_policy"]
    argv += ["--reference-twin", str(tmp_path / "representation.json"), "--json", str(twin), "--table", "best_10k"]
    screens.main(argv)
    printed = capsys.readouterr().out
    assert "| 3 | 85.0 ± 0.2 |" in printed
    assert "apt_sac beats palm_random_policy by more than one std: linear_100 +1.0 (std 0.5)" in printed
    doc = json.loads(twin.read_text())
    assert doc["command"] == "screens" and doc["rows"][0]["name"] == "apt_base"
    (table,) = doc["tables"]
    assert table["name"] == "best_10k" and table["command"].startswith("python -m experiments.controllability_screens")
    assert [row["name"] for row in table["rows"]] == ["apt_sac", "palm_random_policy"]
    assert table["rows"][0]["metrics"]["knn"]["n"] == 3
    assert abs(table["rows"][0]["metrics"]["knn"]["mean"] - 86.0) < 1e-9

    stored_run(store, "apt_sac", 1, 0.835, 0.835)  # one seed below: the spread swallows the gain
    screens.main(argv)
    assert "apt_sac does not beat palm_random_policy" in capsys.readouterr().out


def test_a_reference_row_that_is_not_in_the_twin_is_named(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"command": "x", "rows": [{"name": "a", "metrics": {}}]}))
    with pytest.raises(SystemExit, match=r"no rows \['palm_random_policy'\]; it has \['a'\]"):
        screens.reference_rows(tmp_path / "r.json", ["palm_random_policy"])
