"""Score a conditional generator against real images with a reference classifier.

    python -m palm_lightning.tools.generator_quality                       # the shipped pair
    python -m palm_lightning.tools.generator_quality --generator runs/.../last.ckpt --truncation-psi 1.0 0.7
    PYTHONPATH=examples/own_generator python -m palm_lightning.tools.generator_quality \
        --generator examples/own_generator/palm_cvae.yaml                   # your own generator class
    python -m palm_lightning.tools.generator_quality --data configs/classifier/atari.yaml \
        --classifier runs/classifier_atari/version_0/checkpoints/last.ckpt --generator G.ckpt  # another dataset

``--generator`` takes a network file / checkpoint, or a YAML file naming your own generator class:
``class_path`` / ``init_args`` at its top, or a PALM config (overlay) whose
``data.init_args.generator`` does (its ``generator_weights`` come along). ``--generator-weights``
loads a plain ``state_dict`` into it.

Two numbers per generator:

- **conditional accuracy**: the fraction of samples generated for class k that the reference
  classifier assigns to class k (classes balanced);
- **within-class diversity**: the classifier-feature variance (trace of the covariance) of the
  samples of each class, divided by that of the real test images of the class, averaged over
  classes — 1.0 is as varied as the real data; near 0 means the generator ignores z within a class
  (a collapse that conditional accuracy alone does not reveal);
- **Fréchet distance** between Gaussian fits of the classifier's penultimate features of the
  samples and of the real *test* images (FID's formula in a feature space trained on the dataset).

Another dataset: ``--data`` takes a config whose ``data`` block (``class_path`` / ``init_args``)
names an :class:`~palm_lightning.datamodules.images.base.ImageDataModule`, best the reference
classifier's own training config (then data and classifier match by construction), and
``--classifier`` that classifier (the shipped one is Fashion-MNIST's).

The reference rows score real images the same way: the test set's accuracy, and the Fréchet
distance of an equally large random subset of the real *training* images to the test set — what
a perfect generator would get.

``--pixel-nn N`` adds a check in pixel space, where the classifier's features are blind (telling
six Atari games apart needs none of their sprites): for ``N`` images of each row, the RMS pixel
distance to the nearest *training* image of the same class, as a median, divided by the same
median for real *test* images. About 1: as far from the training set as unseen real frames; near
0: copies of training images (memorisation); well above 1: off the data manifold (blur, artefacts).
The same N images also give the **pixel variety**: the mean RMS pixel distance between two images of
the same class, divided by that of real test images — near 0 when z barely changes the image (one
frame per class, which neither the classifier's features nor the nearest-neighbour check sees on
Atari), about 1 when samples differ as much as real frames do.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from torch import Tensor, nn

from palm_lightning import SHIPPED_CLASSIFIER
from palm_lightning.checkpoints import CheckpointError, load_network, packaged
from palm_lightning.class_paths import import_class
from palm_lightning.datamodules.images.base import DatasetNotFoundError, ImageDataModule
from palm_lightning.generators import GeneratorConfigError, GeneratorSource, resolve_generator
from palm_lightning.metrics.frechet import frechet_distance, gaussian_statistics
from palm_lightning.nn.protocols import GeneratorProtocolError, check_generator


class DataConfigError(ValueError):
    """``--data`` does not name an image DataModule that can be built."""


@dataclass
class QualityRow:
    name: str
    num_images: int
    conditional_accuracy: float
    frechet_distance: float
    diversity: float = 1.0
    pixel_nn: float | None = None  # median RMS pixel distance to the nearest same-class train image
    pixel_nn_ratio: float | None = None  # pixel_nn / the real test images' pixel_nn
    pixel_variety_ratio: float | None = None  # within-class pairwise pixel distance / the real test images'


@torch.no_grad()
def classify(classifier: nn.Module, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Predicted labels and penultimate features of ``images`` (already normalised like the data)."""
    network = cast(Any, classifier)  # a ConvClassifier-like network: features(), head
    preds, feats = [], []
    for chunk in images.split(batch_size):
        f = network.features(chunk)
        feats.append(f)
        preds.append(network.head(f).argmax(dim=1))
    return torch.cat(preds), torch.cat(feats)


