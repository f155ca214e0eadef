"""A plugin that adds two SQL functions to duck_synth's surface, declared as the built-in ones
are (tests/test_surface.py loads it with DUCK_SYNTH_PLUGINS=toy_surface):

- ``echo_rows(n [, word])`` reads: n rows (i, word);
- ``stamp(table_name [, note])`` writes: appends one row (note) to a table, created if missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from duck_synth import spool, sqltext, surface
from duck_synth.options import bounded, parse


@dataclass
class EchoOptions:
    word: str = "echo"
    times: int = bounded(1, low=1)


@dataclass
class StampOptions:
    note: str = "stamped"


def echo_rows(cursor, n: str, options: str) -> str:
    given = parse(EchoOptions, "echo_rows", options)
    rows = [{"i": i, "word": given.word * given.times} for i in range(int(n))]
    return spool.rows_sql("echo", rows)


def stamp(cursor, table_name: str, options: str) -> str:
    given = parse(StampOptions, "stamp", options)
    table = sqltext.quote_identifier(table_name)
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {table} (note VARCHAR)")
    cursor.execute(f"INSERT INTO {table} VALUES (?)", [given.note])
    return spool.summary_sql("stamp", {"table_name": table_name, "note": given.note})


surface.register(
    surface.Function(
        "echo_rows",
        surface.READS,
        "echo_rows(n [, word, times]) -> n rows: i and the word (times over).",
        required=("n",),
        options=EchoOptions,
        udf="synth_toy_echo",
    ),
    echo_rows,
)
surface.register(
    surface.Function(
        "stamp",
        surface.WRITES,
        "stamp('table' [, note]) -> one row: appends the note to the table.",
        required=("table_name",),
        options=StampOptions,
        udf="synth_toy_stamp",
    ),
    stamp,
)
