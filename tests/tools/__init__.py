"""Tools that run beside the tests (not collected by pytest)."""
