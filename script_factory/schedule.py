"""Schedules: ``schedule:`` of each project as a crontab line and a Windows ``schtasks /Create`` command,
and ``--schedule-install cron``, which writes the crontab lines into the user's crontab.

The installed lines sit between two marker comments naming this checkout, naming the ETL home (``ETL_HOME``, else the
checkout), so installing again replaces them, and only them: the user's own lines and the blocks of other
homes are kept as they were.
The crontab is read with ``crontab -l`` and written with ``crontab -``. Windows has no crontab: the
``schtasks`` commands are printed, to run in an administrator's cmd.exe.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

from script_factory.factory import load_project_config, project_names
from script_factory.settings import REPO_ROOT, Settings
from utilities.errors import ConfigError, FatalError

DAYS = {"0": "SUN", "1": "MON", "2": "TUE", "3": "WED", "4": "THU", "5": "FRI", "6": "SAT", "7": "SUN"}


@dataclass(frozen=True)
class Scheduled:
    project: str
    cron: str


def scheduled(settings: Settings) -> tuple[list[Scheduled], list[str]]:
    """The projects with a ``schedule:``, and a note for each project.yml that is not valid (left out)."""
    found, notes = [], []
    for name in project_names(settings):
        try:
            config = load_project_config(name, settings)
        except ConfigError as exc:
            notes.append(f"# {name}: left out, its project.yml is not valid: {exc}")
            continue
        if config.schedule:
            found.append(Scheduled(name, config.schedule))
    return found, notes


def markers(home: Path) -> tuple[str, str]:
    """The comment lines around the block that the projects of ``home`` (ETL_HOME) own in a crontab."""
    return (
        f"# >>> script-factory ETL {home} (written by script_runner.py --schedule-install cron; edits are replaced)",
        f"# <<< script-factory ETL {home}",
    )


def cron_line(item: Scheduled, settings: Settings, env_name: str | None, root: Path = REPO_ROOT) -> str:
    """``<cron> cd ROOT && [ETL_HOME=...] LAUNCHER I [--env NAME] >> LOG 2>&1`` (``%`` escaped for cron)."""
    own = root / "script_runner" / f"{item.project}.sh"
    launcher = [str(own)] if own.is_file() else [str(root / "script_runner" / "_launch.sh"), item.project]
    command = [*launcher, "I", *(["--env", env_name] if env_name else [])]
    home = settings.paths.home
    prefix = f"ETL_HOME={shlex.quote(str(home))} " if home != root else ""
    log = settings.paths.logs / f"cron_{item.project}.log"
    text = f"cd {shlex.quote(str(root))} && {prefix}{shlex.join(command)} >> {shlex.quote(str(log))} 2>&1"
    return f"{item.cron} {text.replace('%', chr(92) + '%')}"


def schtasks_command(item: Scheduled, settings: Settings, env_name: str | None, root: Path = REPO_ROOT) -> str:
    """The ``schtasks /Create`` command of ``item`` (or a ``rem`` line when the cron has no schtasks form)."""
    schedule = _schtasks_schedule(item.cron)
    if schedule is None:
        return (
            f'rem {item.project}: "{item.cron}" has no schtasks equivalent; create the task in Task Scheduler '
            "by hand (or simplify the cron expression)"
        )
    win = PureWindowsPath(root)
    bat = win / "script_runner" / f"{item.project}.bat"
    launch = f"{bat} I" if (root / "script_runner" / f"{item.project}.bat").is_file() else None
    launch = launch or f"{win / 'script_runner' / '_launch.bat'} {item.project} I"
    if env_name:
        launch += f" --env {env_name}"
    log = PureWindowsPath(settings.paths.logs) / f"cron_{item.project}.log"
    home = settings.paths.home
    env = f"set ETL_HOME={PureWindowsPath(home)}&& " if home != root else ""
    return (
        f'schtasks /Create /F /TN "ETL {item.project}" {schedule} /RU SYSTEM /TR "cmd /c {env}{launch} >> {log} 2>&1"'
    )


def _schtasks_schedule(cron: str) -> str | None:
    """``/SC ...`` for the cron expressions Task Scheduler can say: daily, weekly on days, monthly on a
    day, hourly at a minute, every N minutes. None for the others."""
    fields = cron.split()
    if len(fields) != 5:
        return None
    minute, hour, day, month, weekday = fields
    if month != "*":
        return None
    if minute.startswith("*/") and minute[2:].isdigit() and hour == day == weekday == "*":
        return f"/SC MINUTE /MO {int(minute[2:])}"
    if not minute.isdigit():
        return None
    if hour == "*" and day == weekday == "*":
        return f"/SC HOURLY /ST 00:{int(minute):02d}"
    if not hour.isdigit():
        return None
    at = f"/ST {int(hour):02d}:{int(minute):02d}"
    if day == "*" and weekday == "*":
        return f"/SC DAILY {at}"
    if day == "*" and all(d in DAYS for d in weekday.split(",")):
        return f"/SC WEEKLY /D {','.join(dict.fromkeys(DAYS[d] for d in weekday.split(',')))} {at}"
    if weekday == "*" and day.isdigit():
        return f"/SC MONTHLY /D {int(day)} {at}"
    return None


def print_text(settings: Settings, env_name: str | None) -> str:
    """What ``--schedule-print`` shows: the crontab block, then the schtasks commands."""
    items, notes = scheduled(settings)
    if not items:
        return "\n".join([*notes, f"no project in {settings.paths.projects} has a schedule: (nothing to print)"])
    begin, end = markers(settings.paths.home)
    lines = [
        "# crontab (Linux, macOS): script_runner.py --schedule-install cron installs these lines",
        *notes,
        begin,
        *(cron_line(i, settings, env_name) for i in items),
        end,
        "",
        "rem Windows Task Scheduler: run these in an administrator's cmd.exe"
        + ("" if os.name == "nt" else " (paths of this checkout; on Windows, run --schedule-print there)"),
        *(schtasks_command(i, settings, env_name) for i in items),
    ]
    return "\n".join(lines)


def install_cron(settings: Settings, env_name: str | None) -> str:
    """Replace this checkout's block in the user's crontab with the current schedules; says what it did."""
    if os.name == "nt":
        raise ConfigError(
            "--schedule-install cron: Windows has no crontab; run --schedule-print and paste its schtasks lines "
            "into an administrator's cmd.exe"
        )
    crontab = shutil.which("crontab")
    if crontab is None:
        raise ConfigError(
            "--schedule-install cron: crontab was not found on PATH; install cron (Debian: apt-get install cron) "
            "or copy the lines of --schedule-print"
        )
    items, notes = scheduled(settings)
    current = _read_crontab(crontab)
    begin, end = markers(settings.paths.home)
    kept = _without_block(current, begin, end)
    block = [begin, *(cron_line(i, settings, env_name) for i in items), end] if items else []
    new = "\n".join([*kept, *block]) + "\n" if kept or block else ""
    if new == current:
        said = f"crontab unchanged: its {len(items)} line(s) of this checkout are already installed"
    else:
        _write_crontab(crontab, new)
        said = f"crontab: installed {len(items)} line(s) for {', '.join(i.project for i in items) or 'no project'}"
    settings.paths.logs.mkdir(parents=True, exist_ok=True)  # where the lines' output goes
    return "\n".join([*notes, said, *block[1:-1]])


def _read_crontab(crontab: str) -> str:
    done = subprocess.run([crontab, "-l"], capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return done.stdout
    if "no crontab" in done.stderr.lower():
        return ""
    raise FatalError(f"crontab -l failed (exit {done.returncode}): {done.stderr.strip()[:200]}; nothing was changed")


def _write_crontab(crontab: str, text: str) -> None:
    done = subprocess.run([crontab, "-"], input=text, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FatalError(
            f"crontab - failed (exit {done.returncode}): {done.stderr.strip()[:200]}; the crontab was not changed"
        )


def _without_block(text: str, begin: str, end: str) -> list[str]:
    """The crontab's lines without this checkout's block (trailing blank lines dropped)."""
    kept, inside = [], False
    for line in text.splitlines():
        if line == begin:
            inside = True
        elif inside and line == end:
            inside = False
        elif not inside:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return kept
