from __future__ import annotations

import subprocess
import sys

import custos


def test_public_surface() -> None:
    assert custos.__all__ == ["Client", "__version__", "launch"]
    assert custos.Client.__name__ == "Client"
    assert custos.launch.__module__ == "custos.local.launch"


def test_import_custos_stays_light() -> None:
    # The sandbox imports custos for every computation; the SDK and its HTTP stack must not come along.
    code = "import sys, custos; print('httpx' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
