"""What a benchmark run measured: per-run records, per-approach medians, JSON round trip."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunRecord:
    """One timed run: wall seconds, peak RSS, and whether it succeeded and its target checked out."""

    seconds: float
    peak_rss_mb: float
    ok: bool
    note: str = ""


@dataclass
class ApproachResult:
    name: str
    key: str
    label: str
    source: str
    ours: bool
    verify: str
    runs: list[RunRecord] = field(default_factory=list)
    skip_reason: str | None = None
    failure: str | None = None
    imports_rss_mb: float | None = None  # ours: the peak RSS of its imports alone (harness/footprint.py)
    imported_modules: int = 0

    @property
    def good_runs(self) -> list[RunRecord]:
        return [r for r in self.runs if r.ok]

    @property
    def median_seconds(self) -> float | None:
        good = self.good_runs
        return statistics.median(r.seconds for r in good) if good else None

    @property
    def median_rss_mb(self) -> float | None:
        good = self.good_runs
        return statistics.median(r.peak_rss_mb for r in good) if good else None


@dataclass
class PhaseResult:
    """The full loads from one source ("pg" or "mysql")."""

    source: str
    rows: int
    approaches: list[ApproachResult] = field(default_factory=list)

    def find(self, key: str) -> ApproachResult | None:
        return next((a for a in self.approaches if a.key == key), None)


@dataclass
class IncrementalRound:
    inserted: int
    updated: int
    seconds: float
    peak_rss_mb: float


@dataclass
class IncrementalResult:
    rows_before: int
    percent: float
    rounds: list[IncrementalRound] = field(default_factory=list)

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(r.seconds for r in self.rounds) if self.rounds else None

    @property
    def median_rss_mb(self) -> float | None:
        return statistics.median(r.peak_rss_mb for r in self.rounds) if self.rounds else None


@dataclass
class BenchResult:
    sf: float
    runs: int
    competitor_runs: int
    command: str
    started: str
    finished: str = ""
    note: str = ""
    machine: dict[str, str] = field(default_factory=dict)
    phases: list[PhaseResult] = field(default_factory=list)
    incremental: IncrementalResult | None = None
    dataset: str = "lineitem"
    scale: str = ""  # "SF 1" or "1,000,000 rows"
    description: str = ""

    def __post_init__(self) -> None:
        self.scale = self.scale or f"SF {self.sf:g}"  # results saved before there was a sales dataset

    def phase(self, source: str) -> PhaseResult | None:
        return next((p for p in self.phases if p.source == source), None)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> BenchResult:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        raw.setdefault("competitor_runs", raw["runs"])
        phases = [
            PhaseResult(
                source=p["source"],
                rows=p["rows"],
                approaches=[
                    ApproachResult(**{**a, "runs": [RunRecord(**r) for r in a["runs"]]}) for a in p["approaches"]
                ],
            )
            for p in raw["phases"]
        ]
        inc = raw.get("incremental")
        incremental = (
            IncrementalResult(
                rows_before=inc["rows_before"],
                percent=inc["percent"],
                rounds=[IncrementalRound(**r) for r in inc["rounds"]],
            )
            if inc
            else None
        )
        return cls(**{**raw, "phases": phases, "incremental": incremental})
