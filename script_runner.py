"""The command line: arguments -> RunRequest -> run -> exit code (see script_factory/exit_codes.py).

    python script_runner.py --project sales_demo                       # incremental (I)
    python script_runner.py --project sales_demo --load-type F         # full reload
    python script_runner.py --project sales_demo --start-date 2026-01-01 --end-date 2026-01-31
    python script_runner.py --project sales_demo --dry-run             # print the tasks, touch nothing
    python script_runner.py --project sales_demo --tables dim_customer # only these tables and their checks
    python script_runner.py --project sales_demo --steps load --tables dim_customer  # that table's load only
    python script_runner.py --project sales_demo --verify [--repair]   # compare source and target by day
    python script_runner.py --project sales_demo --backfill --start-date 2024-01-01 --end-date 2024-12-31 --load-days 7
    python script_runner.py --history [--project sales_demo] [--last 20]   # the latest runs
    python script_runner.py --status [--project sales_demo]            # watermarks, last runs, locks, next runs
    python script_runner.py --schedule-print | --schedule-install cron  # the projects' schedules
    python script_runner.py --list                                     # projects and their tables
    python script_runner.py --report [--project P] [--days 30] [--out FILE.html]   # the HTML run report
    python script_runner.py --new erp_sync --source URL --tables 'erp.orders,erp.customers' [--warehouse URL]

Bad input stops here with one line on stderr and exit code 2; nothing has connected by then (but the
sources of pattern entries under ``tables:``, whose catalogs are listed while the project is assembled).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # launchers call this file from anywhere

from script_factory.exit_codes import ExitCode
from script_factory.request import ALL_STEPS, LoadType, RunRequest, Step, check_project_name
from utilities import interrupts
from utilities.dates import parse_iso_datetime
from utilities.errors import ConfigError, FatalError, LockedError, TransientError
from utilities.memory import limit_malloc_arenas, prefer_system_arrow_pool

PROG = "script_runner.py"
INTERRUPTED_LINE = "interrupted; the audit row is closed as failed and open loads were rolled back"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 through ConfigError."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {PROG} --help)")


def _date(text: str) -> datetime:
    try:
        return parse_iso_datetime(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or datetime (expected e.g. 2026-01-31 or 2026-01-31T08:00:00)"
        ) from None


def _load_type(text: str) -> LoadType:
    try:
        return LoadType(text.strip().upper())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a load type (expected I for incremental or F for full)"
        ) from None


def _tables(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no table (expected e.g. --tables orders,customers)")
    return names


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        days = 0
    if days < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days (expected a whole number, 1 or more)")
    return days


def _steps(text: str) -> frozenset[Step]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    known = ", ".join(step.value for step in Step)
    unknown = [name for name in names if name not in {step.value for step in Step}]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of steps (expected some of {known}, e.g. load)")
    return frozenset(Step(name) for name in names)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Run an ETL project from customer_code/<project>/project.yml.", allow_abbrev=False
    )
    parser.add_argument("--project", help="the project folder name under customer_code/")
    parser.add_argument(
        "--load-type",
        type=_load_type,
        default=LoadType.INCREMENTAL,
        metavar="I|F",
        help="I: incremental, rows after the previous watermark (default); F: full reload",
    )
    parser.add_argument(
        "--start-date", type=_date, metavar="DATE", help="window start (exclusive), ISO date or datetime"
    )
    parser.add_argument("--end-date", type=_date, metavar="DATE", help="window end (inclusive), ISO date or datetime")
    parser.add_argument(
        "--tables",
        type=_tables,
        default=(),
        metavar="A,B",
        help="run only these tables (target names, comma-separated) and the checks on them; with --new: the "
        "source's tables, e.g. 'erp.orders,erp.customers'",
    )
    parser.add_argument(
        "--steps",
        type=_steps,
        default=ALL_STEPS,
        metavar="S,T",
        help="run only these phases: prepare (DDL, before_load), load (the table loads), finish (after_load, "
        "checks, aggregations, outputs); default: all (an orchestrator runs each phase as its own task)",
    )
    parser.add_argument(
        "--orchestrator-run-id",
        metavar="ID",
        help="the scheduler's run id (e.g. Airflow's), recorded in etl_runs.orchestrator_run_id",
    )
    parser.add_argument("--env", metavar="NAME", help="read .env, then .env.NAME over it (e.g. --env prod)")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the tasks, bound parameters and SQL; touch nothing"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="connect to every connection of the project and report; exit 2 if one fails",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="compare each table with a cursor between source and target, day by day; exit 1 if a day differs",
    )
    parser.add_argument(
        "--repair", action="store_true", help="with --verify: reload exactly the days that differ, then compare again"
    )
    parser.add_argument("--list", action="store_true", help="list the projects and their tables")
    operate = parser.add_argument_group("what happened, and when it runs next")
    operate.add_argument("--history", action="store_true", help="the latest runs (of --project, else of all)")
    operate.add_argument("--last", type=_days, metavar="N", help="with --history: how many runs (default 20)")
    operate.add_argument(
        "--status",
        action="store_true",
        help="each project's (or --project's) last runs, locks, next scheduled runs and table watermarks",
    )
    operate.add_argument(
        "--schedule-print", action="store_true", help="the crontab lines and schtasks commands of the schedules"
    )
    operate.add_argument(
        "--schedule-install",
        choices=["cron"],
        metavar="cron",
        help="install the schedules into the user's crontab (idempotent; Windows: use --schedule-print)",
    )
    backfill = parser.add_argument_group("a resumable backfill (--backfill)")
    backfill.add_argument(
        "--backfill",
        action="store_true",
        help="load --start-date..--end-date in windows of --load-days days, one run each, recorded in "
        "etl_backfill_chunks; the same command again resumes at the first window that did not succeed",
    )
    backfill.add_argument("--load-days", type=_days, metavar="N", help="with --backfill: days per window")
    backfill.add_argument(
        "--redo-failed", action="store_true", help="with --backfill: re-run only the windows that failed"
    )
    backfill.add_argument("--restart", action="store_true", help="with --backfill: forget the ledger, run every window")
    report = parser.add_argument_group("the HTML run report (--report)")
    report.add_argument(
        "--report",
        action="store_true",
        help="write one self-contained HTML file from the audit tables (of --project, else of every project)",
    )
    report.add_argument("--days", type=_days, default=30, metavar="N", help="with --report: the last N days (30)")
    report.add_argument(
        "--out", type=Path, metavar="FILE.html", help="with --report: where (default metadata/output/reports/)"
    )
    new = parser.add_argument_group("a new project from a source's catalog (--new)")
    new.add_argument(
        "--new",
        metavar="NAME",
        help="write customer_code/NAME/project.yml and script_runner/NAME launchers from --source's tables",
    )
    new.add_argument(
        "--source", metavar="URL", help="with --new: the source's URL (saved in .env, never in project.yml)"
    )
    new.add_argument(
        "--warehouse",
        metavar="URL",
        help="with --new: the project's own warehouse (default: ETL_CONN_WAREHOUSE, else metadata/warehouse.db)",
    )
    new.add_argument(
        "--connection", metavar="NAME", help="with --new: the source connection's name (default: NAME_source)"
    )
    return parser


def parse_request(argv: Sequence[str]) -> tuple[RunRequest | None, argparse.Namespace]:
    """The validated request (None with ``--list``) and the raw arguments; ConfigError on bad input."""
    args = build_parser().parse_args(list(argv))
    _check_new_flags(args)
    reporting = _check_report_flags(args)
    _check_html_report_flags(args)
    if reporting or args.list or args.new or args.report:
        if args.report and args.project:
            check_project_name(args.project)
        return None, args
    if not args.project:
        raise ConfigError(f"--project is required (see {PROG} --list for the projects)")
    check_project_name(args.project)  # before anything is read: no path can leave customer_code/
    _check_verify_flags(args)
    _check_backfill_flags(args)
    if args.start_date and args.end_date:
        _check_order(args.start_date, args.end_date)
    request = RunRequest(
        project=args.project,
        load_type=args.load_type,
        start_date=args.start_date,
        end_date=args.end_date,
        env_name=args.env,
        dry_run=args.dry_run,
        tables=args.tables,
        steps=args.steps,
        orchestrator_run_id=args.orchestrator_run_id,
    )
    return request, args


_NEW_ONLY = ("source", "warehouse", "connection")  # --tables also selects the tables of a run
_NOT_WITH_NEW = ("project", "list", "check", "verify", "repair", "start_date", "end_date", "env", "orchestrator_run_id")


def _check_new_flags(args: argparse.Namespace) -> None:
    """``--new NAME --source URL --tables LIST`` stands alone; its options mean nothing without it."""
    if args.new is None:
        given = [f"--{name}" for name in _NEW_ONLY if getattr(args, name) is not None]
        if given:
            raise ConfigError(
                f"{given[0]} belongs to --new: give --new NAME --source URL --tables LIST (see {PROG} --help)"
            )
        return
    check_project_name(args.new, option="--new")
    for name in ("source", "tables"):
        if not getattr(args, name):
            raise ConfigError(f"--new needs --{name} (e.g. {PROG} --new {args.new} --source URL --tables 'erp.orders')")
    clashing = [f"--{name.replace('_', '-')}" for name in _NOT_WITH_NEW if getattr(args, name)]
    if clashing:
        raise ConfigError(f"--new cannot be combined with {clashing[0]}; create the project first, then run it")


_REPORTS = ("history", "status", "schedule_print", "schedule_install", "list")


def _check_report_flags(args: argparse.Namespace) -> bool:
    """Whether a report (--history, --status, --schedule-*, --list) was asked for, alone and well formed."""
    if args.last is not None and not args.history:
        raise ConfigError("--last belongs to --history (e.g. --history --last 50)")
    asked = [f"--{n.replace('_', '-')}" for n in _REPORTS if getattr(args, n)]
    if len(asked) > 1:
        raise ConfigError(f"{asked[0]} and {asked[1]} cannot be combined: give one of them")
    if not asked or asked[0] == "--list":
        return False
    others = [
        f"--{n.replace('_', '-')}" for n in ("backfill", "dry_run", "check", "verify", "start_date") if getattr(args, n)
    ]
    if others:
        raise ConfigError(f"{asked[0]} cannot be combined with {others[0]}")
    if args.project is not None:
        check_project_name(args.project)
    return True


def _check_backfill_flags(args: argparse.Namespace) -> None:
    """``--backfill`` needs the range and the window length; its options mean nothing without it."""
    if not args.backfill:
        given = [f"--{n.replace('_', '-')}" for n in ("load_days", "redo_failed", "restart") if getattr(args, n)]
        if given:
            raise ConfigError(f"{given[0]} belongs to --backfill (see {PROG} --help)")
        return
    missing = [f"--{n.replace('_', '-')}" for n in ("start_date", "end_date", "load_days") if not getattr(args, n)]
    if missing:
        raise ConfigError(
            f"--backfill needs {', '.join(missing)} (e.g. --backfill --start-date 2024-01-01 --end-date 2024-12-31 "
            "--load-days 7)"
        )
    clashing = [f"--{n.replace('_', '-')}" for n in ("dry_run", "check", "verify") if getattr(args, n)]
    if clashing:
        raise ConfigError(f"--backfill cannot be combined with {clashing[0]}")
    if args.redo_failed and args.restart:
        raise ConfigError("--redo-failed and --restart exclude each other: give one of them")


def _check_html_report_flags(args: argparse.Namespace) -> None:
    """``--report [--project P] [--days N] [--out FILE]`` reads the audit tables and runs nothing."""
    if not args.report:
        if args.out is not None or args.days != 30:
            raise ConfigError(f"--days and --out belong to --report (see {PROG} --help)")
        return
    clashing = [
        f"--{name.replace('_', '-')}"
        for name in (
            "list",
            "new",
            "check",
            "verify",
            "repair",
            "dry_run",
            "start_date",
            "end_date",
            "tables",
            "backfill",
            "history",
            "status",
            "schedule_print",
            "schedule_install",
        )
        if getattr(args, name)
    ]
    if clashing:
        raise ConfigError(f"--report cannot be combined with {clashing[0]}; it reads the audit tables and runs nothing")


def _check_verify_flags(args: argparse.Namespace) -> None:
    if args.repair and not args.verify:
        raise ConfigError("--repair reloads the days --verify finds: give --verify --repair")
    if args.verify and (args.dry_run or args.check):
        raise ConfigError(f"--verify cannot be combined with {'--dry-run' if args.dry_run else '--check'}")
    if args.verify and args.steps != ALL_STEPS:
        raise ConfigError("--verify compares tables by day; --steps does not apply")
    if args.verify and args.load_type is LoadType.FULL:
        raise ConfigError("--verify compares by day; --load-type does not apply (give dates to limit it)")


def _check_order(start: datetime, end: datetime) -> None:
    if (start.tzinfo is None) != (end.tzinfo is None):
        raise ConfigError("--start-date and --end-date must both have a UTC offset or both have none")
    if start >= end:
        raise ConfigError(f"--start-date {start.isoformat(' ')} must be before --end-date {end.isoformat(' ')}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (never raises for expected failures)."""
    interrupts.install()  # Ctrl-C and SIGTERM (a scheduler stopping the job) unwind the same way
    limit_malloc_arenas()
    prefer_system_arrow_pool()
    try:
        request, args = parse_request(sys.argv[1:] if argv is None else argv)
        from script_factory.settings import load_settings

        settings = load_settings(args.env)
        if args.new:
            return _new_project(args, settings)
        if args.report:
            from script_factory.factory import load_project_config
            from script_factory.report_html import make_report
            from script_factory.settings import WAREHOUSE_CONNECTION

            project = load_project_config(args.project, settings) if args.project else None
            warehouse = project.warehouse if project else WAREHOUSE_CONNECTION
            path = make_report(settings, args.project, args.days, args.out, warehouse)
            print(f"report: {path}")
            return ExitCode.SUCCESS
        if request is None:
            print(_report(args, settings))
            return ExitCode.SUCCESS
        from script_factory.factory import build_plan

        plan = build_plan(request, settings, expand=not args.check)  # --check reports each connection instead
        if args.check:
            from script_factory.connection_check import check_connections, check_tables

            lines, all_ok = check_connections(plan, settings)
            if all_ok:  # the tables are looked at once every connection answers (they inform only)
                lines += check_tables(plan, request, settings)
            print("\n".join(settings.masker(line) for line in lines))
            return ExitCode.SUCCESS if all_ok else ExitCode.BAD_CONFIG
        if request.dry_run:
            from script_factory.dry_run import render

            print(render(plan, request, settings))
            return ExitCode.SUCCESS
        from script_factory.report import summary_text
        from script_factory.runner import run
        from utilities.files import check_folders

        paths = settings.paths  # a file where a run folder belongs: exit 2 before anything connects
        check_folders(paths.home, [paths.logs / request.project, paths.output / request.project, paths.locks])
        if args.backfill:
            from script_factory.backfill import REDO_FAILED, RESTART, RESUME, Backfill, run_backfill

            mode = REDO_FAILED if args.redo_failed else RESTART if args.restart else RESUME
            return run_backfill(
                plan, Backfill(request, args.load_days, mode), settings, lambda line: print(line, flush=True)
            )
        if args.verify:
            from script_factory.verify import verify_project

            return verify_project(
                plan, request, settings, lambda line: print(settings.masker(line), flush=True), args.repair
            )
        summary = run(plan, request, settings)
        print(summary_text(summary, settings.paths.home))
        if summary.exit_code is ExitCode.UPSTREAM_NOT_READY:
            print(f"{PROG}: {summary.outcome.error}", file=sys.stderr)
        if summary.exit_code is ExitCode.INTERRUPTED:
            said = (
                INTERRUPTED_LINE
                if summary.run_id is not None
                else "interrupted before the run began; nothing was written"
            )
            print(f"{PROG}: {said}", file=sys.stderr)
        return summary.exit_code
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return ExitCode.BAD_CONFIG
    except LockedError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return ExitCode.LOCKED
    except (FatalError, TransientError) as exc:  # a pattern entry's source could not list its tables
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return ExitCode.TASK_FAILED
    except KeyboardInterrupt:  # outside the run's own handling (while assembling, or a second Ctrl-C)
        print(f"{PROG}: interrupted; nothing was left half-written (open loads are rolled back)", file=sys.stderr)
        return ExitCode.INTERRUPTED


