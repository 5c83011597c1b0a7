"""Every conformance case, by name (names are unique; oracle.json is keyed by them)."""

from __future__ import annotations

from tests.conformance import (
    cases_data,
    cases_dynamic,
    cases_modules,
    cases_ops,
    cases_outputs,
    cases_signature,
)
from tests.conformance.harness import Case

CASE_MODULES = (
    cases_ops,
    cases_signature,
    cases_outputs,
    cases_dynamic,
    cases_modules,
    cases_data,
)


def all_cases() -> dict[str, Case]:
    result: dict[str, Case] = {}
    for module in CASE_MODULES:
        for case in module.cases():
            if case.name in result:
                raise ValueError(f"two conformance cases are named {case.name!r}")
            result[case.name] = case
    return result
