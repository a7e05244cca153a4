"""The one error family of the toolkit, and the exit codes the CLI maps it to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the `census` command (documented in the README)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2  # bad configuration, options or input rows
    MODEL = 3  # no model bundle, or one that fails its checks
    DATA_UNAVAILABLE = 4  # the data is missing (train: and could not be downloaded)
    GATE_FAILED = 5  # a quality gate (such as --max-f1-gap) failed
    REMOTE = 6  # a remote census server could not be reached or refused the rows
    CANNOT_LISTEN = 7  # `serve` cannot listen on its address and port (in use, not allowed)


class CensusError(Exception):
    """Base of every error a user can cause or fix; the CLI prints it as one line."""

    exit_code: ExitCode = ExitCode.INTERNAL


class ConfigError(CensusError):
    """census.toml or a CENSUS_* variable is missing, unknown or of the wrong type."""

    exit_code = ExitCode.USAGE


class InputError(CensusError):
    """Rows or files given to a command are malformed or out of range."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, problems: list[RowProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def no_rows(source: object) -> InputError:
    """Labelled input without a single row (`census evaluate`, `slice-report`, `monitor`):
    no metric is defined on none."""
    return InputError(f"{source} holds no rows.")


class ModelError(CensusError):
    """The model bundle is missing, tampered with, or does not fit this code."""

    exit_code = ExitCode.MODEL


class DataUnavailableError(CensusError):
    """The data is not on disk (and, for training, could not be fetched)."""

    exit_code = ExitCode.DATA_UNAVAILABLE


class GateError(CensusError):
    """A quality gate asked for on the command line failed."""

    exit_code = ExitCode.GATE_FAILED


class RemoteError(CensusError):
    """`census predict --url` could not get predictions from the server."""

    exit_code = ExitCode.REMOTE


class ListenError(CensusError):
    """`census serve` cannot listen on the address and port it was given (say, one in use)."""

    exit_code = ExitCode.CANNOT_LISTEN


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One bad value: which row (1-based, as a person counts), which field, what was expected."""

    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, field {self.field!r}: {self.message}"
