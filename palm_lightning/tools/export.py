"""Export the network of a Lightning checkpoint to a standalone network file.

    python -m palm_lightning.tools.export --checkpoint runs/.../last.ckpt --out generator.pt

The checkpoint's network description (``kind``, class, config, weights) is written as a network
file (see :mod:`palm_lightning.checkpoints`), loadable with ``weights_only=True``. ``--half``
stores floating-point weights as float16 (half the size; they are cast back to float32 on load).
For a checkpoint written without a description, name its module with ``--module``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from palm_lightning.checkpoints import CheckpointError, build_network, read_description, save_network


def export(checkpoint: str | Path, out: str | Path, module: str | None = None, half: bool = False) -> Path:
    """Write the network of ``checkpoint`` to ``out`` and return ``out``."""
    if module is None:
        description = read_description(checkpoint)
        network = build_network(description, source=str(checkpoint))
        kind = description["kind"]
    else:
        module_name, _, class_name = module.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        lightning_module = cls.load_from_checkpoint(str(checkpoint), map_location="cpu")
        network, kind = lightning_module.exported_network(), lightning_module.network_kind
    meta = {"source": str(checkpoint)}
    return save_network(network, out, kind, meta=meta, half=half)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="Lightning .ckpt (or network file) to export")
    parser.add_argument("--out", required=True, help="network file to write")
    parser.add_argument(
        "--module", default=None, help="LightningModule class path, for checkpoints without a description"
    )
    parser.add_argument("--half", action="store_true", help="store floating-point weights as float16")
    args = parser.parse_args(argv)
    try:
        path = export(args.checkpoint, args.out, args.module, args.half)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
