"""The registry: every zoo case, by name, in a fixed order.

Add a case by writing its ``make_*`` and inputs functions in
``transformers_models.py`` or ``torch_models.py`` (or a new module for a new
family) and appending a :class:`~.case.ModelCase` to that module's tuple.
"""

from __future__ import annotations

from .case import ModelCase
from .torch_models import TORCH_CASES
from .transformers_models import TRANSFORMERS_CASES

CASES: tuple[ModelCase, ...] = TRANSFORMERS_CASES + TORCH_CASES

CASES_BY_NAME: dict[str, ModelCase] = {case.name: case for case in CASES}
if len(CASES_BY_NAME) != len(CASES):
    raise RuntimeError("zoo case names must be unique")


def get_case(name: str) -> ModelCase:
    """The case called ``name``; the error lists the names that exist."""
    try:
        return CASES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no zoo case {name!r}; known: {', '.join(CASES_BY_NAME)}") from None


def select(tag: str | None = None) -> tuple[ModelCase, ...]:
    """All cases, or those carrying ``tag`` (e.g. ``"transformers"``, ``"rnn"``)."""
    return tuple(case for case in CASES if tag is None or tag in case.tags)
