"""Every CLI command pays for what the CLI imports at start: the simulator's numpy stays out of it."""

from __future__ import annotations

import json
import subprocess
import sys


def test_cli_start_does_not_import_the_simulator_or_numpy() -> None:
    probe = (
        "import json, sys; import pilothouse.cli.main; "
        "print(json.dumps(sorted(m for m in sys.modules if m == 'numpy' or m.startswith('pilothouse.scheduling.sim'))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout) == []
