"""APT's k-nearest-neighbour distances: speed and accuracy of four ways to compute them.

    python benchmarks/apt_distances.py                      # batch 256, 512, 1024; dim 256; 1 and 2 threads
    python benchmarks/apt_distances.py --device cuda --threads 1

For random particles ``(batch, dim)`` (dim 256, the default representation size; k = 12 as URLB),
each method returns the k smallest distances of every particle to the batch (itself included):

- ``mm``: ``torch.cdist`` on its default matrix-multiply path (``‖s‖² + ‖t‖² − 2 s·t``, used above
  25 rows) and ``topk``: the package's APT before issue 43;
- ``refined``: :func:`palm_lightning.losses.apt.knn_distances`, the ``mm`` ranking, then the
  k + 4 nearest re-measured from their differences;
- ``exact cdist``: ``torch.cdist(compute_mode="donot_use_mm_for_euclid_dist")`` and ``topk``;
- ``URLB``: URLB's ``torch.norm(s[:, None] − t[None], dim=-1)`` and ``topk`` (a ``(B, B, dim)``
  intermediate).

Times are the best of ``--rounds`` interleaved medians of ``--repeats`` calls (interleaving shares
any drift in machine load between the methods); ratios are to ``mm`` in the same run. Accuracy
columns: the largest self-distance (0 exactly is right) and the largest error of the k distances
against a float64 reference.

Measured 2026-12-07 with ``python benchmarks/apt_distances.py`` (CPU, torch 2.14.1, on a 2-core
machine that two training processes were also using):

| threads | batch | mm (ms) | refined | exact cdist | URLB | self-distance mm → refined | max error mm → refined |
|---:|---:|---:|---:|---:|---:|---:|---:|
| 1 | 256 | 1.14 | 1.5× | 10.4× | 32× | 0.014 → 0 | 0.014 → 1.9e-06 |
| 1 | 512 | 4.28 | 1.4× | 10.9× | 33× | 0.014 → 0 | 0.014 → 3.8e-06 |
| 1 | 1024 | 10.8 | 1.3× | 16.7× | 51× | 0.015 → 0 | 0.015 → 1.9e-06 |

The 2-thread rows of that run are not usable: with both cores already busy, a two-thread parallel
region waits for a descheduled thread, so single calls of 1–10 ms took 7–120 ms at random (``mm``
at batch 256: 92 ms). Rerun with ``--threads 2`` on an idle machine for those. The refined
distances' error (1.9e-06) is float32 rounding of distances near 22.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from palm_lightning.losses.apt import knn_distances


def mm_knn(h: Tensor, k: int) -> Tensor:
    return torch.cdist(h, h).topk(k, dim=1, largest=False, sorted=True).values


def refined_knn(h: Tensor, k: int) -> Tensor:
    return knn_distances(h, h, k)


def exact_cdist_knn(h: Tensor, k: int) -> Tensor:
    distances = torch.cdist(h, h, compute_mode="donot_use_mm_for_euclid_dist")
    return distances.topk(k, dim=1, largest=False, sorted=True).values


def urlb_knn(h: Tensor, k: int) -> Tensor:
    b = h.shape[0]
    distances = torch.norm(h[:, None, :].view(b, 1, -1) - h[None, :, :].view(1, b, -1), dim=-1, p=2)
    return distances.topk(k, dim=1, largest=False, sorted=True).values


METHODS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "mm": mm_knn,
    "refined": refined_knn,
    "exact cdist": exact_cdist_knn,
    "URLB": urlb_knn,
}


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads, one table row each")
    p.add_argument("--batches", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--k", type=int, default=12)
    p.add_argument("--repeats", type=int, default=7, help="timed calls per method and round; the median is kept")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best round is kept")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> str:
    """Run the benchmark, print the markdown report and return it."""
    args = parse_args(argv)
    device = torch.device(args.device)
    old_threads = torch.get_num_threads()
    names = list(METHODS)
    out = [
        f"# device: {device}, torch {torch.__version__}, dim {args.dim}, k {args.k}",
        "",
        "| threads | batch | "
        + " | ".join(f"{n} (ms)" for n in names)
        + " | "
        + " | ".join(f"{n} / mm" for n in names[1:])
        + " | self-distance mm | self-distance refined | max error mm | max error refined |",
        "|" + "---:|" * (2 + 2 * len(names) - 1 + 4),
    ]
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for batch in args.batches:
                h = torch.randn(batch, args.dim, generator=torch.Generator().manual_seed(args.seed)).to(device)
                k = min(args.k, batch)
                best = {n: float("inf") for n in names}
                for _ in range(args.rounds):
                    for n in names:
                        t = median_seconds(functools.partial(METHODS[n], h, k), args.repeats, device)
                        best[n] = min(best[n], t)
                reference = urlb_knn(h.double(), k).float()
                mm, refined = mm_knn(h, k), refined_knn(h, k)
                cells = [str(threads), str(batch)]
                cells += [f"{best[n] * 1e3:.2f}" for n in names]
                cells += [f"{best[n] / best['mm']:.1f}×" for n in names[1:]]
                cells += [f"{mm[:, 0].abs().max().item():.2g}", f"{refined[:, 0].abs().max().item():.2g}"]
                cells += [
                    f"{(mm - reference).abs().max().item():.2g}",
                    f"{(refined - reference).abs().max().item():.2g}",
                ]
                out.append("| " + " | ".join(cells) + " |")
    finally:
        torch.set_num_threads(old_threads)
    report = "\n".join(out)
    print(report, flush=True)
    return report


if __name__ == "__main__":
    main()
