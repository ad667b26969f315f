from __future__ import annotations

import shutil

import pytest

from custos.sandbox import BubblewrapRunner


@pytest.fixture(scope="session")
def runner() -> BubblewrapRunner:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    return BubblewrapRunner()
