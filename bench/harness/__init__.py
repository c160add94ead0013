"""The benchmark harness: data generation, databases, timed child processes and the report."""
