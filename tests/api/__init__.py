"""Tests of `census_salary.api`. A package so that its conftest is `api.conftest`, not a
second top-level `conftest` (tests/test_train.py imports the root one by that name)."""
