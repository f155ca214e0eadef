"""duck_synth demo: train on real data (diamonds; a panel of careers; planes and their flights) in a DuckDB file, generate in SQL.

python examples/demo.py [--database examples/demo.duckdb] [--max-time 60]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import duck_synth

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=str(HERE / "demo.duckdb"))
    parser.add_argument(
        "--max-time", type=float, default=float(os.environ.get("DEMO_MAX_TIME", 60))
    )
    args = parser.parse_args()

    session = duck_synth.connect(args.database)

    def show(title: str, sql: str) -> None:
        print(f"\n-- {title}\n{sql}")
        print(session.sql(sql).df().to_string(index=False, max_rows=12))

    def explain(title: str, sql: str) -> None:
        print(f"\n-- {title}\nEXPLAIN {sql}")
        print(duck_synth.explain(sql, session))

    def judge(model: str, real: str, synthetic: str, **session_columns: str) -> None:
        """evaluate, validate and report: how close, what breaks the learned rules, one file."""
        options = "".join(f", {k} => '{v}'" for k, v in session_columns.items())
        show(
            f"{model}: fidelity of the synthetic rows (evaluate)",
            f"SELECT metric, columns, round(value, 3) AS value FROM evaluate('{real}', "
            f"'{synthetic}'{options}) WHERE columns = '' ORDER BY metric",
        )
        show(
            f"{model}: the synthetic rows checked against what the model learned (validate)",
            "SELECT count(*) AS checks, count(*) FILTER (passed) AS passed, "
            "list(DISTINCT rule) AS rules "
            f"FROM validate('{model}', '{synthetic}')",
        )
        report = Path(args.database).with_name(f"{model}_report.html")
        show(
            f"{model}: one self-contained HTML report (report)",
            f"SELECT columns, plots, bytes FROM report('{real}', '{synthetic}', "
            f"path => '{report}')",
        )

    data = HERE / "data"
    session.sql((data / "diamonds.sql").read_text().format(parquet=data / "diamonds.parquet"))
    started = time.monotonic()
    show(
        "train a model on the table (one summary row)",
        f"FROM train('diamonds_model', 'diamonds', max_time => {args.max_time}, seed => 42)",
    )
    print(f"(trained in {time.monotonic() - started:.1f} s)")

    show(
        "100 Fair diamonds: the WHERE is pushed into the generator (conditional sampling)",
        "SELECT cut, count(*) AS n, round(avg(price)) AS avg_price "
        "FROM generate('diamonds_model', target => 100, seed => 1) WHERE cut = 'Fair' GROUP BY cut",
    )
    explain(
        "where each predicate went (EXPLAIN runs nothing)",
        "SELECT * FROM generate('diamonds_model') g JOIN diamonds d USING (carat) "
        "WHERE g.cut = 'Fair' AND (g.price > 1000 OR d.price > 1000)",
    )

    show(
        "real vs synthetic, by cut",
        "WITH syn AS (FROM generate('diamonds_model', seed => 2)) "
        "SELECT cut, r.n AS real_rows, s.n AS synthetic_rows, r.p AS real_avg_price, s.p AS synthetic_avg_price "
        "FROM (SELECT cut, count(*) n, round(avg(price)) p FROM diamonds GROUP BY cut) r "
        "JOIN (SELECT cut, count(*) n, round(avg(price)) p FROM syn GROUP BY cut) s USING (cut) ORDER BY cut",
    )

    show(
        "what-if with seed rows: fix carat, let the model fill in the rest",
        "SELECT carat, round(avg(price)) AS avg_price, count(*) AS n FROM generate('diamonds_model', "
        "seed_rows => 'SELECT unnest([0.5, 1.0, 2.0]) AS carat FROM range(500)', seed => 3) "
        "GROUP BY carat ORDER BY carat",
    )

    session.sql(
        "CREATE OR REPLACE TABLE diamonds_synthetic AS "
        "FROM generate('diamonds_model', target => 100000, seed => 4)"
    )
    judge("diamonds_model", "diamonds", "diamonds_synthetic")
    show(
        "types survive (ENUMs stay ENUMs)",
        "SELECT column_name, column_type FROM (DESCRIBE diamonds_synthetic)",
    )
    show(
        "what the model learned (value-protected)",
        "SELECT \"column\", kind, type, cardinality, summary FROM describe_model('diamonds_model')",
    )
    session.sql(
        "CREATE OR REPLACE TABLE males AS SELECT * EXCLUDE (column00) "
        f"FROM read_csv('{data / 'Males.csv'}')"
    )
    show(
        "sessions: 545 men observed yearly 1980-1987 (plm's Males), one model of whole careers",
        "SELECT sessions, rows, epochs, seconds, why FROM train('careers', 'males', "
        f"session_key => 'nr', order_by => 'year', max_time => {args.max_time}, seed => 42)",
    )
    show(
        "three synthetic careers of black men: the metadata filter conditions the sessions",
        'SELECT nr, year, school, ethn, exper, "union", round(wage, 2) AS wage, occupation '
        "FROM generate('careers', target => 3, seed => 5) WHERE ethn = 'black' ORDER BY nr, year",
    )
    show(
        "session fidelity against the real panel",
        "SELECT metric, round(value, 3) AS value FROM evaluate('males', "
        "'FROM generate(''careers'', seed => 6)', session_key => 'nr', order_by => 'year') "
        "WHERE metric IN ('overall', 'sessions', 'session_shapes', 'step_shape', "
        "'lag1_autocorrelation') AND columns IN ('', 'wage')",
    )
    session.sql("CREATE OR REPLACE TABLE careers_synthetic AS FROM generate('careers', seed => 7)")
    judge("careers", "males", "careers_synthetic", session_key="nr", order_by="year")
    explain(
        "a measurement filter picks whole careers",
        "SELECT * FROM generate('careers', target => 20) WHERE wage > 2.5 LIMIT 100",
    )
    linked_database(session, show, data / "nycflights13", args.max_time)
    served(session, show, args.max_time)
    show("the catalog", "SELECT name, version, method, training_rows, created FROM models()")
    show(
        "the generation log",
        "SELECT model, rows_drawn, rows_returned, round(seconds, 2) AS seconds FROM synth.generations",
    )
    session.close()
    print(f"\nAll of it is in {args.database}; open it again with duck_synth.connect().")


def linked_database(session, show, data: Path, max_time: float) -> None:
    """Planes and their flights (nycflights13, dirty keys and all): one model of the database,
    generated parents first with every key pointing at a generated parent."""
    for table in ("airlines", "planes", "flights"):
        session.sql(f"CREATE OR REPLACE TABLE {table} AS FROM '{data / table}.parquet'")
    relations = (
        "[{'child': 'flights', 'key': 'tailnum', 'parent': 'planes', 'parent_key': 'tailnum'}, "
        "{'child': 'flights', 'key': 'carrier', 'parent': 'airlines', 'parent_key': 'carrier'}]"
    )
    show(
        "a database: airlines, planes and their flights, each flight drawn given its plane",
        "SELECT rows, epochs, seconds, orphans FROM train('airline_db', "
        "['airlines', 'planes', 'flights'], exclude => ['flights.time_hour'], "
        f"relations => {relations}, max_time => {max_time}, seed => 42)",
    )
    show(
        "generate_tables(): fresh keys, every foreign key a generated parent's",
        "FROM generate_tables('airline_db', seed => 1, replace => true)",
    )
    linked_relations = relations.replace("'flights'", "'linked_flights'")
    session.sql(  # the real flights as trained: orphans dropped, time_hour left out
        "CREATE OR REPLACE VIEW linked_flights AS SELECT * EXCLUDE (time_hour) FROM flights "
        "WHERE tailnum IS NULL OR tailnum IN (SELECT tailnum FROM planes)"
    )
    show(
        "judged as a database: degrees (flights per plane, zero included), keys, trends",
        "SELECT metric, columns, round(value, 3) AS value FROM evaluate("
        "['airlines', 'planes', 'linked_flights'], ['syn_airlines', 'syn_planes', 'syn_flights'], "
        f"relations => {linked_relations}) "
        "WHERE metric <> 'null_key_share'",
    )
    session.sql(
        "FROM generate_tables('airline_db', seed => 2, prefix => 'big_', replace => true, "
        "filters => {'planes': 'seats > 150'})"
    ).fetchall()
    show(
        "a parent filter (filters => {'planes': 'seats > 150'}): those planes, their flights",
        "SELECT count(*) AS planes, min(seats) AS min_seats, (SELECT count(*) FROM big_flights) "
        "AS flights, (SELECT count(*) FROM big_flights WHERE tailnum NOT IN (SELECT tailnum "
        "FROM big_planes)) AS dangling FROM big_planes",
    )


def served(session, show, max_time: float) -> None:
    """Pipelines: a test-data endpoint, then an A/B of two versions of the diamonds model
    (the first, and one continued from it), every call logged."""
    show(
        "a test-data endpoint: diamonds drawn given the caller's rows, priced, cheap ones flagged",
        "SELECT pipeline, version, steps FROM create_pipeline('testdata', steps => ["
        "{'generate': 'diamonds_model'}, "
        "{'sql': 'SELECT *, round(price / carat) AS per_carat FROM input'}, "
        "{'validation': 'cheap', 'check': 'price >= 800'}])",
    )
    session.sql("FROM deploy('testdata')").fetchall()
    show(
        "infer(): each input row beside the row drawn for it (in.* / out.*), validations",
        'SELECT "in.carat", "in.cut", "out.color", "out.price", "out.per_carat", check_failures '
        "FROM infer('testdata', input => [{'carat': 0.3, 'cut': 'Fair'}, "
        "{'carat': 1.0, 'cut': 'Ideal'}, {'carat': 2.0, 'cut': 'Premium'}], timeout => 10)",
    )
    old = session.sql("SELECT max(version) FROM models() WHERE name = 'diamonds_model'")
    old = old.fetchone()[0]
    session.sql(
        f"FROM train('diamonds_model', 'diamonds', from_model => 'diamonds_model@{old}', "
        f"max_time => {max_time / 2}, seed => 43)"
    ).fetchall()
    for arm, version in (("model_a", old), ("model_b", old + 1)):
        session.sql(
            f"FROM create_pipeline('{arm}', steps => [{{'generate': 'diamonds_model@{version}', "
            "'target': 50}])"
        ).fetchall()
    session.sql(
        "FROM create_pipeline('ab', split => {'random': {'model_a': 1, 'model_b': 1}, "
        "'hash_key': 'customer'})"
    ).fetchall()
    session.sql("FROM deploy('ab')").fetchall()
    for customer in range(60):
        session.sql(f"FROM infer('ab', input => {{'customer': {customer}}})").fetchall()
    show(
        "A/B of the first model and its continued version: calls per arm (sticky per customer)",
        "SELECT arm, count(*) AS calls, round(avg(seconds) * 1000) AS ms FROM logs('ab', "
        "max_rows => 1000) GROUP BY arm ORDER BY arm",
    )
    for arm in session.sql("SELECT DISTINCT arm FROM logs('ab') ORDER BY arm").fetchall():
        rows = (
            f"SELECT * EXCLUDE (call_id, arm, time) FROM logged_rows(''ab'', arm => ''{arm[0]}'')"
        )
        show(
            f"the arm {arm[0]}'s logged rows judged against the real diamonds",
            f"SELECT metric, round(value, 3) AS value FROM evaluate('diamonds', '{rows}') "
            "WHERE metric IN ('overall', 'shapes', 'pair_trends') AND columns = ''",
        )


if __name__ == "__main__":
    main()
