"""The engine: project config, task assembly, step functions, the runner, audit and lock."""

__version__ = "0.1.0"
