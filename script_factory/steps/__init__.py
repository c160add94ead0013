"""Step functions: plain functions with keyword-only parameters, bound by the factory into tasks."""
