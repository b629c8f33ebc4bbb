"""Image DataModules read tiny files written in the datasets' real on-disk formats.

Everything goes through the real code paths: torchvision's loaders (with their md5 checks, whose
expected sums are monkeypatched to those of the tiny files), our ``prepare_data``/``setup``, the
dataloaders and ``on_after_batch_transfer``. No network: a download attempt fails the test.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.utils as tv_utils
from torchvision.datasets import CIFAR10, CIFAR100, SVHN

from palm_lightning.datamodules import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetNotFoundError,
    FashionMNISTDataModule,
    SVHNDataModule,
)

torch.set_num_threads(1)

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"test tried to download: {args}")

    monkeypatch.setattr(tv_utils, "_urlretrieve", refuse)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def symmetric(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0 * 2.0 - 1.0


def one_batch(dm, loader) -> tuple[torch.Tensor, torch.Tensor]:
    return dm.on_after_batch_transfer(next(iter(loader)), 0)


# --- Fashion-MNIST: IDX files -------------------------------------------------------------------
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX format: big-endian magic (0x0000, type 0x08 = ubyte, ndim) then big-endian dims."""
    magic = 0x0800 + array.ndim  # 2051 for 3-d images, 2049 for 1-d labels
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def make_fmnist(rng: np.random.Generator, per_class_train: int = 4) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    # pixels ≥ 1 so the zero padding is distinguishable from image content
    train_labels = rng.permutation(np.repeat(np.arange(10), per_class_train)).astype(np.uint8)
    test_labels = np.arange(10, dtype=np.uint8)[::-1].copy()
    return {
        "train": (rng.integers(1, 256, (len(train_labels), 28, 28), dtype=np.uint8), train_labels),
        "test": (rng.integers(1, 256, (10, 28, 28), dtype=np.uint8), test_labels),
    }


def write_fmnist(directory: Path, data: dict, gz: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in data.items():
        for name, array in zip(FMNIST_FILES[split], (images, labels), strict=True):
            raw = idx_bytes(array)
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(raw))
            else:
                (directory / name).write_bytes(raw)


# IDX files spelled out byte by byte from the format's definition (LeCun's MNIST page): a 4-byte
# big-endian magic 0x00 0x00 <type> <ndim> with type 0x08 = unsigned byte, then one 4-byte
# big-endian size per dimension, then the data in C order.
IMAGES_2x3x4 = np.array([[[100 * i + 10 * j + k for k in range(4)] for j in range(3)] for i in range(2)], np.uint8)
IMAGES_2x3x4_IDX = (
    b"\x00\x00\x08\x03"  # magic 0x00000803 = 2051: ubyte, 3 dimensions
    b"\x00\x00\x00\x02"
    b"\x00\x00\x00\x03"
    b"\x00\x00\x00\x04"  # 2 × 3 × 4
    + bytes([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 100, 101, 102, 103, 110, 111, 112, 113, 120, 121, 122, 123])
)
LABELS_4 = np.array([7, 0, 9, 255], np.uint8)
LABELS_4_IDX = b"\x00\x00\x08\x01\x00\x00\x00\x04" + bytes([7, 0, 9, 255])  # magic 2049, 1 dimension of 4


def test_idx_writer_matches_the_spec(tmp_path: Path) -> None:
    assert idx_bytes(IMAGES_2x3x4) == IMAGES_2x3x4_IDX
    assert idx_bytes(LABELS_4) == LABELS_4_IDX
    # a size above 255 needs all 4 big-endian bytes: 300 = 0x0000012C
    assert idx_bytes(np.zeros(300, np.uint8))[:8] == b"\x00\x00\x08\x01\x00\x00\x01\x2c"
    # the shared conftest writers (behind the fmnist_root fixture) write the same bytes
    from conftest import write_idx_images, write_idx_labels

    write_idx_images(tmp_path / "images", IMAGES_2x3x4)
    write_idx_labels(tmp_path / "labels", LABELS_4)
    assert (tmp_path / "images").read_bytes() == IMAGES_2x3x4_IDX
    assert (tmp_path / "labels").read_bytes() == LABELS_4_IDX


