"""The online kNN probe mixin (OnlineKNNProbe) alone, on a tiny module and a separable toy set."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from palm_lightning.models import SimSiamImages
from palm_lightning.models.evaluation.online_probe import OnlineKNNProbe
from tests.palm_fixtures import trainer

CLASSES, DIM = 4, 8


def toy_set(n_per_class: int, seed: int) -> tuple[Tensor, Tensor]:
    """Points near the first ``CLASSES`` unit vectors of R^DIM: separable by cosine similarity."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(CLASSES).repeat_interleave(n_per_class)
    points = torch.eye(DIM)[labels] + 0.05 * torch.randn(len(labels), DIM, generator=g)
    return points, labels


def loader(points: Tensor, labels: Tensor) -> DataLoader:
    return DataLoader(TensorDataset(points, labels), batch_size=7)  # batches of uneven size


class TinyProbe(OnlineKNNProbe, L.LightningModule):
    """Identity features: the probe sees the toy points themselves."""

    def __init__(self, k: int = 3, temperature: float = 0.07) -> None:
        super().__init__()
        self.layer = nn.Linear(DIM, DIM)  # something to train, for fit
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.init_online_probe(k, temperature)
        self.grad_enabled: list[bool] = []

    def probe_features(self, images: Tensor) -> Tensor:
        self.grad_enabled.append(torch.is_grad_enabled())
        return images

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        self.updates += 1
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


class BankedProbe(TinyProbe):
    """The bank from a hook (as SimSiamImages): every validation batch is a query."""

    def __init__(self, bank: tuple[Tensor, Tensor], **kwargs) -> None:
        super().__init__(**kwargs)
        self.bank = bank
        self.bank_calls: list[bool] = []

    def probe_bank(self) -> tuple[Tensor, Tensor]:
        self.bank_calls.append(torch.is_grad_enabled())
        return self.bank


class MemoryLogger(Logger):
    def __init__(self) -> None:
        super().__init__()
        self.logged: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.logged.append((step, dict(metrics)))


def validate(module: L.LightningModule, tmp_path: Path, *loaders: DataLoader) -> float:
    t = trainer(tmp_path)
    t.validate(module, dataloaders=list(loaders), verbose=False)
    return float(t.callback_metrics[OnlineKNNProbe.probe_metric])


def test_one_metric_name_for_every_pretraining_module() -> None:
    assert OnlineKNNProbe.probe_metric == "probe/knn_acc"
    assert SimSiamImages.probe_metric == "probe/knn_acc" and issubclass(SimSiamImages, OnlineKNNProbe)


def test_bank_from_dataloader_0_classifies_a_separable_set(tmp_path: Path) -> None:
    bank, queries = toy_set(10, seed=0), toy_set(5, seed=1)
    module = TinyProbe()
    assert validate(module, tmp_path, loader(*bank), loader(*queries)) == 1.0
    assert module.grad_enabled and not any(module.grad_enabled)  # features under no_grad
    wrong = (queries[1] + 1) % CLASSES
    assert validate(TinyProbe(), tmp_path, loader(*bank), loader(queries[0], wrong)) < 0.5
    # The roles of the dataloaders: swapping bank and queries is another (here as good) probe.
    assert validate(TinyProbe(), tmp_path, loader(*queries), loader(*bank)) == 1.0


def test_bank_hook_makes_every_dataloader_a_query(tmp_path: Path) -> None:
    bank, queries = toy_set(10, seed=0), toy_set(5, seed=1)
    module = BankedProbe(bank)
    assert validate(module, tmp_path, loader(*queries)) == 1.0
    assert module.bank_calls == [False]  # once per epoch, under no_grad
    # Two query loaders: both are classified against the hook's bank (none of them is the bank).
    half = len(queries[1]) // 2
    wrong = (queries[1][half:] + 1) % CLASSES
    two = BankedProbe(bank)
    accuracy = validate(two, tmp_path, loader(queries[0][:half], queries[1][:half]), loader(queries[0][half:], wrong))
    assert accuracy == pytest.approx(0.5)
    shuffled = BankedProbe((bank[0], (bank[1] + 1) % CLASSES))
    assert validate(shuffled, tmp_path, loader(*queries)) == 0.0


def test_sanity_check_is_logged_at_updates_through_the_logger(tmp_path: Path) -> None:
    bank, queries = toy_set(10, seed=0), toy_set(5, seed=1)
    module = BankedProbe(bank)
    module.updates.fill_(3)  # e.g. resumed: the sanity-check probe is logged at the module's own count
    logger = MemoryLogger()
    t = trainer(tmp_path, logger=logger, max_steps=2, num_sanity_val_steps=-1, val_check_interval=2,
                check_val_every_n_epoch=None, log_every_n_steps=1)  # fmt: skip
    t.fit(module, train_dataloaders=loader(*bank), val_dataloaders=loader(*queries))
    probes = [(step, m[OnlineKNNProbe.probe_metric]) for step, m in logger.logged if OnlineKNNProbe.probe_metric in m]
    assert probes[0] == (3, 1.0)  # the sanity check, through the logger directly
    assert len(probes) == 2 and probes[1][1] == 1.0  # then the validation after 2 updates, via self.log
    assert float(t.callback_metrics[OnlineKNNProbe.probe_metric]) == 1.0


def test_misuse_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="k >= 1 and temperature > 0, got k=0"):
        TinyProbe(k=0)
    points, labels = toy_set(3, seed=0)
    with pytest.raises(RuntimeError, match=r"two validation dataloaders.*\[0, 1, 2\]"):
        validate(TinyProbe(), tmp_path, loader(points, labels), loader(points, labels), loader(points, labels))

    class Flat(TinyProbe):
        def probe_features(self, images: Tensor) -> Tensor:
            return images[:, None]

    with pytest.raises(ValueError, match=r"probe_features must return \(B, D\) features.*\(7, 1, 8\)"):
        validate(Flat(), tmp_path, loader(points, labels), loader(points, labels))

    class NoFeatures(OnlineKNNProbe, L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.init_online_probe()

    with pytest.raises(NotImplementedError, match="NoFeatures must define probe_features"):
        validate(NoFeatures(), tmp_path, loader(points, labels), loader(points, labels))