def _new_project(args: argparse.Namespace, settings: Any) -> int:
    """``--new``: read the source's catalog, write the project and its launchers, say what was written."""
    import os

    from script_factory.scaffold import NewProjectRequest, create_project, parse_tables
    from utilities.secrets import Secret

    request = NewProjectRequest(
        name=args.new,
        source_url=Secret(args.source),
        tables=parse_tables(",".join(args.tables)),
        warehouse_url=Secret(args.warehouse) if args.warehouse else None,
        connection=args.connection,
    )
    print("\n".join(create_project(request, settings, windows=os.name == "nt")))
    return ExitCode.SUCCESS


def _report(args: argparse.Namespace, settings: Any) -> str:
    """The text of --history, --status, --schedule-print, --schedule-install or --list."""
    if args.history or args.status:
        from script_factory.history import history_text, status_text

        return (
            history_text(settings, args.project, args.last or 20)
            if args.history
            else status_text(settings, args.project)
        )
    if args.schedule_print or args.schedule_install:
        from script_factory.schedule import install_cron, print_text

        return print_text(settings, args.env) if args.schedule_print else install_cron(settings, args.env)
    return _listing(settings)


def _listing(settings: Any) -> str:
    from script_factory.listing import full_entry, listing, project_names

    def full(name: str) -> str:
        from script_factory.factory import load_project_config

        return full_entry(name, lambda project: load_project_config(project, settings))

    return listing(settings.paths.projects, project_names(settings.paths.projects), full)


if __name__ == "__main__":
    sys.exit(main())
