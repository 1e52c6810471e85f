"""The foundation of every other package: settings, errors, logging and telemetry.

It imports nothing of the project; everything may import it.
"""
