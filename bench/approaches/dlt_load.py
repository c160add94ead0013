"""Competitor (d): dlt ``sql_database`` (``sql_table``) -> postgres, with a chosen backend.

    python dlt_load.py --source-url URL [--source-schema S] --target-url URL --dataset D --backend B

A full load with ``write_disposition="replace"``; everything else is dlt's defaults.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-url", required=True)
    parser.add_argument("--source-schema", default=None)
    parser.add_argument("--target-url", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--backend", choices=["sqlalchemy", "pyarrow", "pandas", "connectorx"], default="sqlalchemy")
    parser.add_argument("--pipelines-dir", required=True)
    parser.add_argument("--table", default="lineitem")
    args = parser.parse_args(argv)

    import dlt
    from dlt.sources.sql_database import sql_table

    started = time.perf_counter()
    table = sql_table(credentials=args.source_url, table=args.table, schema=args.source_schema, backend=args.backend)
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{args.dataset}",
        destination=dlt.destinations.postgres(credentials=args.target_url),
        dataset_name=args.dataset,
        pipelines_dir=args.pipelines_dir,
    )
    info = pipeline.run(table, write_disposition="replace")
    print(info)
    print(f"dlt ({args.backend}): done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
