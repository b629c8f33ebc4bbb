"""The conditional-generator protocol: what the latent environment needs from a decoder.

Any ``nn.Module`` (or callable) with these members plugs in — the package's StyleGAN, your own
GAN, a VAE decoder, a diffusion sampler wrapped to be deterministic::

    class MyGenerator(nn.Module):
        latent_dim = 128                 # size of z
        num_classes = 10                 # labels c are integers in [0, num_classes)
        image_shape = (3, 32, 32)        # (C, H, W) of the output

        def forward(self, z: Tensor, c: Tensor) -> Tensor:
            ...                          # (N, latent_dim), (N,) -> (N, C, H, W) in [-1, 1]

:func:`check_generator` validates an object against the protocol (attributes, then one probe
forward) and raises :class:`GeneratorProtocolError` naming what is wrong.

The latent environment's w-space (``latent_space="w"``) needs more: a second, StyleGAN-like
protocol, :class:`WSpaceGenerator`, checked by :func:`check_w_space_generator`::

    w_dim: int                               # size of w (the agent's action size in w-space)
    mapping(z, c, truncation_psi=1.0) -> w   # (N, latent_dim), (N,) -> (N, w_dim)
    mapping.w_avg                            # (num_classes, w_dim) tensor: each class's mean w
    broadcast(w) -> ws                       # (N, w_dim) -> what synthesis takes
    synthesis(ws, noise_mode="const") -> x   # -> (N, C, H, W) images, deterministic

The package's :class:`~palm_lightning.nn.stylegan.StyleGANGenerator` follows both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


class GeneratorProtocolError(TypeError):
    """An object does not follow the conditional-generator protocol."""


@runtime_checkable
class ConditionalGenerator(Protocol):
    """``(z, c) → image``: latents ``(N, latent_dim)`` and labels ``(N,)`` → ``(N, *image_shape)``
    images in ``[-1, 1]``. Deterministic for a given ``(z, c)`` (the environment relies on it)."""

    @property
    def latent_dim(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def image_shape(self) -> tuple[int, int, int]: ...

    def __call__(self, z: Tensor, c: Tensor) -> Tensor: ...


@runtime_checkable
class WSpaceGenerator(ConditionalGenerator, Protocol):
    """A conditional generator with an intermediate latent w (what ``latent_space="w"`` needs).

    ``mapping(z, c, truncation_psi=1.0)`` turns latents and labels into ``(N, w_dim)`` w's (ψ < 1
    pulls them towards the class's mean w); ``mapping.w_avg`` is a ``(num_classes, w_dim)`` tensor
    of the per-class mean w's, the point the environment's dynamics contract towards;
    ``synthesis(broadcast(w), noise_mode="const")`` decodes w's into ``(N, *image_shape)`` images
    (the environment clamps them to ``[-1, 1]``), deterministically for a given w.
    """

    @property
    def w_dim(self) -> int: ...

    @property
    def mapping(self) -> Any: ...

    @property
    def synthesis(self) -> Any: ...

    def broadcast(self, w: Tensor) -> Tensor: ...


W_SPACE_MEMBERS = ("w_dim", "mapping", "synthesis", "broadcast")
W_SPACE_HINT = (
    "latent_space='w' needs w_dim, mapping(z, c, truncation_psi) with a per-class mapping.w_avg, "
    "broadcast(w) and synthesis(ws, noise_mode) (palm_lightning.nn.protocols.WSpaceGenerator, "
    "e.g. the package's StyleGANGenerator); use latent_space='z' for any other generator"
)


def _probe_device(generator: object, device: torch.device | str | None) -> torch.device | str:
    if device is not None:
        return device
    parameters = getattr(generator, "parameters", None)
    first = next(iter(parameters()), None) if callable(parameters) else None
    return first.device if isinstance(first, Tensor) else "cpu"


def _probe(name: str, call: str, run: Callable[[], object]) -> object:
    """``run()`` without gradients; an exception becomes a :class:`GeneratorProtocolError` naming the call."""
    try:
        with torch.no_grad():
            return run()
    except Exception as err:  # the user's code: a wrong signature, a shape error inside, ...
        detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        raise GeneratorProtocolError(
            f"{name}{call} failed on two random latents with labels [0, num_classes - 1]: "
            f"{type(err).__name__}: {detail}"
        ) from err


def check_generator(generator: object, probe: bool = True, device: torch.device | str | None = None) -> None:
    """Raise :class:`GeneratorProtocolError` unless ``generator`` follows the protocol.

    With ``probe=True`` one forward on two random latents checks the output's shape, dtype,
    finiteness and range.
    """
    name = type(generator).__name__
    missing = [a for a in ("latent_dim", "num_classes", "image_shape") if not hasattr(generator, a)]
    if isinstance(generator, nn.Module) and type(generator).forward is nn.Module.forward:
        missing.append("forward")
    if missing or not callable(generator):
        raise GeneratorProtocolError(
            f"{name} is not a conditional generator: missing {', '.join(missing) or '__call__'}. "
            "It needs latent_dim (int), num_classes (int), image_shape ((C, H, W)) and "
            "forward(z, c) -> images in [-1, 1]; see palm_lightning.nn.protocols."
        )
    duck: Any = generator  # has the three attributes (checked above)
    latent_dim, num_classes, image_shape = duck.latent_dim, duck.num_classes, duck.image_shape
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise GeneratorProtocolError(f"{name}.latent_dim must be a positive int, got {latent_dim!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise GeneratorProtocolError(f"{name}.num_classes must be a positive int, got {num_classes!r}")
    if len(tuple(image_shape)) != 3 or not all(isinstance(s, int) and s > 0 for s in image_shape):
        raise GeneratorProtocolError(f"{name}.image_shape must be (C, H, W) of positive ints, got {image_shape!r}")
    if not probe:
        return
    device = _probe_device(generator, device)
    z = torch.randn(2, latent_dim, device=device)
    c = torch.tensor([0, num_classes - 1], device=device)
    out = _probe(name, "(z, c)", lambda: duck(z, c))
    expected = (2, *tuple(image_shape))
    if not isinstance(out, Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise GeneratorProtocolError(f"{name}(z, c) must return a tensor of shape {expected}, got {got}")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise GeneratorProtocolError(f"{name}(z, c) returned non-finite or non-float images")
    if out.min() < -1.0 - 1e-4 or out.max() > 1.0 + 1e-4:
        raise GeneratorProtocolError(
            f"{name}(z, c) must return images in [-1, 1], got range [{out.min():.3f}, {out.max():.3f}]"
        )


def check_w_space_generator(generator: object, probe: bool = True, device: torch.device | str | None = None) -> None:
    """Raise :class:`GeneratorProtocolError` unless ``generator`` also follows
    :class:`WSpaceGenerator` (call :func:`check_generator` first for the base protocol).

    The error names every missing member; with ``probe=True`` one mapping and one synthesis of two
    random latents check the shapes of ``w`` and of the images.
    """
    name = type(generator).__name__
    missing = [member for member in W_SPACE_MEMBERS if not hasattr(generator, member)]
    mapping = getattr(generator, "mapping", None)
    if mapping is not None and not hasattr(mapping, "w_avg"):
        missing.append("mapping.w_avg")
    if missing:
        raise GeneratorProtocolError(f"{name} has no w-space: missing {', '.join(missing)}. {W_SPACE_HINT}.")
    g: Any = generator
    w_dim, num_classes = g.w_dim, g.num_classes
    if not isinstance(w_dim, int) or w_dim < 1:
        raise GeneratorProtocolError(f"{name}.w_dim must be a positive int, got {w_dim!r}")
    w_avg = g.mapping.w_avg
    if not isinstance(w_avg, Tensor) or tuple(w_avg.shape) != (num_classes, w_dim):
        got = tuple(w_avg.shape) if isinstance(w_avg, Tensor) else type(w_avg).__name__
        raise GeneratorProtocolError(
            f"{name}.mapping.w_avg must be a (num_classes, w_dim) = ({num_classes}, {w_dim}) tensor of "
            f"per-class mean w's, got {got}"
        )
    if not probe:
        return
    device = _probe_device(generator, device)
    z = torch.randn(2, g.latent_dim, device=device)
    c = torch.tensor([0, num_classes - 1], device=device)
    w = _probe(name, ".mapping(z, c, truncation_psi=1.0)", lambda: g.mapping(z, c, truncation_psi=1.0))
    if not isinstance(w, Tensor) or tuple(w.shape) != (2, w_dim):
        got = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise GeneratorProtocolError(f"{name}.mapping(z, c) must return (2, w_dim) = (2, {w_dim}), got {got}")
    ws = _probe(name, ".broadcast(w)", lambda: g.broadcast(w))
    out = _probe(name, '.synthesis(ws, noise_mode="const")', lambda: g.synthesis(ws, noise_mode="const"))
    expected = (2, *tuple(g.image_shape))
    if not isinstance(out, Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise GeneratorProtocolError(f"{name}.synthesis(broadcast(w)) must return images {expected}, got {got}")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise GeneratorProtocolError(f"{name}.synthesis(broadcast(w)) returned non-finite or non-float images")
