"""Running the real `hl-analytics` entry point as a process, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HL_ANALYTICS = str(Path(sys.executable).with_name("hl-analytics"))


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Run:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    full_env.update(env or {})
    proc = subprocess.run(
        [HL_ANALYTICS, *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
