"""Every module's typed settings view (``*HParams``, built by ``typed_view`` from the constructor's
arguments) names only constructor parameters, with their annotation: the view restates names and
types for mypy, and this test is what keeps the two from drifting apart."""

from __future__ import annotations

import dataclasses
import inspect
import typing

import pytest

import palm_lightning.models as models


def typed_views() -> list[tuple[type, type]]:
    """(module class, its view dataclass) for every module whose source builds one."""
    found = []
    for name in models.__all__:
        cls = getattr(models, name)
        module = inspect.getmodule(cls)
        for view_name, view in vars(module).items():
            is_view = view_name.endswith("HParams") and dataclasses.is_dataclass(view)
            if is_view and f"typed_view({view_name}, locals())" in inspect.getsource(cls):
                found.append((cls, view))
    return found


def constructor_parameters(cls: type) -> dict[str, object]:
    """Name → annotation of the parameters ``cls(...)`` accepts, following ``**kwargs`` to the bases."""
    parameters: dict[str, object] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        hints = typing.get_type_hints(init)
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY) and parameter.name != "self":
                parameters.setdefault(parameter.name, hints.get(parameter.name))
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            break
    return parameters


VIEWS = typed_views()


def test_the_views_are_found():
    assert len(VIEWS) >= 12, [view.__name__ for _, view in VIEWS]


@pytest.mark.parametrize("cls, view", VIEWS, ids=[view.__name__ for _, view in VIEWS])
def test_a_view_names_constructor_parameters_with_their_types(cls, view):
    parameters = constructor_parameters(cls)
    hints = typing.get_type_hints(view)
    for field in dataclasses.fields(view):
        assert field.name in parameters, f"{view.__name__}.{field.name} is not a parameter of {cls.__name__}"
        assert hints[field.name] == parameters[field.name], (
            f"{view.__name__}.{field.name}: {hints[field.name]} vs {cls.__name__}'s {parameters[field.name]}"
        )
