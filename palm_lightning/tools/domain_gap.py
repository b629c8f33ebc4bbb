"""Why a PALM encoder does (or does not) transfer: kNN accuracy within and across domains.

    python -m palm_lightning.tools.domain_gap runs/palm/version_0/checkpoints/last.ckpt [--truncation-psi 2.0]

For the checkpoint's encoder and the same architecture randomly initialised, prints weighted-kNN
accuracy (k = 20, cosine, the online probe's classifier) for three pairings:

- generated → generated: bank and queries are the environment's frames labelled with their
  episode class (how separable the generated classes are);
- real → real: the online probe's protocol (10 000 train images as bank, 3 000 test queries);
- generated → real: a generated bank classifying real test images (how close the domains are).
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor

from palm_lightning.datamodules import FashionMNISTDataModule
from palm_lightning.envs import LatentManifold
from palm_lightning.evaluation.knn import knn_classify
from palm_lightning.models.palm.palm import PALM


def features(model: PALM, x: Tensor) -> Tensor:
    return torch.cat([model.encode(chunk) for chunk in x.split(1000)])


def accuracy(model: PALM, bank: Tensor, bank_labels: Tensor, query: Tensor, query_labels: Tensor) -> float:
    predicted = knn_classify(features(model, bank), bank_labels, features(model, query), 10)
    return float((predicted == query_labels).float().mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--truncation-psi", type=float, default=1.0)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    trained = PALM.load_from_checkpoint(args.checkpoint, map_location="cpu").eval()
    random = PALM(**dict(trained.hparams)).eval()
    bank_env = LatentManifold(num_envs=args.samples, seed=5, truncation_psi=args.truncation_psi)
    query_env = LatentManifold(num_envs=args.samples, seed=6, truncation_psi=args.truncation_psi)
    (gen_bank, bank_info), (gen_query, query_info) = bank_env.reset(), query_env.reset()
    data = FashionMNISTDataModule(data_dir=args.data_dir, resolution=32)
    data.setup(None)
    assert data.train_set is not None and data.test_set is not None  # made by setup()
    real_bank, real_bank_labels = data.train_set.images[:10_000], data.train_set.labels[:10_000]
    real_query, real_query_labels = data.test_set.images[:3000], data.test_set.labels[:3000]
    print("| encoder | generated → generated | real → real | generated → real |")
    print("|---|---:|---:|---:|")
    with torch.no_grad():
        for name, model in (("PALM checkpoint", trained), ("same encoder, random init", random)):
            gg = accuracy(model, gen_bank, bank_info["class"], gen_query, query_info["class"])
            rr = accuracy(model, real_bank, real_bank_labels, real_query, real_query_labels)
            gr = accuracy(model, gen_bank, bank_info["class"], real_query, real_query_labels)
            print(f"| {name} | {gg:.1%} | {rr:.1%} | {gr:.1%} |")


if __name__ == "__main__":
    main()
