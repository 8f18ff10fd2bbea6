import json

import pytest
from tinydb import TinyDB

from journal import InvalidInput, JournalError
from journal.storage import AtomicJSONStorage


def test_unserialisable_value_fails_before_the_file_is_touched(tmp_path):
    path = tmp_path / "db.json"
    db = TinyDB(path, storage=AtomicJSONStorage)
    db.insert({"a": 1})
    before = path.read_bytes()
    for bad in [{"a": object()}, {"a": "\ud800"}, {"a": {1: "non-string key"}}]:
        with pytest.raises(InvalidInput):
            db.insert(bad)
        assert path.read_bytes() == before
    assert TinyDB(path, storage=AtomicJSONStorage).all() == [{"a": 1}]
    assert db.all() == [{"a": 1}]  # the failed write did not poison the in-memory cache


def test_no_temp_files_are_left_and_the_file_is_replaced_not_rewritten(tmp_path):
    path = tmp_path / "db.json"
    db = TinyDB(path, storage=AtomicJSONStorage)
    db.insert({"a": 1})
    inode = path.stat().st_ino
    db.insert({"b": 2})
    assert path.stat().st_ino != inode  # os.replace of a new file, never an in-place truncate
    assert [p.name for p in tmp_path.iterdir()] == ["db.json"]


def test_a_second_handle_sees_writes_from_the_first(tmp_path):
    path = tmp_path / "db.json"
    a = TinyDB(path, storage=AtomicJSONStorage)
    b = TinyDB(path, storage=AtomicJSONStorage)
    a.insert({"n": 1})
    assert b.all() == [{"n": 1}]
    a.insert({"n": 2})
    assert [d["n"] for d in b.all()] == [1, 2]


def test_unicode_is_stored_as_utf8(tmp_path):
    path = tmp_path / "db.json"
    TinyDB(path, storage=AtomicJSONStorage).insert({"title": "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 🔅"})
    assert "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 🔅" in path.read_text(encoding="utf-8")
    assert json.loads(path.read_bytes())["_default"]["1"]["title"] == "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡 🔅"
    assert "\\u" not in path.read_text(encoding="utf-8")  # stored as UTF-8, not escaped


def test_corrupt_file_gives_a_journal_error(tmp_path):
    path = tmp_path / "db.json"
    path.write_text('{"_default": {"1": ')
    with pytest.raises(JournalError, match="doctor"):
        TinyDB(path, storage=AtomicJSONStorage).all()