def test_the_package_loader_reads_hand_written_idx_files(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(IMAGES_2x3x4_IDX)  # the hand-spelled bytes
    (raw / "train-labels-idx1-ubyte").write_bytes(LABELS_4_IDX[:4] + b"\x00\x00\x00\x02" + bytes([7, 0]))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(LABELS_4_IDX[:4] + b"\x00\x00\x00\x02" + bytes([9, 255]))
    dm = FashionMNISTDataModule(data_dir=str(tmp_path), system_dir=str(tmp_path / "nowhere"))
    images, labels = dm.load_split("train")
    assert images.dtype == torch.uint8 and images.shape == (2, 1, 3, 4)
    assert images[1, 0, 2, 3].item() == 123 and images[0, 0, 1, 0].item() == 10  # C order: (image, row, column)
    assert torch.equal(images[:, 0], torch.from_numpy(IMAGES_2x3x4))
    assert labels.tolist() == [7, 0]
    assert dm.load_split("test")[1].tolist() == [9, 255]


def check_fmnist_loaded(dm: FashionMNISTDataModule, data: dict) -> None:
    images, labels = dm.load_split("train")  # raw split: 28×28, padding comes later
    assert images.dtype == torch.uint8 and images.shape == (40, 1, 28, 28)
    assert torch.equal(images[:, 0], torch.from_numpy(data["train"][0]))
    assert torch.equal(labels, torch.from_numpy(data["train"][1]).long())
    padded, _ = dm._prepared("train")
    assert padded.shape == (40, 1, 32, 32) and torch.equal(padded[:, :, 2:30, 2:30], images)

    dm.setup()
    assert dm.train_set.images.shape == (40, 1, 32, 32) and dm.test_set.images.shape == (10, 1, 32, 32)
    x, y = one_batch(dm, dm.test_dataloader())
    assert x.dtype == torch.float32 and x.shape == (10, 1, 32, 32)
    assert x.min() >= -1.0 and x.max() <= 1.0
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x[:, :, border] == -1.0).all()  # padding is black, not grey
    assert (x[:, :, ~border] > -1.0).all()  # every real pixel was ≥ 1
    assert torch.allclose(x[:, 0, 2:30, 2:30], symmetric(torch.from_numpy(data["test"][0])))
    assert y.tolist() == data["test"][1].tolist()


def test_fmnist_raw_files_in_data_dir(tmp_path: Path) -> None:
    data = make_fmnist(np.random.default_rng(0))
    write_fmnist(tmp_path / "data" / "FashionMNIST" / "raw", data, gz=False)
    dm = FashionMNISTDataModule(data_dir=str(tmp_path / "data"), system_dir=str(tmp_path / "nowhere"), batch_size=10)
    dm.prepare_data()
    check_fmnist_loaded(dm, data)
    x, _ = one_batch(dm, dm.train_dataloader())
    assert x.shape == (10, 1, 32, 32)


def test_fmnist_gzipped_system_copy_is_decompressed(tmp_path: Path) -> None:
    data = make_fmnist(np.random.default_rng(1))
    system_dir = tmp_path / "usr-share"
    write_fmnist(system_dir, data, gz=True)
    data_dir = tmp_path / "data"
    dm = FashionMNISTDataModule(data_dir=str(data_dir), system_dir=str(system_dir), batch_size=10)
    dm.prepare_data()
    raw_dir = data_dir / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw_dir.iterdir()) == sorted(sum(FMNIST_FILES.values(), ()))  # no *.partial left
    assert (raw_dir / "train-images-idx3-ubyte").read_bytes() == idx_bytes(data["train"][0])
    check_fmnist_loaded(dm, data)


def test_fmnist_missing_everywhere_says_where_and_how(tmp_path: Path) -> None:
    data_dir, system_dir = tmp_path / "data", tmp_path / "nowhere"
    dm = FashionMNISTDataModule(data_dir=str(data_dir), system_dir=str(system_dir))
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert str(data_dir / "FashionMNIST" / "raw") in message and str(system_dir) in message
    assert "apt-get install -y dataset-fashion-mnist" in message and "download" in message
    with pytest.raises(DatasetNotFoundError):
        dm.setup()  # setup() alone must not surface torchvision's RuntimeError either


@pytest.fixture
def fmnist_dir(tmp_path: Path) -> tuple[Path, dict]:
    data = make_fmnist(np.random.default_rng(2))
    write_fmnist(tmp_path / "FashionMNIST" / "raw", data, gz=False)
    return tmp_path, data


