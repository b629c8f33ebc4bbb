"""tools.generator_samples: the samples grid and the latent-walk strip."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from palm_lightning.tools.generator_samples import latent_walk, main, samples_grid
from tests.palm_fixtures import tiny_generator, tiny_generator_file


def test_walk_has_one_row_per_class_that_moves_and_keeps_its_class() -> None:
    generator = tiny_generator()
    frames = latent_walk(generator, steps=5, ema=0.5)
    assert frames.shape == (generator.num_classes, 6, *generator.image_shape)
    assert float(frames.min()) >= 0.0 and float(frames.max()) <= 1.0
    assert (frames[:, 1:] - frames[:, :-1]).abs().amax(dim=(2, 3, 4)).min() > 0  # every step changes the frame


def test_samples_grid_shares_latents_across_rows() -> None:
    generator = tiny_generator()
    grid = samples_grid(generator, columns=3)
    side = generator.image_shape[-1] + 2
    assert grid.shape[1:] == (2 + generator.num_classes * side, 2 + 3 * side)


def test_command_line_writes_both_pictures_and_names_a_bad_generator(tmp_path: Path, capsys) -> None:
    source = tiny_generator_file(tmp_path)
    samples, walk = tmp_path / "s.png", tmp_path / "w.png"
    assert main(["--generator", str(source), "--samples", str(samples), "--walk", str(walk), "--steps", "3"]) == 0
    generator = tiny_generator()
    side = generator.image_shape[-1] + 2
    assert Image.open(walk).size == (2 + 4 * side, 2 + generator.num_classes * side)
    assert Image.open(samples).size[1] == 2 + generator.num_classes * side
    assert main(["--generator", str(tmp_path / "missing.pt"), "--walk", str(walk)]) == 2
    assert "missing.pt" in capsys.readouterr().err
