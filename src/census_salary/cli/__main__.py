"""`python -m census_salary.cli`: the `census` command without its script."""

from census_salary.cli import main

main()
