"""Benchmarks, one module per SPEC section 10 target: ``python -m bench.<name> --help``."""
