"""Helpers of the fault, load and fuzz tests: a throwaway PostgreSQL, the served app, load."""
