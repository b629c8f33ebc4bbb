"""Meta-World is an optional package, imported only when a manipulation family is built.

It cannot be an ordinary extra: metaworld 3.1.1 declares ``mujoco==3.3.0`` while this project pins
the mujoco its locomotion families and rendering are tested on (``constraints.txt``), so pip's
resolver refuses the pair. Installed with ``--no-deps`` it runs on that mujoco; everything else it
imports at run time (numpy, scipy, gymnasium, mujoco) comes with the base dependencies.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

METAWORLD_VERSION = "3.1.1"
INSTALL_LINE = f'pip install -c constraints.txt -e ".[dev]" && pip install --no-deps metaworld=={METAWORLD_VERSION}'
"""How to install the manipulation families: the project first, then Meta-World without its mujoco pin."""


class MetaWorldMissingError(ImportError):
    """Raised when a manipulation family is used without the ``metaworld`` package."""


def metaworld_available() -> bool:
    """Whether ``import metaworld`` would find the package (without importing it)."""
    return importlib.util.find_spec("metaworld") is not None


def import_metaworld() -> ModuleType:
    """The ``metaworld`` module, or an error that names the install line.

    Imported through :mod:`importlib` so that the package (and mypy) never needs it unless a
    manipulation family is actually built.
    """
    try:
        return importlib.import_module("metaworld")
    except ImportError as error:
        raise MetaWorldMissingError(
            f"the Meta-World task families need the metaworld package ({error}). Install it with "
            f"`{INSTALL_LINE}` (--no-deps: metaworld {METAWORLD_VERSION} pins mujoco==3.3.0, which pip "
            "cannot combine with this project's mujoco pin; it runs on ours)"
        ) from error
