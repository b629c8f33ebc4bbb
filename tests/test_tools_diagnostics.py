"""palm_lightning.tools.render_tensorboard and domain_gap on small inputs."""

from __future__ import annotations

import torch
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

from palm_lightning.tools import domain_gap, render_tensorboard


def test_render_writes_a_scalars_panel_and_the_chosen_image(tmp_path):
    writer = SummaryWriter(str(tmp_path / "run"))
    for step in range(3):
        writer.add_scalar("probe/knn_acc", 0.5 + 0.1 * step, step)
        writer.add_image("trajectories", torch.full((1, 4, 6), step / 2), step)
    writer.close()
    written = render_tensorboard.render(str(tmp_path / "run"), str(tmp_path / "out"), step=1)
    names = sorted(p.name for p in written)
    assert names == ["scalars.png", "trajectories_step1.png"]
    assert Image.open(tmp_path / "out" / "trajectories_step1.png").size == (6, 4)


def test_domain_gap_accuracy_is_knn_accuracy_of_the_encoders_features():
    class Identity:
        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return x

    bank = torch.cat([torch.randn(20, 3) + torch.tensor([9.0, 0, 0]), torch.randn(20, 3) - torch.tensor([9.0, 0, 0])])
    labels = torch.cat([torch.zeros(20, dtype=torch.long), torch.ones(20, dtype=torch.long)])
    query = torch.tensor([[8.0, 0.0, 0.0], [-8.0, 0.0, 0.0]])
    assert domain_gap.accuracy(Identity(), bank, labels, query, torch.tensor([0, 1])) == 1.0  # type: ignore[arg-type]
    assert domain_gap.accuracy(Identity(), bank, labels, query, torch.tensor([1, 0])) == 0.0  # type: ignore[arg-type]
