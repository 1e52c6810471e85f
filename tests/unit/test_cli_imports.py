"""The command line imports every layer at start-up, but not prometheus_client: it
reads PROMETHEUS_MULTIPROC_DIR when first imported, which `hl-analytics worker`
sets only once its arguments are parsed (jobs.prometheus.prepare)."""

from __future__ import annotations

import subprocess
import sys


def test_the_command_line_does_not_load_prometheus_client_at_import() -> None:
    code = (
        "import sys, hl_analytics.cli; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prometheus_client'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