@pytest.mark.parametrize("val_size, n_val", [(4, 4), (0.25, 10)])
def test_fmnist_val_split(fmnist_dir: tuple[Path, dict], val_size: int | float, n_val: int) -> None:
    data_dir, data = fmnist_dir
    dm = FashionMNISTDataModule(data_dir=str(data_dir), system_dir=str(data_dir / "nowhere"), val_size=val_size)
    dm.setup("fit")
    assert len(dm.val_set) == n_val and len(dm.train_set) == 40 - n_val
    together = torch.cat([dm.train_set.images, dm.val_set.images])[:, 0, 2:30, 2:30].flatten(1)
    original = torch.from_numpy(data["train"][0]).flatten(1)
    # disjoint and complete: the same 40 images, each once (compare as sorted rows)
    assert torch.equal(together.unique(dim=0), original.unique(dim=0)) and len(together.unique(dim=0)) == 40
    # labels travel with their images
    lookup = {bytes(row.numpy()): int(label) for row, label in zip(original, data["train"][1], strict=True)}
    got = torch.cat([dm.train_set.labels, dm.val_set.labels]).tolist()
    assert got == [lookup[bytes(row.numpy())] for row in together]


def test_fmnist_train_fraction_is_class_balanced(fmnist_dir: tuple[Path, dict]) -> None:
    data_dir, _ = fmnist_dir
    dm = FashionMNISTDataModule(data_dir=str(data_dir), system_dir=str(data_dir / "nowhere"), train_fraction=0.5)
    dm.setup("fit")
    assert len(dm.train_set) == 20
    assert torch.bincount(dm.train_set.labels, minlength=10).tolist() == [2] * 10
    small = FashionMNISTDataModule(data_dir=str(data_dir), system_dir=str(data_dir / "nowhere"), train_fraction=0.01)
    small.setup("fit")
    assert torch.bincount(small.train_set.labels, minlength=10).tolist() == [1] * 10  # at least one per class


def test_fmnist_standard_normalization(fmnist_dir: tuple[Path, dict]) -> None:
    data_dir, _ = fmnist_dir
    dm = FashionMNISTDataModule(
        data_dir=str(data_dir), system_dir=str(data_dir / "nowhere"), normalization="standard", batch_size=40
    )
    dm.setup("fit")
    x, _ = one_batch(dm, dm.train_dataloader())  # the whole training set in one batch
    assert x.shape == (40, 1, 32, 32)
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1.0) < 1e-3
    assert x.min() < -1.0  # not the symmetric [-1, 1] mapping


