"""Handrail's tests (a package, so `tests.support` wins over any `tests` package a dependency installs)."""
