"""Adapters that run `partition.run_tasks` on a cluster engine, each an optional extra:
`census-salary[spark]` (`spark`), `census-salary[dask]` (`dask`). Imported only when
`census predict --engine` names one."""