# --- CIFAR: pickled batches as written by Python 2 ----------------------------------------------
class Py2Pickler(pickle._Pickler):
    """Pickles ``bytes`` as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING), as the official files are.

    Loaded with ``encoding="bytes"`` the keys come back as ``b"data"`` etc.; torchvision loads with
    ``encoding="latin1"`` and gets ``"data"``. Python 3's own pickler would give bytes either way.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def py2_pickle(obj: object, path: Path) -> None:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue())


def py2(names: list[str]) -> list[bytes]:
    return [n.encode() for n in names]


def batch_dict(images: np.ndarray, labels: np.ndarray, label_key: bytes, extra: dict | None = None) -> dict:
    """Rows of 3072 uint8 in CHW order (1024 R, 1024 G, 1024 B, each row-major), as in the archive."""
    return {
        b"batch_label": b"tiny batch",
        label_key: [int(v) for v in labels],
        b"data": images.reshape(len(images), 3072),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
        **(extra or {}),
    }


def test_py2_pickles_read_like_the_official_files(tmp_path: Path) -> None:
    py2_pickle({b"data": np.arange(6, dtype=np.uint8), b"labels": [1]}, tmp_path / "b")
    with open(tmp_path / "b", "rb") as f:
        assert set(pickle.load(f, encoding="bytes")) == {b"data", b"labels"}
    with open(tmp_path / "b", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    assert set(entry) == {"data", "labels"} and entry["data"].tolist() == list(range(6))


def write_cifar(root: Path, kind: str, monkeypatch: pytest.MonkeyPatch, seed: int = 0) -> dict:
    """Write a tiny CIFAR-10/100 folder and point torchvision's md5 table at it."""
    rng = np.random.default_rng(seed)
    cls = CIFAR10 if kind == "cifar10" else CIFAR100
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    num_classes = 10 if kind == "cifar10" else 100
    train_x = rng.integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    train_y = rng.integers(0, num_classes, 20)
    train_y[:2] = [0, num_classes - 1]
    test_x = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    test_y = np.arange(6) * (num_classes // 6)
    if kind == "cifar10":
        names = CIFAR10_NAMES
        for i in range(5):
            part = slice(4 * i, 4 * i + 4)
            py2_pickle(batch_dict(train_x[part], train_y[part], b"labels"), folder / f"data_batch_{i + 1}")
        py2_pickle(batch_dict(test_x, test_y, b"labels"), folder / "test_batch")
        py2_pickle({b"num_cases_per_batch": 4, b"label_names": py2(names), b"num_vis": 3072}, folder / "batches.meta")
        train_files, test_files = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
    else:
        names = [f"fine_{i:02d}" for i in range(100)]
        for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
            extra = {b"coarse_labels": [int(v) // 5 for v in y]}
            py2_pickle(batch_dict(x, y, b"fine_labels", extra), folder / name)
        meta = {b"fine_label_names": py2(names), b"coarse_label_names": py2([f"coarse_{i}" for i in range(20)])}
        py2_pickle(meta, folder / "meta")
        train_files, test_files = ["train"], ["test"]
    monkeypatch.setattr(cls, "train_list", [[n, md5(folder / n)] for n in train_files])
    monkeypatch.setattr(cls, "test_list", [[n, md5(folder / n)] for n in test_files])
    meta_name = cls.meta["filename"]
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5(folder / meta_name)})
    return {"folder": folder, "train": (train_x, train_y), "test": (test_x, test_y), "names": names}


CIFAR_CASES = [("cifar10", CIFAR10DataModule), ("cifar100", CIFAR100DataModule)]


@pytest.mark.parametrize("kind, module", CIFAR_CASES)
def test_cifar_loads_real_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, module: type) -> None:
    files = write_cifar(tmp_path, kind, monkeypatch)
    dm = module(data_dir=str(tmp_path), batch_size=6)
    if kind == "cifar100":
        assert dm.class_names == tuple(str(i) for i in range(100))  # before loading
    assert dm.resolution == 32 and dm.normalization == "symmetric" and dm.image_shape == (3, 32, 32)
    dm.prepare_data()

    images, labels = dm.load_split("train")  # five batches concatenated in order
    assert images.dtype == torch.uint8 and images.shape == (20, 3, 32, 32) and images.is_contiguous()
    assert torch.equal(images, torch.from_numpy(files["train"][0]))  # CHW rows → NCHW, not transposed
    assert labels.dtype == torch.int64 and labels.tolist() == files["train"][1].tolist()
    assert dm.class_names == tuple(files["names"])
    assert all(type(n) is str for n in dm.class_names)

    dm.setup()
    assert len(dm.train_set) == 20 and len(dm.test_set) == 6
    x, y = one_batch(dm, dm.test_dataloader())
    assert x.shape == (6, 3, 32, 32) and x.min() >= -1.0 and x.max() <= 1.0
    assert torch.allclose(x, symmetric(torch.from_numpy(files["test"][0])))
    assert y.tolist() == files["test"][1].tolist()


def test_cifar_standard_normalization(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_cifar(tmp_path, "cifar10", monkeypatch)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), normalization="standard", batch_size=20)
    dm.setup("fit")
    x, _ = one_batch(dm, dm.train_dataloader())
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


@pytest.mark.parametrize("kind, module", CIFAR_CASES)
def test_cifar_corrupt_or_missing_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, module: type
) -> None:
    files = write_cifar(tmp_path, kind, monkeypatch)
    folder: Path = files["folder"]
    bad, gone = ("data_batch_3", "test_batch") if kind == "cifar10" else ("train", "test")
    with open(folder / bad, "r+b") as f:  # flip one pixel byte: still a valid pickle, wrong md5
        f.seek(-100, io.SEEK_END)
        byte = f.read(1)
        f.seek(-100, io.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))
    (folder / gone).unlink()
    dm = module(data_dir=str(tmp_path))
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(DatasetNotFoundError) as info:
            step()
        message = str(info.value)
        assert str(folder) in message
        assert f"{bad} (corrupt" in message and f"{gone} (missing)" in message
        assert "download: true" in message and "--data.init_args.download true" in message
        assert folder.name in message and "tar.gz" in message
        assert not isinstance(info.value.__cause__, DatasetNotFoundError)


def test_cifar_nothing_there(tmp_path: Path) -> None:
    dm = CIFAR100DataModule(data_dir=str(tmp_path / "empty"))
    with pytest.raises(DatasetNotFoundError, match=r"train \(missing\); test \(missing\); meta \(missing\)"):
        dm.prepare_data()


