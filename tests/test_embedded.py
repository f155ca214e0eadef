"""Embedded use: train on the caller's DataFrames and Arrow tables by name, register() them,
read results as polars; a server's clients never reach the server's Python objects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import duck_synth
from duck_synth.errors import SynthError

QUICK = "epochs => 1, max_time => 600, seed => 1"


def people(rows: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows),
            "city": rng.choice(["Lyon", "Oslo", "Lima"], rows),
        }
    )


@pytest.fixture
def session():
    s = duck_synth.connect(None)
    yield s
    s.close()


def test_train_reads_a_pandas_dataframe_of_the_callers_scope(session):
    frame = people()  # noqa: F841  read by its name
    (summary,) = session.sql(f"FROM train('p', 'frame', {QUICK})").fetchall()
    assert summary[0] == "p" and summary[4] == 400
    cities = {r[0] for r in session.sql("SELECT city FROM generate('p', target => 50)").fetchall()}
    assert cities <= {"Lyon", "Oslo", "Lima"}


def test_train_and_evaluate_read_arrow_tables_and_the_convenience_methods_too(session):
    arrow_people = pa.Table.from_pandas(people())  # noqa: F841  read by its name
    assert session.train("a", "arrow_people", epochs=1, max_time=600, seed=1)["rows"] == 400
    metrics = session.sql(
        "SELECT count(*) FROM evaluate('arrow_people', "
        "'SELECT * FROM generate(''a'', target => 200)')"
    ).fetchone()[0]
    assert metrics > 0


def test_a_table_of_the_database_wins_over_a_python_object_of_that_name(session):
    clash = people()  # noqa: F841  found by name, but the table comes first
    session.sql("CREATE TABLE clash AS SELECT 1 AS only_column FROM range(50)")
    columns = session.sql(f"FROM train('c', 'clash', {QUICK})").fetchone()[5]
    assert columns == 1


def test_register_names_a_dataframe_for_sql_and_for_train(session):
    session.register("registered_people", people(300))
    assert session.sql("SELECT count(*) FROM registered_people").fetchone() == (300,)
    assert session.sql(f"FROM train('r', 'registered_people', {QUICK})").fetchone()[4] == 300
    with pytest.raises(SynthError, match="DataFrame or an Arrow table"):
        session.register("not_data", [1, 2, 3])


def test_unknown_names_and_other_python_values_are_still_unknown_tables(session):
    not_a_frame = [1, 2, 3]  # noqa: F841  a Python value, but not data
    for name in ("not_a_frame", "nowhere"):
        with pytest.raises(SynthError, match=f"unknown table or view '{name}'"):
            session.sql(f"FROM train('x', '{name}', {QUICK})")


def test_polars_frames_train_and_results_come_back_as_polars(session):
    pl = pytest.importorskip("polars")
    polars_people = pl.from_pandas(people())  # noqa: F841  read by its name
    assert session.sql(f"FROM train('pl', 'polars_people', {QUICK})").fetchone()[4] == 400
    result = session.sql("FROM generate('pl', target => 20)").pl()
    assert isinstance(result, pl.DataFrame) and result.columns == ["age", "city"]
    assert result.height == 20


def test_a_servers_clients_never_reach_its_python_objects(tmp_path):
    from duck_synth.serve import ServeOptions, serve

    server_people = people()  # noqa: F841  in the server process, in this very frame
    database = tmp_path / "served.duckdb"
    server = serve(str(database), ServeOptions(port=0, quack_port=None))
    try:
        server.session.register("registered_people", people())  # the operator's own session
        client = duck_synth.connect(server.url)
        for name in ("server_people", "registered_people"):
            for statement in (
                f"FROM train('leak', '{name}', {QUICK})",
                f"SELECT count(*) FROM {name}",
            ):
                with pytest.raises(SynthError, match=name):
                    client.sql(statement)
        client.close()
    finally:
        server.close()


def test_a_remote_session_refuses_register(tmp_path):
    from duck_synth.serve import ServeOptions, serve

    server = serve(str(tmp_path / "served.duckdb"), ServeOptions(port=0, quack_port=None))
    try:
        client = duck_synth.connect(server.url)
        with pytest.raises(SynthError, match="for a local session"):
            client.register("people", people())
        client.close()
    finally:
        server.close()
