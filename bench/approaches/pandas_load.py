"""Competitor (c): pandas ``read_sql`` + ``to_sql(chunksize=...)`` into an existing table.

    python pandas_load.py --source-url URL --target-url URL --target-schema S [--method default|multi]
                          [--table lineitem --columns "a, b, ..."]

Reads in chunks from a server-side cursor by default (``--read-chunksize 0`` reads the whole table
into one DataFrame, which at SF1 needs many GB); each chunk is appended to the target table with
``to_sql``: ``--method default`` is pandas' default (an executemany, which SQLAlchemy 2 sends as
batched multi-row INSERTs), ``--method multi`` is ``method="multi"`` (one INSERT with many VALUES
rows per ``--write-chunksize`` rows, compiled by SQLAlchemy each time: far slower here).
"""

from __future__ import annotations

import argparse
import sys
import time

COLUMNS = (
    "l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_tax, "
    "l_returnflag, l_linestatus, l_shipdate, l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, "
    "l_comment, updated_at"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-url", required=True)
    parser.add_argument("--target-url", required=True)
    parser.add_argument("--target-schema", required=True)
    parser.add_argument("--read-chunksize", type=int, default=100_000)
    parser.add_argument("--method", choices=["default", "multi"], default="default")
    parser.add_argument("--write-chunksize", type=int, default=None, help="to_sql chunksize (10000; multi: 2000)")
    parser.add_argument("--table", default="lineitem", help="the table, in the source and in the target schema")
    parser.add_argument("--columns", default=COLUMNS, help="the columns, comma-separated")
    args = parser.parse_args(argv)

    import pandas as pd
    from sqlalchemy import create_engine

    method = "multi" if args.method == "multi" else None
    write_chunksize = args.write_chunksize or (2_000 if method else 10_000)  # multi: < 65535 bind parameters
    started = time.perf_counter()
    source = create_engine(args.source_url)
    target = create_engine(args.target_url)
    rows = 0
    with source.connect().execution_options(stream_results=True) as conn, target.begin() as out:
        frames = pd.read_sql(f"SELECT {args.columns} FROM {args.table}", conn, chunksize=args.read_chunksize or None)
        for frame in [frames] if isinstance(frames, pd.DataFrame) else frames:
            frame.to_sql(
                args.table,
                out,
                schema=args.target_schema,
                if_exists="append",
                index=False,
                method=method,
                chunksize=write_chunksize,
            )
            rows += len(frame)
    elapsed = time.perf_counter() - started
    print(f"pandas (to_sql method={args.method}, chunksize={write_chunksize}): {rows} rows in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
