"""Contract modules that need a server this machine cannot run are collected only when their URL is set:
without it they are left out of collection (not skipped), so the default run neither counts nor hides them."""

from __future__ import annotations

import os

#: module -> the variable naming the server it runs against (see the manual recipe in its docstring)
NEEDS_SERVER = {
    "test_oracle_contract.py": "ETL_TEST_ORACLE_URL",
    "test_sqlserver_contract.py": "ETL_TEST_MSSQL_URL",
}

collect_ignore = [module for module, variable in NEEDS_SERVER.items() if not os.environ.get(variable)]
