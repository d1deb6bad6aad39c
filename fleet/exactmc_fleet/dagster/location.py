"""The code location Dagster loads: `dagster dev -m exactmc_fleet.dagster.location`.

The tenants are read from the registry (`EXACTMC_DATABASE_URL`, else the project's SQLite file)
when the code location loads.
"""

from exactmc_fleet.dagster.definitions import definitions_from_registry

defs = definitions_from_registry()
