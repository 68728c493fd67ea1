"""API keys: the file holds hashes only, a key is found in constant time, a changed file is read
again (a revoked key stops working), a bad file never starts a service, and ``vae-keys``
makes a key and its line."""

from __future__ import annotations

import hashlib
import os

import pytest

from app.cli import keys
from app.edge import api_keys
from app.edge.api_keys import ApiKeys, KeyFileError, hash_key, key_line, new_key, parse_keys


def write(path, *lines: str) -> None:
    path.write_text("".join(line + "\n" for line in lines))
    # A changed file is noticed by its modification time and size: make the change visible
    # even within the file system's time resolution.
    stamp = path.stat().st_mtime_ns + 10**9
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def recheck_at_once(monkeypatch):
    monkeypatch.setattr(api_keys, "RECHECK_SECONDS", 0.0)


def test_a_key_is_stored_as_its_sha256_only():
    key = new_key()
    assert len(key) >= 43 and new_key() != key  # 256 random bits, URL-safe
    assert key_line("alice", key) == f"alice:{hashlib.sha256(key.encode()).hexdigest()}"
    assert key not in key_line("alice", key)


def test_the_file_allows_comments_and_names_the_bad_line():
    good = hash_key("k")
    assert parse_keys(f"# keys\n\nalice:{good}  # Alice's laptop\n") == {
        "alice": bytes.fromhex(good)
    }
    with pytest.raises(KeyFileError, match="line 2"):
        parse_keys(f"alice:{good}\nbob:not-a-hash\n")
    with pytest.raises(KeyFileError, match="used twice"):
        parse_keys(f"alice:{good}\nalice:{hash_key('other')}\n")
    with pytest.raises(KeyFileError, match="name"):
        key_line("no spaces please", "k")


def test_a_token_is_its_keys_name_or_nothing(tmp_path):
    path = tmp_path / "keys"
    write(path, key_line("alice", "alice-key"), key_line("bob", "bob-key"))
    keys = ApiKeys(path)
    assert keys.name_of("alice-key") == "alice" and keys.name_of("bob-key") == "bob"
    assert keys.name_of("wrong") is None and keys.name_of(None) is None
    assert keys.name_of("") is None


def test_a_revoked_key_stops_working_and_a_new_one_starts(tmp_path, recheck_at_once):
    path = tmp_path / "keys"
    write(path, key_line("alice", "alice-key"), key_line("bob", "bob-key"))
    keys = ApiKeys(path)
    assert keys.name_of("bob-key") == "bob"
    write(path, key_line("alice", "alice-key"), key_line("carol", "carol-key"))
    assert keys.name_of("bob-key") is None
    assert keys.name_of("carol-key") == "carol" and keys.name_of("alice-key") == "alice"


def test_a_file_that_breaks_keeps_the_keys_it_had(tmp_path, recheck_at_once, caplog):
    path = tmp_path / "keys"
    write(path, key_line("alice", "alice-key"))
    keys = ApiKeys(path)
    write(path, "alice:half-written")
    assert keys.name_of("alice-key") == "alice"
    assert "not reloaded" in caplog.text and "alice-key" not in caplog.text
    path.unlink()
    assert keys.name_of("alice-key") == "alice"


@pytest.mark.parametrize("content", [None, "", "# nobody yet\n", "alice:xyz\n"])
def test_a_service_does_not_start_with_a_missing_empty_or_bad_file(tmp_path, content):
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(KeyFileError):
        ApiKeys(path)


def test_vae_keys_prints_a_key_and_appends_its_line(tmp_path, capsys):
    path = tmp_path / "api-keys.txt"
    keys(["new", "alice", "--append", str(path)])
    printed = capsys.readouterr().out.splitlines()
    key = printed[0].removeprefix("key:").strip()
    assert printed[1] == f"line: {key_line('alice', key)}"
    assert path.read_text() == key_line("alice", key) + "\n"
    assert ApiKeys(path).name_of(key) == "alice"
    with pytest.raises(SystemExit):  # the same name twice
        keys(["new", "alice", "--append", str(path)])
