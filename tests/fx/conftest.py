"""Fixtures: ``subject`` is the fx implementation under test, ``oracle`` is torch.fx."""

from __future__ import annotations

import pytest

from .subject import ORACLE, require_subject


@pytest.fixture(scope="session")
def subject():
    return require_subject()


@pytest.fixture(scope="session")
def oracle():
    return ORACLE
