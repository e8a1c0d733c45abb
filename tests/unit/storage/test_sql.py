"""The dialect layer (roost.storage.sql): one statement, written once, in each dialect's text."""

from __future__ import annotations

import pytest

from roost.storage.sql import POSTGRESQL, SQLITE, StorageError


def test_placeholders_are_numbered_for_postgresql_and_kept_for_sqlite() -> None:
    sql = "SELECT a FROM t WHERE b = ? AND c IN (?, ?)"
    assert POSTGRESQL.translate(sql) == "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"
    assert SQLITE.translate(sql) == sql


def test_string_literals_and_comments_are_left_as_written() -> None:
    sql = "SELECT '?', 'it''s {bytes}' -- who's ? {bool}\nFROM t WHERE a = ?"
    assert POSTGRESQL.translate(sql) == (
        "SELECT '?', 'it''s {bytes}' -- who's ? {bool}\nFROM t WHERE a = $1"
    )


def test_macros_expand_to_each_dialects_spelling() -> None:
    sql = "CREATE TABLE t (id {serial}, b {bytes}, f {bool}, g {text_list} DEFAULT {empty_list})"
    assert SQLITE.translate(sql) == (
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, b BLOB, f INTEGER,"
        " g TEXT DEFAULT '[]')"
    )
    assert POSTGRESQL.translate(sql) == (
        "CREATE TABLE t (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, b BYTEA,"
        " f BOOLEAN, g TEXT[] DEFAULT '{}')"
    )


def test_a_macro_holding_a_placeholder_is_numbered_in_place() -> None:
    sql = "INSERT INTO t VALUES (?, {time_param}, ?)"
    assert POSTGRESQL.translate(sql) == (
        "INSERT INTO t VALUES ($1, to_timestamp(CAST($2 AS double precision)), $3)"
    )
    assert SQLITE.translate(sql) == "INSERT INTO t VALUES (?, ?, ?)"


def test_row_locks_are_postgresqls_and_nothing_on_sqlite() -> None:
    sql = "SELECT 1 FROM t WHERE a = ? {for_update}"
    assert POSTGRESQL.translate(sql) == "SELECT 1 FROM t WHERE a = $1 FOR UPDATE"
    assert SQLITE.translate(sql).rstrip() == "SELECT 1 FROM t WHERE a = ?"


def test_unknown_macro_is_refused() -> None:
    with pytest.raises(KeyError, match="unknown SQL macro"):
        SQLITE.translate("SELECT {nope}")


def test_text_lists_round_trip_in_each_dialects_form() -> None:
    groups = ("Friends", 'Ünï "q" {b}', "")
    assert SQLITE.encode_list(groups) == '["Friends", "\\u00dcn\\u00ef \\"q\\" {b}", ""]'
    assert POSTGRESQL.encode_list(groups) == list(groups)
    for dialect in (SQLITE, POSTGRESQL):
        assert dialect.decode_list(dialect.encode_list(groups)) == groups
    with pytest.raises(StorageError, match="not a list"):
        SQLITE.decode_list('{"a": 1}')
