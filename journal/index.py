"""The queryable index of experiment documents: a TinyDB table in ``journal.json``, keyed by experiment number.

Queries go through TinyDB. Writes replace documents in one atomic storage write (a publish of several experiments
lands all at once or not at all); TinyDB's own update/insert would rewrite the whole file once per call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tinydb import TinyDB
from tinydb.queries import QueryLike
from tinydb.table import Document

from .storage import AtomicJSONStorage, CorruptIndex
from .text import quoted

TABLE = "experiments"
REQUIRED = frozenset({"number", "title", "slug", "dir", "model", "images", "created", "updated"})  # see model.Experiment


class Index:
    def __init__(self, path: Path):
        self.path = path
        self._db = TinyDB(path, storage=AtomicJSONStorage)
        self._table = self._db.table(TABLE, cache_size=0)  # no query cache: another process may have written
        self._checked: dict | None = None  # the parsed file ``check`` last found sound

    def check(self) -> None:
        """Raise CorruptIndex unless the file holds exactly the experiments table and every document in it is filed
        under its own number with an experiment's fields (a missing file is fine)."""
        data = self._db.storage.read()
        if data is None or data is self._checked:  # this very parse was checked already
            return
        if set(data) != {TABLE}:
            raise CorruptIndex(self.path, f"it should hold the table {quoted(TABLE)} and nothing else")
        for key, doc in data[TABLE].items():
            if not (key.isdigit() and doc.get("number") == int(key)):
                raise CorruptIndex(self.path, f"document {quoted(key[:20])} is not filed under its number")
            if missing := REQUIRED - doc.keys():
                raise CorruptIndex(self.path, f"document {key} lacks {', '.join(sorted(missing))}")
        self._checked = data

    def __len__(self) -> int:
        return len(self._raw())

    def last_number(self) -> int:
        return max(map(int, self._raw()), default=0)

    def get(self, number: int) -> Document | None:
        return self._table.get(doc_id=number)

    def search(self, condition: QueryLike | None = None) -> list[Document]:
        return self._table.search(condition) if condition is not None else self._table.all()

    def put(self, docs: Iterable[dict]) -> None:
        table = dict(self._raw())
        table.update({str(doc["number"]): doc for doc in docs})
        self._write(table)

    def drop(self, number: int) -> None:
        table = dict(self._raw())
        if table.pop(str(number), None) is not None:
            self._write(table)

    def replace_all(self, docs: Iterable[dict]) -> None:
        self._write({str(doc["number"]): doc for doc in sorted(docs, key=lambda d: d["number"])})

    def _raw(self) -> dict[str, dict]:
        return (self._db.storage.read() or {}).get(TABLE, {})

    def _write(self, table: dict[str, dict]) -> None:
        self._db.storage.write({TABLE: table})
