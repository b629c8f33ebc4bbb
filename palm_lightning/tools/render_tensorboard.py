"""Render a TensorBoard run to PNG files, to look at what a user would see without a browser.

    python -m palm_lightning.tools.render_tensorboard runs/generator_fmnist/version_0 --out /tmp/tb

Writes ``scalars.png`` (one panel per scalar tag) and, for every image tag, the newest image as
``<tag>.png``. Needs matplotlib (``pip install matplotlib``).
"""

from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def render(run_dir: str, out: str, step: int | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    acc = EventAccumulator(run_dir, size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    tags = acc.Tags()
    scalars = sorted(tags.get("scalars", []))
    if scalars:
        cols = 3
        rows = math.ceil(len(scalars) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3 * rows), squeeze=False)
        for ax, tag in zip(axes.flat, scalars, strict=False):  # the last row may have spare axes
            events = acc.Scalars(tag)
            ax.plot([e.step for e in events], [e.value for e in events], lw=0.8)
            ax.set_title(tag, fontsize=9)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(scalars) :]:
            ax.axis("off")
        fig.tight_layout()
        path = out_dir / "scalars.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    for tag in tags.get("images", []):
        events = acc.Images(tag)
        chosen = events[-1] if step is None else min(events, key=lambda e: abs(e.step - step))
        image = Image.open(io.BytesIO(chosen.encoded_image_string))
        path = out_dir / f"{tag.replace('/', '_')}_step{chosen.step}.png"
        image.save(path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="a TensorBoard run folder, e.g. runs/palm/version_0")
    parser.add_argument("--out", default="tb_render", help="folder for the PNG files")
    parser.add_argument("--step", type=int, default=None, help="image step to show (default: newest)")
    args = parser.parse_args(argv)
    for path in render(args.run_dir, args.out, args.step):
        print(path)


if __name__ == "__main__":
    main()