@torch.no_grad()
def sample_balanced(
    generator: nn.Module, num_samples: int, truncation_psi: float = 1.0, batch_size: int = 500, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """``num_samples`` images with labels cycling through the classes (balanced), and the labels."""
    g = torch.Generator().manual_seed(seed)
    sizes = cast(Any, generator)  # the generator protocol's latent_dim and num_classes
    labels = torch.arange(num_samples) % sizes.num_classes
    z = torch.randn(num_samples, sizes.latent_dim, generator=g)
    accepts_psi = "truncation_psi" in inspect.signature(generator.forward).parameters
    if not accepts_psi and truncation_psi != 1.0:
        raise ValueError(f"{type(generator).__name__} does not take truncation_psi")
    kwargs = {"truncation_psi": truncation_psi} if accepts_psi else {}
    out = [generator(zc, cc, **kwargs) for zc, cc in zip(z.split(batch_size), labels.split(batch_size), strict=True)]
    return torch.cat(out), labels


def class_spreads(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Trace of the feature covariance of each class ``(num_classes,)`` (NaN for absent classes)."""
    spreads = torch.full((num_classes,), float("nan"), dtype=torch.float64)
    for k in range(num_classes):
        members = features[labels == k].double()
        if len(members) > 1:
            spreads[k] = members.var(dim=0).sum()
    return spreads


@torch.no_grad()
def nearest_train_distance(
    queries: Tensor, query_labels: Tensor, train: Tensor, train_labels: Tensor, chunk: int = 256
) -> Tensor:
    """RMS pixel distance of every query image to its nearest ``train`` image of the same class.

    Images of any shape ``(N, ...)`` in the same value range; chunked so memory stays at
    ``chunk × len(train of a class)`` distances. A query whose class has no train image gets NaN.
    """
    flat_train = train.flatten(1).float()
    flat_queries = queries.flatten(1).float()
    pixels = flat_train.shape[1]
    out = torch.full((len(queries),), float("nan"))
    for k in query_labels.unique().tolist():
        bank = flat_train[train_labels == k]
        if len(bank) == 0:
            continue
        index = (query_labels == k).nonzero().squeeze(1)
        for part in index.split(chunk):
            nearest = torch.cdist(flat_queries[part], bank).min(dim=1).values
            out[part] = nearest / pixels**0.5
    return out


@torch.no_grad()
def within_class_pixel_distance(images: Tensor, labels: Tensor) -> float:
    """Mean RMS pixel distance between two different images of the same class, averaged over the
    classes with at least two images (NaN if none has)."""
    flat = images.flatten(1).float()
    means = []
    for k in labels.unique().tolist():
        members = flat[labels == k]
        n = len(members)
        if n < 2:
            continue
        distances = torch.cdist(members, members) / flat.shape[1] ** 0.5
        means.append(float(distances.sum() / (n * (n - 1))))  # the diagonal is 0
    return sum(means) / len(means) if means else float("nan")


def score(
    name: str,
    images: Tensor,
    labels: Tensor,
    classifier: nn.Module,
    reference: tuple[Tensor, Tensor],
    reference_spreads: Tensor,
) -> QualityRow:
    preds, feats = classify(classifier, images)
    mu, sigma = gaussian_statistics(feats)
    spreads = class_spreads(feats, labels, len(reference_spreads))
    return QualityRow(
        name=name,
        num_images=len(labels),
        conditional_accuracy=float((preds == labels).float().mean()),
        frechet_distance=frechet_distance(mu, sigma, *reference),
        diversity=float((spreads / reference_spreads).nanmean()),
    )


def evaluate(
    generator: nn.Module,
    classifier: nn.Module,
    datamodule: ImageDataModule,
    truncation_psis: tuple[float, ...] = (1.0,),
    num_samples: int = 10_000,
    seed: int = 0,
    generator_name: str = "generator",
    pixel_nn: int = 0,
    pixel_nn_bank: int = 20_000,
) -> list[QualityRow]:
    """Reference rows (real test, real train subset) then one row per truncation ψ.

    ``pixel_nn > 0``: the pixel-space nearest-training-image check (module docstring) on that many
    images of the test row and of each generated row, against ``pixel_nn_bank`` random training
    images (all of them if fewer; the real-train row is skipped: its nearest image is itself)."""
    check_generator(generator)
    protocol = cast(Any, generator)  # image_shape and num_classes, checked just above
    if tuple(protocol.image_shape) != tuple(datamodule.image_shape):
        raise ValueError(
            f"generator makes {tuple(protocol.image_shape)} images but the data are {datamodule.image_shape}; "
            "pick the matching dataset/resolution"
        )
    if protocol.num_classes != datamodule.num_classes:
        raise ValueError(f"generator has {protocol.num_classes} classes, the data {datamodule.num_classes}")
    classes = getattr(classifier, "num_classes", datamodule.num_classes)
    if classes != datamodule.num_classes:
        raise ValueError(
            f"the classifier tells {classes} classes apart, the data have {datamodule.num_classes}: "
            "give --classifier one trained on these data"
        )
    datamodule.prepare_data()
    datamodule.setup("fit")
    datamodule.setup("test")
    assert datamodule.train_set is not None and datamodule.test_set is not None
    test_images = datamodule.normalize(datamodule.test_set.images)
    _, test_feats = classify(classifier, test_images)
    reference = gaussian_statistics(test_feats)
    spreads = class_spreads(test_feats, datamodule.test_set.labels, datamodule.num_classes)
    rows = [score("real test images", test_images, datamodule.test_set.labels, classifier, reference, spreads)]
    rows[0].frechet_distance = 0.0  # identical sets, by definition
    n = min(num_samples, len(datamodule.train_set))
    pick = torch.randperm(len(datamodule.train_set), generator=torch.Generator().manual_seed(seed))[:n]
    rows.append(
        score(
            "real train images (reference)",
            datamodule.normalize(datamodule.train_set.images[pick]),
            datamodule.train_set.labels[pick],
            classifier,
            reference,
            spreads,
        )
    )
    samples = []
    for psi in truncation_psis:
        images, labels = sample_balanced(generator, num_samples, psi, seed=seed)
        rows.append(score(f"{generator_name} (ψ={psi:g})", images, labels, classifier, reference, spreads))
        samples.append((images[:pixel_nn], labels[:pixel_nn]))
    if pixel_nn > 0:
        g = torch.Generator().manual_seed(seed + 1)
        bank_pick = torch.randperm(len(datamodule.train_set), generator=g)[:pixel_nn_bank]
        bank = datamodule.normalize(datamodule.train_set.images[bank_pick])
        bank_labels = datamodule.train_set.labels[bank_pick]
        test_pick = torch.randperm(len(test_images), generator=g)[:pixel_nn]
        test_median = float(
            nearest_train_distance(
                test_images[test_pick], datamodule.test_set.labels[test_pick], bank, bank_labels
            ).nanmedian()
        )
        rows[0].pixel_nn, rows[0].pixel_nn_ratio, rows[0].pixel_variety_ratio = test_median, 1.0, 1.0
        test_variety = within_class_pixel_distance(test_images[test_pick], datamodule.test_set.labels[test_pick])
        for row, (images, labels) in zip(rows[2:], samples, strict=True):
            row.pixel_nn = float(nearest_train_distance(images, labels, bank, bank_labels).nanmedian())
            row.pixel_nn_ratio = row.pixel_nn / test_median if test_median > 0 else float("inf")
            row.pixel_variety_ratio = within_class_pixel_distance(images, labels) / test_variety
    return rows


def format_table(rows: list[QualityRow]) -> str:
    with_nn = any(r.pixel_nn is not None for r in rows)
    header = "| images | n | conditional accuracy | within-class diversity | Fréchet distance to test |"
    rule = "|---|---:|---:|---:|---:|"
    if with_nn:
        header += " pixel NN distance (median) | ÷ test's | pixel variety ÷ test's |"
        rule += "---:|---:|---:|"
    lines = [header, rule]
    for r in rows:
        line = (
            f"| {r.name} | {r.num_images} | {100 * r.conditional_accuracy:.2f}% | {r.diversity:.3f} "
            f"| {r.frechet_distance:.3f} |"
        )
        if with_nn:
            nn_cells = (
                (f"{r.pixel_nn:.4f}", f"{r.pixel_nn_ratio:.2f}")
                if r.pixel_nn is not None and r.pixel_nn_ratio is not None
                else ("–", "–")
            )
            variety = "–" if r.pixel_variety_ratio is None else f"{r.pixel_variety_ratio:.2f}"
            line += f" {nn_cells[0]} | {nn_cells[1]} | {variety} |"
        lines.append(line)
    return "\n".join(lines)


def read_yaml(path: Path, error: type[ValueError]) -> Any:
    """The parsed file, or ``error`` naming the file and the problem in one line."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as err:
        raise error(f"cannot read {path}: {err.strerror or err}") from err
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise error(f"{path} is not valid YAML ({first})") from err


def generator_from_yaml(path: str | Path) -> tuple[GeneratorSource, str | None]:
    """The generator a YAML file names, and the weights it names for it (or ``None``).

    The file holds either ``class_path`` / ``init_args`` at its top, or a PALM config (overlay)
    whose ``data.init_args.generator`` is a ``class_path`` block or a network file (then
    ``data.init_args.generator_weights`` comes along).
    """
    path = Path(path)
    doc = read_yaml(path, GeneratorConfigError)
    if isinstance(doc, dict) and "class_path" in doc:
        return doc, None
    data = doc.get("data") if isinstance(doc, dict) else None
    init_args = data.get("init_args") if isinstance(data, dict) else None
    spec = init_args.get("generator") if isinstance(init_args, dict) else None
    if isinstance(spec, (dict, str)):
        assert isinstance(init_args, dict)
        weights = init_args.get("generator_weights")
        return spec, None if weights is None else str(weights)
    raise GeneratorConfigError(
        f"{path} names no generator: give class_path (and init_args) at its top, or a PALM config with "
        "data.init_args.generator"
    )


def load_generator_argument(generator: str | None, weights: str | None = None) -> Any:
    """The generator a tool's ``--generator`` names (``None``: the default shipped one; a shipped
    name; a network file or checkpoint; a YAML file, see :func:`generator_from_yaml`), with
    ``weights`` (else the YAML's ``generator_weights``) loaded, in eval mode."""
    source: GeneratorSource = generator
    if generator and Path(generator).suffix.lower() in (".yaml", ".yml"):
        source, named_weights = generator_from_yaml(generator)
        weights = weights or named_weights
    return resolve_generator(source, weights).eval()


def datamodule_from_config(path: str | Path, data_dir: str | None = None) -> ImageDataModule:
    """The :class:`ImageDataModule` that the ``data`` block of a LightningCLI config names
    (``class_path`` / ``init_args``; ``data_dir``, when given, replaces the config's)."""
    path = Path(path)
    doc = read_yaml(path, DataConfigError)
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, dict) or "class_path" not in data:
        raise DataConfigError(f"{path} has no data block with a class_path (e.g. configs/classifier/fmnist.yaml)")
    class_path = str(data["class_path"])
    init_args = dict(data.get("init_args") or {})
    if data_dir is not None:
        init_args["data_dir"] = data_dir
    try:
        cls = import_class(class_path, ImageDataModule, DataConfigError, base_name="ImageDataModule")
    except DataConfigError as err:
        raise DataConfigError(f"{path}: data {err} (labelled images are needed)") from err
    try:
        return cls(**init_args)
    except TypeError as err:
        raise DataConfigError(f"{path}: init_args {init_args} do not fit {class_path}: {err}") from err


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--generator",
        default=None,
        help="network file or .ckpt, or a YAML file naming your own class: class_path/init_args, or a PALM config "
        "with data.init_args.generator (default: the shipped generator)",
    )
    parser.add_argument(
        "--generator-weights",
        default=None,
        help="a plain state_dict (or network file) loaded into the generator (default: the YAML's generator_weights)",
    )
    parser.add_argument(
        "--classifier", default=None, help="network file or .ckpt (default: the shipped Fashion-MNIST classifier)"
    )
    parser.add_argument(
        "--data",
        default=None,
        help="a config whose data block names the real images, e.g. configs/classifier/atari.yaml (needs "
        "--classifier; default: Fashion-MNIST at the generator's resolution)",
    )
    parser.add_argument("--data-dir", default=None, help="where the data live (default: data, or the --data config's)")
    parser.add_argument("--download", action="store_true", help="download Fashion-MNIST if it is not found")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--truncation-psi", type=float, nargs="+", default=[1.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pixel-nn",
        type=int,
        default=0,
        metavar="N",
        help="pixel-space check on N images per row: median distance to the nearest same-class training image, "
        "÷ real test images' (~1 novel, ~0 copies, >1 off-manifold; 0: off)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.data and not args.classifier:
        parser.error(
            f"--data {args.data} needs --classifier: the shipped classifier knows Fashion-MNIST only; train one with "
            f"python -m palm_lightning fit --config {args.data}"
        )
    if args.threads:
        torch.set_num_threads(args.threads)

    from palm_lightning.datamodules.atari.frames import AtariDataError
    from palm_lightning.datamodules.images.fashion_mnist import FashionMNISTDataModule

    try:
        generator: Any = load_generator_argument(args.generator, args.generator_weights)
        classifier = load_network(args.classifier or packaged(SHIPPED_CLASSIFIER), kind="classifier")
        if args.data:
            datamodule = datamodule_from_config(args.data, args.data_dir)
        else:
            datamodule = FashionMNISTDataModule(
                data_dir=args.data_dir or "data", resolution=generator.image_shape[-1], download=args.download
            )
        start = time.perf_counter()
        rows = evaluate(
            generator,
            classifier,
            datamodule,
            tuple(args.truncation_psi),
            args.num_samples,
            args.seed,
            generator_name=str(args.generator or "shipped generator"),
            pixel_nn=args.pixel_nn,
        )
    except (CheckpointError, DatasetNotFoundError, GeneratorProtocolError, AtariDataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print(f"\n({time.perf_counter() - start:.1f} s; classifier {args.classifier or 'shipped'}; seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
