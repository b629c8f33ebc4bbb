"""Import a class named by a config's ``class_path`` and check what it is, with errors that say how to fix it.

One place for the checks that every ``class_path`` outside LightningCLI's own parsing needs (a generator
given in a PALM config, the data block a scorer reads): the path is dotted, its module imports, the
class exists and derives from the base the caller needs.

Also the other direction, for components that live inside a module (PALM's reward): an instance that
remembers its constructor arguments (:class:`RecordsInitArgs`) is saved as ``{"class_path",
"init_args"}`` (:func:`component_spec`) and built again from that (:func:`build_component`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from collections.abc import Mapping
from typing import Any, TypeVar

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


# --- components that remember how they were built ---------------------------------------------------

PLAIN = (bool, int, float, str, type(None))


class RecordsInitArgs:
    """Mixin: an instance remembers the arguments of its most-derived ``__init__`` (``init_args``),
    so the module that owns it can save it in a checkpoint's hyperparameters as ``{"class_path",
    "init_args"}`` (:func:`component_spec`) and rebuild it on load (:func:`build_component`).

    Why a mixin and not ``save_hyperparameters``: a component chosen by ``class_path`` (an
    exploration reward) is an ``nn.Module`` inside a LightningModule; Lightning would pickle the
    object itself into the checkpoint, which ``weights_only=True`` loading refuses and which breaks
    when the class changes. The arguments are plain values; the trained parameters travel in the
    owner's ``state_dict`` as usual.
    """

    init_args: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None or getattr(init, "_records_init_args", False):
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self: Any, *args: Any, **init_kwargs: Any) -> None:
            outermost = "_recording_init_args" not in self.__dict__
            if outermost:
                object.__setattr__(self, "_recording_init_args", True)
            try:
                init(self, *args, **init_kwargs)
            finally:
                if outermost:
                    del self.__dict__["_recording_init_args"]
            if outermost:
                bound = signature.bind(self, *args, **init_kwargs)
                bound.apply_defaults()
                recorded: dict[str, Any] = {}
                for name, value in list(bound.arguments.items())[1:]:
                    kind = signature.parameters[name].kind
                    if kind is inspect.Parameter.VAR_KEYWORD:
                        recorded.update(value)
                    elif kind is not inspect.Parameter.VAR_POSITIONAL:
                        recorded[name] = value
                object.__setattr__(self, "init_args", recorded)

        recording_init._records_init_args = True  # type: ignore[attr-defined]
        cls.__init__ = recording_init  # type: ignore[method-assign]


def component_spec(component: object) -> dict[str, Any]:
    """``{"class_path": "pkg.module.Class", "init_args": {...}}`` of a :class:`RecordsInitArgs`
    instance: what a config would say to build it again (a class defined inside a function is
    recorded too, but only an instance passed in its place can stand for it on load). Raises
    ``TypeError`` naming the argument when one is not a plain value (bool, int, float, str, None,
    or lists/tuples/dicts of them) or a component itself: a checkpoint must load without
    unpickling code."""
    cls = type(component)
    if not isinstance(component, RecordsInitArgs):
        raise TypeError(f"{cls.__qualname__} does not record its init_args: derive it from RecordsInitArgs")
    return {
        "class_path": f"{cls.__module__}.{cls.__qualname__}",
        "init_args": {
            name: plain_value(value, f"{cls.__qualname__}({name}=...)") for name, value in component.init_args.items()
        },
    }


def plain_value(value: Any, where: str) -> Any:
    """``value`` as plain data for a checkpoint (tuples become lists, components their specs)."""
    if isinstance(value, PLAIN):
        return value
    if isinstance(value, RecordsInitArgs):
        return component_spec(value)
    if isinstance(value, (list, tuple)):
        return [plain_value(v, where) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: plain_value(v, where) for k, v in value.items()}
    raise TypeError(
        f"{where}: a {type(value).__name__} cannot be saved in a checkpoint's hyperparameters; "
        "give components plain arguments (numbers, strings, lists, dicts) or RecordsInitArgs components"
    )


def is_component_spec(value: object) -> bool:
    """A ``{"class_path": ..., "init_args": {...}}`` mapping (what :func:`component_spec` writes)."""
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("class_path"), str)
        and set(value)
        <= {
            "class_path",
            "init_args",
        }
    )


def build_component(spec: Mapping[str, Any], base: type[T], error: type[Exception] = ValueError) -> T:
    """The instance a :func:`component_spec` (or a config's ``class_path`` block) describes, checked
    to derive from ``base``; nested specs in its arguments are built too."""
    class_path = str(spec["class_path"])
    if "<locals>" in class_path:
        raise error(
            f"{class_path} was defined inside a function, so it cannot be imported to rebuild it: define the class "
            "at module level, or pass an instance in its place (e.g. load_from_checkpoint(path, reward=...))"
        )
    cls = import_class(class_path, base, error)
    init_args = {
        name: build_component(value, object, error) if is_component_spec(value) else value
        for name, value in dict(spec.get("init_args") or {}).items()
    }
    return cls(**init_args)
