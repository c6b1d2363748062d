"""Static checks of rendered GitHub workflows (used by test_workflows.py)."""