def test_cifar_download_extracts_official_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``download: true`` goes through torchvision's download+extract; a verified archive is not refetched."""
    files = write_cifar(tmp_path / "src", "cifar10", monkeypatch)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive = data_dir / CIFAR10.filename
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(files["folder"], arcname=CIFAR10.base_folder)
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5(archive))

    with pytest.raises(DatasetNotFoundError):
        CIFAR10DataModule(data_dir=str(data_dir)).prepare_data()  # download off: archive untouched
    dm = CIFAR10DataModule(data_dir=str(data_dir), download=True)
    dm.prepare_data()
    assert (data_dir / CIFAR10.base_folder / "batches.meta").is_file()
    images, _ = dm.load_split("test")
    assert torch.equal(images, torch.from_numpy(files["test"][0]))


# --- SVHN: MATLAB files ---------------------------------------------------------------------------
def write_svhn(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    scipy_io = pytest.importorskip("scipy.io")
    rng = np.random.default_rng(3)
    out = {}
    for split, n in (("train", 12), ("test", 7)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)  # (H, W, C, N) as in the official files
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # 1..10; 10 is digit 0
        y[0, 0], y[1, 0] = 10, 1
        url, filename, _ = SVHN.split_list[split]
        scipy_io.savemat(root / filename, {"X": x, "y": y})
        monkeypatch.setitem(SVHN.split_list, split, [url, filename, md5(root / filename)])
        out[split] = (x, y)
    return out


def test_svhn_loads_real_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = write_svhn(tmp_path, monkeypatch)
    dm = SVHNDataModule(data_dir=str(tmp_path), batch_size=7)
    assert dm.class_names == tuple("0123456789") and dm.image_shape == (3, 32, 32)
    dm.prepare_data()
    images, labels = dm.load_split("train")
    x, y = files["train"]
    assert images.dtype == torch.uint8 and images.shape == (12, 3, 32, 32) and images.is_contiguous()
    # image n, channel c, row h, column w is X[h, w, c, n]: no accidental H/W swap
    assert torch.equal(images, torch.from_numpy(x).permute(3, 2, 0, 1))
    expected = np.where(y[:, 0] == 10, 0, y[:, 0])
    assert labels.dtype == torch.int64 and labels.tolist() == expected.tolist()
    assert labels[0] == 0 and labels[1] == 1 and labels.max() <= 9

    dm.setup()
    batch_x, batch_y = one_batch(dm, dm.test_dataloader())
    tx, ty = files["test"]
    assert torch.allclose(batch_x, symmetric(torch.from_numpy(tx).permute(3, 2, 0, 1)))
    assert batch_y.tolist() == np.where(ty[:, 0] == 10, 0, ty[:, 0]).tolist()


def test_svhn_corrupt_or_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_svhn(tmp_path, monkeypatch)
    (tmp_path / "test_32x32.mat").unlink()
    with open(tmp_path / "train_32x32.mat", "ab") as f:
        f.write(b"\0")
    dm = SVHNDataModule(data_dir=str(tmp_path))
    for step in (dm.prepare_data, dm.setup):
        with pytest.raises(DatasetNotFoundError) as info:
            step()
        message = str(info.value)
        assert str(tmp_path) in message and "train_32x32.mat (corrupt" in message
        assert "test_32x32.mat (missing)" in message and "--data.init_args.download true" in message


def test_svhn_without_scipy_says_pip_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy", None)  # makes `import scipy` fail and find_spec return None
    dm = SVHNDataModule(data_dir=str(tmp_path))
    for step in (dm.prepare_data, lambda: dm.load_split("train")):
        with pytest.raises(ImportError, match="pip install scipy"):
            step()


def test_datamodules_do_not_share_class_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading CIFAR-100 sets names on the instance, not on the class."""
    write_cifar(tmp_path, "cifar100", monkeypatch)
    CIFAR100DataModule(data_dir=str(tmp_path)).load_split("test")
    assert CIFAR100DataModule.class_names == tuple(str(i) for i in range(100))


def test_fmnist_truncated_file_is_named(tmp_path: Path) -> None:
    from conftest import make_fashion_mnist

    root = make_fashion_mnist(tmp_path / "data", n_train=20, n_test=10)
    images = root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:500])  # an interrupted copy
    dm = FashionMNISTDataModule(data_dir=str(root), system_dir=str(tmp_path / "none"))
    with pytest.raises(DatasetNotFoundError, match=r"unreadable .*Delete that folder"):
        dm.setup("fit")
