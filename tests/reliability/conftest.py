from tests.simulator import simulator, start_simulator

__all__ = ["simulator", "start_simulator"]
