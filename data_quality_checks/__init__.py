"""Data-quality checks: the check kinds, each a query that counts failing rows in the warehouse."""
