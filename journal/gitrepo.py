"""The journal's git repository: the few git operations the journal needs, run through GitPython's git CLI wrapper.

The git CLI (not GitPython's pure-Python index) keeps commits fast in journals with tens of thousands of files.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import git

from . import failpoints
from .errors import JournalError
from .text import visible
from .wording import option

FALLBACK_IDENTITY = ("promptism", "promptism@localhost")
#: core.sharedRepository: objects 0400, files 0600, folders 0700 — the history holds every prompt, its owner's alone
PRIVATE = "0600"


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
        self._usable = False

    @classmethod
    def init(cls, path: Path) -> "GitRepo":
        git.Repo.init(path, initial_branch="main", shared=PRIVATE)
        return cls(path)

    # ------------------------------------------------------------------ privacy at rest

    def exposed(self) -> int:
        """How many files and folders of the repository another user could read, or its setting lets git make so."""
        shared = self.run("config", "--default", "", "core.sharedRepository").strip()
        return len(self._readable_by_others()) + (shared != PRIVATE)

    def make_private(self) -> None:
        """The repository its owner's alone, from now on too (``core.sharedRepository``)."""
        self.run("config", "core.sharedRepository", PRIVATE)
        for path, mode in self._readable_by_others():
            path.chmod(mode & 0o700)

    def _readable_by_others(self) -> list[tuple[Path, int]]:
        """Each file and folder under .git (the folder too) that its group or others may touch, with its mode."""
        git_dir = Path(self._repo.git_dir)
        return [(path, mode) for path in (git_dir, *git_dir.rglob("*"))
                if not path.is_symlink() and (mode := path.stat().st_mode) & 0o077]

    def prune_unreachable(self) -> int:
        """Remove the objects no commit, tag or reflog reaches — what a rolled-back write leaves, which may hold a
        prompt — and the reflog entries of commits no branch holds any more; how many objects there were."""
        unreachable = self.run("fsck", "--unreachable", "--no-reflogs", "--no-progress").splitlines()
        count = sum(1 for line in unreachable if line.startswith("unreachable "))
        if count:
            self.run("reflog", "expire", "--expire-unreachable=now", "--all")
            self.run("gc", "--prune=now", "--quiet")
        return count

    def run(self, *args: str, env: dict[str, str] | None = None, stdin: Path | None = None) -> str:
        try:
            if stdin is None:
                return self._git.execute(["git", *args], env={**_GIT_ENV, **(env or {})}, pass_fds=self._inherited_fds())
            with open(stdin, "rb") as given:
                return self._git.execute(["git", *args], env={**_GIT_ENV, **(env or {})}, pass_fds=self._inherited_fds(),
                                         istream=given)
        except git.GitCommandError as exc:
            raise self._error(args[0], exc) from None

    def _error(self, command: str, exc: git.GitCommandError) -> JournalError:
        text = str(exc.stderr or exc.stdout or "")
        where = visible(str(self.path), keep_newlines=False)
        if "dubious ownership" in text:
            return JournalError(f"git refuses to work in {where}: it belongs to another user; use a journal of your own "
                                f"({option('journal', 'DIR')}), or if you trust it: git config --global --add safe.directory {where}")
        if any(full in text for full in ("No space left on device", "Out of diskspace", "Disk quota exceeded", "File too large")):
            return JournalError(f"git could not write in {where}: the disk is full; free some space and try again (nothing "
                                "is lost: the next command finishes or rolls back the interrupted write)")
        detail = [line.strip(" '") for line in text.strip().splitlines() if line.strip(" '")]
        return JournalError(f"git {command} failed in {where}: {visible(detail[-1]) if detail else exc.status}")

    def check_usable(self) -> None:
        """Raise a clear JournalError now if git will refuse this repository (another user's, broken), before a
        write touches anything."""
        if not self._usable:
            self.run("rev-parse", "--git-dir")
            self._usable = True

    def commit_paths(self, paths: list[str], message: str, scratch: Path) -> str:
        """Commit ``paths`` exactly as they are in the work tree, on top of HEAD; return the new commit's sha. Its
        message, private index and path list are files named ``scratch`` + ``-message`` / ``-index`` / ``-others``.

        Only these paths: whatever else is staged in the shared index (by the user, or by a tool) is neither committed
        nor disturbed. Plumbing rather than ``git commit``: 1. a private index that matches HEAD (a copy of the shared
        one with anything else staged there put back as in HEAD — a copy keeps git's cached trees, so this is quick in
        a journal of tens of thousands of files) is given ``paths``, 2. written as a tree, 3. made a commit object,
        4. the branch moves with a compare-and-swap on its old value — the one atomic step — 5. the shared index takes
        the same paths, so ``git status`` stays clean.
        """
        self._ensure_identity()
        message_file, index = scratch.with_name(scratch.name + "-message"), scratch.with_name(scratch.name + "-index")
        message_file.write_text(message, encoding="utf-8")
        private = {"GIT_INDEX_FILE": str(index)}
        parent = self.run("rev-parse", "--verify", "--quiet", "HEAD") if self.head_exists() else None
        shared = Path(self._repo.git_dir) / "index"
        if parent and shared.exists():
            shutil.copyfile(shared, index)
            if others := self.run("diff-index", "--cached", "--name-only", "-z", parent, env=private).strip("\0"):
                listed = scratch.with_name(scratch.name + "-others")
                listed.write_text(others + "\0", encoding="utf-8")
                self.run("reset", "--quiet", parent, f"--pathspec-from-file={listed}", "--pathspec-file-nul", env=private)
        else:
            index.unlink(missing_ok=True)
            self.run("read-tree", *([parent] if parent else ["--empty"]), env=private)
        self.run("add", "--all", "--", *paths, env=private)
        failpoints.hit("staged")
        tree = self.run("write-tree", env=private)
        sha = self.run("commit-tree", tree, *(["-p", parent] if parent else []), "-F", str(message_file))
        self.run("update-ref", "-m", "promptism", "HEAD", sha, *([parent] if parent else []))
        failpoints.hit("ref-moved")
        for used in (index, message_file, scratch.with_name(scratch.name + "-others")):
            used.unlink(missing_ok=True)
        self.run("add", "--all", "--", *paths)
        return sha

    def tag(self, name: str, rev: str) -> None:
        self.run("tag", "--force", name, rev)

    def tag_all(self, names: list[str], rev: str, scratch: Path) -> None:
        """Point the tags ``names`` at ``rev`` in one git command (a batch of imports: not a process per tag); the
        list goes through the file ``scratch`` + ``-tags``."""
        listing = scratch.with_name(scratch.name + "-tags")
        listing.write_text("".join(f"update refs/tags/{name} {rev}\n" for name in names), encoding="utf-8")
        self.run("update-ref", "--stdin", stdin=listing)
        listing.unlink()

    def tags(self, pattern: str) -> set[str]:
        return set(self.run("tag", "--list", pattern).split())

    def head_exists(self) -> bool:
        """Whether the branch has a commit yet (any other git failure is raised, never taken for "no")."""
        try:
            self._git.execute(["git", "rev-parse", "--verify", "--quiet", "HEAD"], env=_GIT_ENV)
            return True
        except git.GitCommandError as exc:
            if exc.status == 1 and not str(exc.stderr or "").strip():
                return False
            raise self._error("rev-parse", exc) from None

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
        try:
            out = self._git.execute(["git", "status", "--porcelain=v1", "-z", "--no-renames", "--untracked-files=all", "--", *paths],
                                    env=_GIT_ENV, strip_newline_in_stdout=False)
        except git.GitCommandError as exc:
            raise self._error("status", exc) from None
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
