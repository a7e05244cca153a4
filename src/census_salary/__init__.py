"""Predict whether a person's income is above $50K from 14 census attributes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("census-salary")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
