"""The journal's git repository: the few git operations the journal needs, run through GitPython's git CLI wrapper.

The git CLI (not GitPython's pure-Python index) keeps commits fast in journals with tens of thousands of files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import git

from .errors import JournalError

FALLBACK_IDENTITY = ("promptism", "promptism@localhost")


class GitRepo:
    def __init__(self, path: Path, inherited_fds: Callable[[], tuple[int, ...]] = tuple):
        self.path = path
        self._inherited_fds = inherited_fds
        try:
            self._repo = git.Repo(path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise JournalError(f"{path} has no git repository; run `promptism doctor` or `promptism init` on an empty directory") from None
        self._git = self._repo.git
        self._identity_checked = False

    @classmethod
    def init(cls, path: Path) -> "GitRepo":
        git.Repo.init(path, initial_branch="main")
        return cls(path)

    def run(self, *args: str) -> str:
        try:
            return self._git.execute(["git", *args], env=_GIT_ENV, pass_fds=self._inherited_fds())
        except git.GitCommandError as exc:
            detail = (exc.stderr or exc.stdout or "").strip().splitlines()
            raise JournalError(f"git {args[0]} failed in {self.path}: {detail[-1] if detail else exc.status}") from None

    def add(self, *paths: str) -> None:
        self.run("add", "--all", "--", *paths)

    def commit(self, message: str, message_file: Path) -> str:
        """Commit the index with ``message``; return the new commit's sha.

        Plumbing rather than ``git commit``: 1. write the index as a tree, 2. make the commit object, 3. move the
        branch with a compare-and-swap on its old value — the one atomic step. No work-tree scan, so it stays fast in
        a journal of tens of thousands of files.
        """
        self._ensure_identity()
        message_file.write_text(message, encoding="utf-8")
        tree = self.run("write-tree")
        parent = self.run("rev-parse", "--verify", "--quiet", "HEAD") if self.head_exists() else None
        sha = self.run("commit-tree", tree, *(["-p", parent] if parent else []), "-F", str(message_file))
        self.run("update-ref", "-m", "promptism", "HEAD", sha, *([parent] if parent else []))
        return sha

    def tag(self, name: str, rev: str) -> None:
        self.run("tag", "--force", name, rev)

    def tags(self, pattern: str) -> set[str]:
        return set(self.run("tag", "--list", pattern).split())

    def head_exists(self) -> bool:
        try:
            self._git.execute(["git", "rev-parse", "--verify", "--quiet", "HEAD"], env=_GIT_ENV)
            return True
        except git.GitCommandError:
            return False

    def first_commit_adding(self, path: str) -> str | None:
        out = self.run("log", "--format=%H", "--diff-filter=A", "--", path)
        return out.split()[-1] if out else None

    def in_head(self, path: str) -> bool:
        return bool(self.run("ls-tree", "HEAD", "--", path))

    def restore_to_head(self, *paths: str) -> None:
        """Make ``paths`` in index and working tree exactly as in HEAD: unstage, drop untracked, restore tracked."""
        self.run("reset", "--quiet", "HEAD", "--", *paths)
        self.run("clean", "-d", "--force", "--quiet", "--", *paths)
        tracked = [p for p in paths if self.in_head(p)]
        if tracked:
            self.run("checkout", "HEAD", "--", *tracked)

    def changes(self, *paths: str) -> list[tuple[str, str]]:
        """(status, path) for every file under ``paths`` that differs from HEAD; ``??`` marks untracked files."""
        out = self._git.execute(["git", "status", "--porcelain=v1", "-z", "--no-renames", "--untracked-files=all", "--", *paths],
                                env=_GIT_ENV, strip_newline_in_stdout=False)
        return [(entry[:2], entry[3:]) for entry in out.split("\0") if entry]

    def remove_stale_locks(self) -> list[str]:
        """Delete lock files a killed git process left behind.

        Only called while holding the journal's writer lock, which every git command the journal runs inherits: so
        no git process of ours can still be running, and any lock file left is stale.
        """
        gitdir = Path(self._repo.git_dir)
        locks = [p for p in (gitdir / "index.lock", gitdir / "HEAD.lock", *gitdir.glob("refs/**/*.lock")) if p.exists()]
        for lock in locks:
            lock.unlink()
        return [str(lock.relative_to(self.path)) for lock in locks]

    def _ensure_identity(self) -> None:
        if self._identity_checked:
            return
        reader = self._repo.config_reader()
        if not (reader.has_option("user", "name") and reader.has_option("user", "email")):
            self.run("config", "user.name", FALLBACK_IDENTITY[0])
            self.run("config", "user.email", FALLBACK_IDENTITY[1])
        self._identity_checked = True


_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}  # added to the inherited environment
