"""Suite-wide collection order: the longest tests first.

``pytest -n auto`` (the CI command) hands tests to workers in collection order, so a
few minute-long cells collected last (the model sweep's) leave one worker running
alone at the end. Starting them first lets the short tests fill in around them.
"""

from __future__ import annotations

import pytest

#: Directories whose tests take seconds to minutes each (torch.export beside graphlift).
LONGEST_FIRST = ("tests/sweep/", "tests/opsweep/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable sort
