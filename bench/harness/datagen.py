"""The data files: TPC-H lineitem from DuckDB's dbgen, written once per scale factor to
``bench/data/sf<SF>/lineitem.csv``, and the mixed ``sales`` table (:mod:`harness.sales`), written once per
row count to ``bench/data/sales_<rows>/sales.csv``.

The tpch extension is loaded from the ``duckdb-extension-tpch`` package by its file path, with
automatic installing and loading of extensions switched off and an empty extension directory, so
nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

from harness.lineitem import NAMES

logger = logging.getLogger(__name__)


def dataset_csv(dataset: str, sf: float, rows: int, data_dir: Path, work_dir: Path) -> Path:
    """The CSV file of ``dataset`` at its size, generated when missing."""
    if dataset == "lineitem":
        return lineitem_csv(sf, data_dir, work_dir)
    return sales_csv(rows, data_dir, work_dir)


def sales_csv(rows: int, data_dir: Path, work_dir: Path) -> Path:
    """The CSV file of the sales table with ``rows`` rows (no header, in key order), generated when missing."""
    from harness import sales

    folder = data_dir / f"sales_{rows}"
    csv_file = folder / "sales.csv"
    done = folder / "sales.done"
    stamp = f"rows={rows} generator={sales.GENERATOR_VERSION}\n"
    if csv_file.is_file() and done.is_file() and done.read_text(encoding="utf-8") == stamp:
        logger.info("data: reusing %s", csv_file)
        return csv_file
    folder.mkdir(parents=True, exist_ok=True)
    sales.generate(rows, csv_file, work_dir)
    done.write_text(stamp, encoding="utf-8")
    return csv_file


def lineitem_csv(sf: float, data_dir: Path, work_dir: Path) -> Path:
    """The CSV file of lineitem at ``sf`` (no header, in key order), generated when missing."""
    folder = data_dir / f"sf{sf:g}"
    csv_file = folder / "lineitem.csv"
    done = folder / "lineitem.done"
    if csv_file.is_file() and done.is_file():
        logger.info("data: reusing %s", csv_file)
        return csv_file
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    _generate(sf, csv_file, work_dir)
    done.write_text(f"sf={sf:g}\n", encoding="utf-8")
    logger.info("data: generated %s in %.1f s", csv_file, time.perf_counter() - started)
    return csv_file


def tpch_extension_file() -> Path:
    """The tpch extension shipped by the duckdb-extension-tpch package, for the installed duckdb."""
    import duckdb

    spec = importlib.util.find_spec("duckdb_extension_tpch")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("duckdb-extension-tpch is not installed; run: pip install -r bench/requirements.txt")
    package = Path(next(iter(spec.submodule_search_locations)))
    wanted = package / "extensions" / f"v{duckdb.__version__}" / "tpch.duckdb_extension"
    if not wanted.is_file():
        found = sorted(p.parent.name for p in package.glob("extensions/*/tpch.duckdb_extension"))
        raise RuntimeError(
            f"duckdb-extension-tpch has no extension for duckdb {duckdb.__version__} (it has: {', '.join(found)}); "
            f"pin both packages to the same version in bench/requirements.txt"
        )
    return wanted


def _generate(sf: float, csv_file: Path, work_dir: Path) -> None:
    import duckdb

    extension_dir = work_dir / "duckdb_extensions"  # stays empty: nothing is installed or fetched
    extension_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "extension_directory": str(extension_dir),
    }
    tmp = csv_file.with_suffix(".csv.tmp")
    with duckdb.connect(config=config) as con:
        con.execute(f"LOAD '{_sql_text(tpch_extension_file())}'")
        con.execute(f"CALL dbgen(sf = {float(sf)!r})")
        select = ", ".join(NAMES[:-1])
        # updated_at: the receipt date plus a time of day derived from the key (the incremental cursor).
        con.execute(
            f"COPY (SELECT {select}, l_receiptdate::TIMESTAMP + to_seconds(l_orderkey % 86400) AS updated_at "
            f"FROM lineitem ORDER BY l_orderkey, l_linenumber) "
            f"TO '{_sql_text(tmp)}' (FORMAT csv, HEADER false, DELIMITER ',', QUOTE '\"')"
        )
    tmp.replace(csv_file)


def _sql_text(path: Path) -> str:
    return str(path).replace("'", "''")
