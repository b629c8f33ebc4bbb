"""Run a build step after the most-derived ``__init__`` has returned.

Why: a module that builds its parts from overridable hooks (PALM's agent, reward and heads) must
not call those hooks from its own ``__init__``: a subclass's override would run before the
subclass's ``__init__`` has set what the override reads. With this metaclass a subclass sets its
attributes after ``super().__init__()`` as usual, and the hooks run once everything is set.
Construction through ``cls(...)`` (Python, LightningCLI, ``load_from_checkpoint``) always runs
it; copying or unpickling an object does not (it is already built).
"""

from __future__ import annotations

import inspect
from typing import Any


class BuildAfterInit(type):
    """Metaclass: ``cls(*args, **kwargs)`` constructs the object, then calls its
    ``build_components()``. ``inspect.signature(cls)`` stays that of ``cls.__init__`` (without
    ``self``), as for any class, rather than this ``__call__``'s."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        obj.build_components()
        return obj

    @property
    def __signature__(cls) -> inspect.Signature:
        signature = inspect.signature(cls.__init__)  # type: ignore[misc]  # the class's own __init__
        return signature.replace(parameters=list(signature.parameters.values())[1:])
