"""The `census` command: thin doors over the library, one short function per command.

`app` holds the group and what the commands share; `training`, `audit` and `scoring`
hold the commands.
"""

from census_salary.cli.app import app, main

# Importing a command module registers its commands, in this order in `census --help`.
from census_salary.cli import training  # noqa: F401  # isort: skip
from census_salary.cli import audit  # noqa: F401  # isort: skip
from census_salary.cli import scoring  # noqa: F401  # isort: skip
from census_salary.cli import monitor  # noqa: F401  # isort: skip

__all__ = ["app", "main"]
