from __future__ import annotations

import pytest

from custos.sandbox import BubblewrapRunner


@pytest.fixture(scope="session")
def runner(sandbox_runner: BubblewrapRunner) -> BubblewrapRunner:
    """Each runner in turn (tests/conftest.py): both meet the Runner contract."""
    return sandbox_runner
