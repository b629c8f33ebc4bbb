"""Import a class named by a config's ``class_path`` and check what it is, with errors that say how to fix it.

One place for the checks that every ``class_path`` outside LightningCLI's own parsing needs (a generator
given in a PALM config, the data block a scorer reads): the path is dotted, its module imports, the
class exists and derives from the base the caller needs.
"""

from __future__ import annotations

import importlib
import re
from typing import TypeVar

DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
T = TypeVar("T")


def import_class(class_path: str, base: type[T], error: type[Exception], base_name: str | None = None) -> type[T]:
    """The class at ``class_path`` (``"my_pkg.module.MyClass"``), checked to derive from ``base``.

    Raises ``error`` (the caller's config-error type) naming the malformed path, the module that cannot
    be imported (and the PYTHONPATH hint), the missing class, or the wrong base (``base_name``, default
    the base's dotted name).
    """
    module_name, _, class_name = class_path.rpartition(".")
    if not module_name or not DOTTED.match(class_path):
        raise error(f"class_path {class_path!r} is not an import path: give module and class, e.g. my_pkg.MyClass")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise error(
            f"class_path {class_path!r}: cannot import module {module_name!r} ({type(err).__name__}: {err}). "
            "Is the folder that holds it on PYTHONPATH?"
        ) from err
    cls = getattr(module, class_name, None)
    if cls is None:
        raise error(f"class_path {class_path!r}: module {module_name!r} has no {class_name!r}")
    if not isinstance(cls, type) or not issubclass(cls, base):
        name = base_name or f"{base.__module__}.{base.__qualname__}"
        raise error(f"class_path {class_path!r} is not a subclass of {name}")
    return cls
