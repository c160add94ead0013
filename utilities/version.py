"""The script version for the audit row: the package version plus the git commit, read from .git
(or, in the Docker image, which has no .git, from the ``.git-commit`` file its build wrote)."""

from __future__ import annotations

from pathlib import Path


def script_version(version: str, repo: Path) -> str:
    """``0.1.0+abc1234`` inside a git checkout, ``0.1.0`` elsewhere (no git executable needed)."""
    commit = _git_commit(repo / ".git") or _baked_commit(repo / ".git-commit")
    return f"{version}+{commit[:7]}" if commit else version


def _baked_commit(path: Path) -> str | None:
    """The commit ``docker build --build-arg GIT_COMMIT=...`` wrote into the image (docker/Dockerfile)."""
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _git_commit(git_dir: Path) -> str | None:
    try:
        if git_dir.is_file():  # a worktree: "gitdir: <path>"
            git_dir = Path(git_dir.read_text(encoding="utf-8").split(":", 1)[1].strip())
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(":", 1)[1].strip()
        ref_file = git_dir / ref
        if ref_file.is_file():
            return ref_file.read_text(encoding="utf-8").strip()
        common = git_dir / "commondir"
        base = (git_dir / common.read_text(encoding="utf-8").strip()) if common.is_file() else git_dir
        if (base / ref).is_file():
            return (base / ref).read_text(encoding="utf-8").strip()
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
    except (OSError, IndexError):
        return None
    return None
