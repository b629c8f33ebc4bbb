"""Train the example's conditional VAE on Fashion-MNIST (32×32) and save its decoder's weights.

    python examples/own_generator/train.py --data-dir data --out examples/own_generator/cvae_decoder.pt

About 3 minutes on one CPU thread (the defaults). Fashion-MNIST is read from ``<data-dir>``, or from
Debian's ``/usr/share/datasets/fashion-mnist`` copy, or downloaded with ``--download``. The output is
a plain ``state_dict`` of :class:`cvae.CVAEDecoder`, which PALM loads with ``weights_only=True``
(``--data.init_args.generator_weights``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from cvae import CVAE  # next to this script, which Python puts first on sys.path

from palm_lightning.datamodules import FashionMNISTDataModule


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data", help="Fashion-MNIST location (see FashionMNISTDataModule)")
    parser.add_argument("--download", action="store_true", help="download Fashion-MNIST if it is not found")
    parser.add_argument("--out", default="examples/own_generator/cvae_decoder.pt", help="the decoder's state_dict")
    parser.add_argument("--latent-dim", type=int, default=16, help="size of z (PALM's action_dim)")
    parser.add_argument("--width", type=int, default=32, help="channels of the last hidden layer")
    parser.add_argument("--steps", type=int, default=2500, help="Adam updates")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = FashionMNISTDataModule(data_dir=args.data_dir, resolution=32, download=args.download)
    data.prepare_data()
    data.setup("fit")
    assert data.train_set is not None
    images, labels = data.train_set.images, data.train_set.labels  # uint8 (N, 1, 32, 32), int64 (N,)
    model = CVAE(args.latent_dim, data.num_classes, 32, data.channels, args.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        pick = torch.randint(len(labels), (args.batch_size,))
        recon, kl = model.loss(data.normalize(images[pick]), labels[pick])
        optimizer.zero_grad(set_to_none=True)
        (recon + kl).backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == args.steps:
            elapsed = time.perf_counter() - start
            print(
                f"step {step:5d}  reconstruction {recon.item():7.1f}  KL {kl.item():5.1f} nats  ({elapsed:.0f} s)",
                flush=True,
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.decoder.state_dict(), out)
    size = out.stat().st_size / 2**20
    print(f"saved the decoder's state_dict to {out} ({size:.2f} MiB) after {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
