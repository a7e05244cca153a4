"""Tests of `census_salary.api.routes`, one module per router."""
