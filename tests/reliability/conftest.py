import pytest

from tests.reliability.api_support import FIGURES
from tests.simulator import simulator, start_simulator

__all__ = ["simulator", "start_simulator"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the API scenarios measured, for docs/reliability.md."""
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
