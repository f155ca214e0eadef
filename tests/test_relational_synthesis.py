"""A database of linked tables trained and generated in SQL (duck_synth/relational/), on a linked
subset of nycflights13 (planes -> flights, airlines -> flights, dirty keys and all) and a
three-level chain derived from it with declared REFERENCES (carriers -> fleet -> trips)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import duck_synth
from duck_synth.errors import SynthError
from duck_synth.evaluate.relational import database_metrics
from duck_synth.relations import schema

DATA = Path(__file__).resolve().parent.parent / "examples" / "data" / "nycflights13"
RELATIONS = (
    "[{'child': 'flights', 'key': 'tailnum', 'parent': 'planes', 'parent_key': 'tailnum'}, "
    "{'child': 'flights', 'key': 'carrier', 'parent': 'airlines', 'parent_key': 'carrier'}]"
)
LINKED = [
    {"child": "flights", "key": "tailnum", "parent": "planes", "parent_key": "tailnum"},
    {"child": "flights", "key": "carrier", "parent": "airlines", "parent_key": "carrier"},
]
TRAIN = (
    "FROM train('{name}', ['airlines', 'planes', 'flights'], epochs => {epochs}, seed => 1, "
    "exclude => ['flights.time_hour'], relations => "
    + RELATIONS.replace("{", "{{").replace("}", "}}")
    + "{more})"
)


@pytest.fixture(scope="module")
def s(tmp_path_factory):
    session = duck_synth.connect(str(tmp_path_factory.mktemp("relational") / "flights.duckdb"))
    for table in ("airlines", "planes", "flights"):
        session.sql(f"CREATE TABLE {table} AS FROM '{DATA / table}.parquet'")
    # flights without orphans: what a generated database is compared with
    session.sql(
        "CREATE VIEW linked_flights AS SELECT * EXCLUDE (time_hour) FROM flights "
        "WHERE tailnum IS NULL OR tailnum IN (SELECT tailnum FROM planes)"
    )
    result = session.sql(TRAIN.format(name="fl", epochs=40, more=""))
    session.trained = dict(zip(result.columns, result.fetchone(), strict=True))
    session.sql("FROM generate_tables('fl', seed => 3, scale => 5)").fetchall()
    yield session
    session.close()


def value(s, sql: str):
    return s.sql(sql).fetchone()[0]


def degrees(s, parents: str, children: str, key: str = "tailnum") -> np.ndarray:
    """Children per parent row, zeros included."""
    rows = s.sql(
        f"SELECT count(c.{key}) FROM {parents} p LEFT JOIN {children} c USING ({key}) "
        f"GROUP BY p.{key}"
    ).fetchall()
    return np.array([r[0] for r in rows])


def test_the_summary_counts_the_orphans_dropped_and_the_null_keys(s):
    tables = {t["table"]: t for t in json.loads(s.trained["tables"])}
    assert s.trained["method"] == "database" and s.trained["orphans"] == 597
    assert (tables["flights"]["orphans_dropped"], tables["flights"]["null_keys"]) == (597, 171)
    assert tables["flights"]["rows"] == 4769 - 597 and tables["planes"]["rows"] == 296
    assert tables["flights"]["epochs"] == 40


def test_every_foreign_key_points_at_a_generated_parent_and_keys_are_fresh_and_unique(s):
    assert value(s, "SELECT count(*) - count(DISTINCT tailnum) FROM syn_planes") == 0
    assert (
        value(s, "SELECT count(*) FROM syn_planes WHERE tailnum IN (SELECT tailnum FROM planes)")
        < 20
    )
    for key, parent in (("tailnum", "syn_planes"), ("carrier", "syn_airlines")):
        dangling = value(
            s,
            f"SELECT count(*) FROM syn_flights f WHERE {key} IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = f.{key})",
        )
        assert dangling == 0, key
    declared = s.sql(
        "SELECT table_name, constraint_type FROM duckdb_constraints() "
        "WHERE table_name LIKE 'syn_%' AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') "
        "ORDER BY ALL"
    ).fetchall()
    assert ("syn_flights", "FOREIGN KEY") in declared and ("syn_planes", "PRIMARY KEY") in declared


def test_parents_without_children_keep_their_share_and_degrees_their_distribution(s):
    real, synthetic = (
        degrees(s, "planes", "linked_flights"),
        degrees(s, "syn_planes", "syn_flights"),
    )
    assert len(synthetic) == 5 * len(real)  # scale => 5
    assert abs((real == 0).mean() - (synthetic == 0).mean()) <= 0.03
    rows = database_metrics(
        s.con,
        schema(s.con, ["planes", "linked_flights"], [LINKED[0] | {"child": "linked_flights"}]),
        {"planes": "SELECT * FROM syn_planes", "linked_flights": "SELECT * FROM syn_flights"},
    )
    similarity = next(r["value"] for r in rows if r["metric"] == "degree_similarity")
    assert similarity >= 0.9


def test_null_keys_are_generated_at_their_real_share(s):
    real = value(s, "SELECT avg((tailnum IS NULL)::INT) FROM linked_flights")
    synthetic = value(s, "SELECT avg((tailnum IS NULL)::INT) FROM syn_flights")
    assert abs(real - synthetic) <= 0.02


def test_children_are_drawn_given_their_parent_row(s):
    # big planes fly long routes: the correlation between a plane's seats and its flights'
    # distance survives (it would be ~0 if flights ignored their plane)
    sql = "SELECT corr(p.seats, f.distance) FROM {flights} f JOIN {planes} p USING (tailnum)"
    real = value(s, sql.format(flights="linked_flights", planes="planes"))
    synthetic = value(s, sql.format(flights="syn_flights", planes="syn_planes"))
    assert real > 0.3 and synthetic > real - 0.2


def test_a_pushed_down_parent_where_returns_only_matching_parents(s):
    rows = s.sql(
        "FROM generate('fl', \"table\" => 'planes', seed => 4) WHERE seats > 150"
    ).fetchall()
    real_share = value(s, "SELECT avg((seats > 150)::INT) FROM planes")
    assert all(r[6] > 150 for r in rows)
    assert abs(len(rows) - real_share * 296) <= 0.25 * real_share * 296


def test_a_parent_filter_generates_only_matching_parents_and_their_children(s):
    s.sql(
        "FROM generate_tables('fl', seed => 5, prefix => 'big_', filters => {'planes': 'seats > 150'})"
    ).fetchall()
    assert value(s, "SELECT min(seats) FROM big_planes") > 150
    assert value(s, "SELECT count(*) FROM big_flights WHERE tailnum IS NULL") == 0
    assert (
        value(
            s,
            "SELECT count(*) FROM big_flights WHERE tailnum NOT IN (SELECT tailnum FROM big_planes)",
        )
        == 0
    )
    real = value(
        s, "SELECT count(*) FROM linked_flights JOIN planes USING (tailnum) WHERE seats > 150"
    )
    assert 0.6 * real <= value(s, "SELECT count(*) FROM big_flights") <= 1.5 * real


def test_seed_rows_of_a_parent_keep_their_keys_and_get_generated_children(s):
    s.sql(
        "FROM generate_tables('fl', seed => 6, prefix => 'given_', seed_rows => "
        "{'planes': 'SELECT tailnum, seats FROM planes ORDER BY tailnum LIMIT 30'})"
    ).fetchall()
    assert (
        s.sql("SELECT tailnum, seats FROM given_planes ORDER BY tailnum").fetchall()
        == s.sql("SELECT tailnum, seats FROM planes ORDER BY tailnum LIMIT 30").fetchall()
    )
    assert value(s, "SELECT count(*) FROM given_flights WHERE tailnum IS NOT NULL") > 30
    orphans = (
        "SELECT count(*) FROM given_flights WHERE tailnum NOT IN (SELECT tailnum FROM given_planes)"
    )
    assert value(s, orphans) == 0


def test_one_table_of_a_database_is_reproducible_with_its_seed(s):
    first = s.sql("FROM generate('fl', \"table\" => 'flights', seed => 9)").fetchall()
    again = s.sql("FROM generate('fl', \"table\" => 'flights', seed => 9)").fetchall()
    assert first == again and len(first) > 1000
    assert s.sql("FROM generate('fl', \"table\" => 'flights', seed => 9) LIMIT 0").columns == [
        c for c in s.sql("FROM flights LIMIT 0").columns if c != "time_hour"
    ]


def test_the_same_seed_trains_the_same_database(s):
    """Each table network's initial weights come from the seed: two trainings in one process
    (the global random state moved on in between) give the same weights."""
    weights = "SELECT name, md5(weights::VARCHAR) FROM synth.models WHERE name LIKE '{}.%'"
    for name in ("same_a", "same_b"):
        s.sql(TRAIN.format(name=name, epochs=1, more=", max_time => 3600")).fetchall()
    a, b = (sorted(s.sql(weights.format(n)).fetchall()) for n in ("same_a", "same_b"))
    assert len(a) == 3 and [w for _, w in a] == [w for _, w in b]
    for name in ("same_a", "same_b"):
        s.sql(f"FROM drop_model('{name}')").fetchall()


def test_the_table_models_are_hidden_in_models_and_dropped_with_the_database(s):
    s.sql(TRAIN.format(name="small", epochs=1, more="")).fetchall()
    assert [
        r[0] for r in s.sql("SELECT name FROM models() WHERE name LIKE 'small%'").fetchall()
    ] == ["small"]
    assert value(s, "SELECT count(*) FROM synth.models WHERE name LIKE 'small.%'") == 3
    # each table's model has its fingerprint, like any trained model
    prints = "SELECT count(DISTINCT metrics->>'$.fingerprint') FROM synth.models WHERE name LIKE 'small.%'"
    assert value(s, prints) == 3
    s.sql("FROM drop_model('small')").fetchall()
    assert value(s, "SELECT count(*) FROM synth.models WHERE name LIKE 'small%'") == 0


def test_keep_orphans_keeps_them_with_a_null_key(s):
    row = s.sql(TRAIN.format(name="kept", epochs=1, more=", keep_orphans => true")).fetchone()
    tables = {t["table"]: t for t in json.loads(row[-1])}
    assert tables["flights"]["orphans_kept"] == 597 and tables["flights"]["rows"] == 4769
    # the rows without a parent (NULL keys and orphans kept) are drawn as many as were trained
    flights = s.sql("FROM generate('kept', \"table\" => 'flights', seed => 1)").arrow()
    assert flights.column("tailnum").null_count == 597 + 171


def test_a_database_is_refused_what_it_cannot_do_in_one_line(s):
    cases = {
        ", epsilon => 1.0": "epsilon on a database is refused: a parent's children",
        ", method => 'tabgan'": "a database is trained with method 'autoregressive'",
        ", session_key => 'tailnum'": "session_key is for one table",
    }
    for more, message in cases.items():
        with pytest.raises(SynthError, match=message) as error:
            s.sql(TRAIN.format(name="bad", epochs=1, more=more))
        assert "\n" not in str(error.value)
    with pytest.raises(SynthError, match="is a database of tables airlines, planes, flights"):
        s.sql("FROM generate('fl')")
    with pytest.raises(SynthError, match="has no table 'nope'"):
        s.sql("FROM generate_tables('fl', filters => {'nope': 'x > 1'})")
    with pytest.raises(SynthError, match="seed_rows are given for a root table"):
        s.sql("FROM generate_tables('fl', seed_rows => {'flights': 'FROM flights'})")
    with pytest.raises(SynthError, match="relations and keep_orphans are for a list of tables"):
        s.sql("FROM train('one', 'planes', keep_orphans => true)")
    assert value(s, "SELECT count(*) FROM synth.models WHERE name LIKE 'bad%'") == 0


def test_writing_over_an_existing_table_is_refused_and_writes_nothing(s):
    s.sql("CREATE TABLE taken_flights (x INTEGER)")
    with pytest.raises(SynthError, match="table 'taken_flights' exists"):
        s.sql("FROM generate_tables('fl', prefix => 'taken_')")
    assert value(s, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'taken_planes'") == 0
    written = s.sql("FROM generate_tables('fl', prefix => 'taken_', replace => true)").fetchall()
    assert [r[0] for r in written] == ["taken_airlines", "taken_planes", "taken_flights"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """airlines -> planes (by each plane's main carrier) -> its flights, with declared keys;
    and airports <- flights by origin (context) and dest (a second key to the same parent)."""
    session = duck_synth.connect(str(tmp_path_factory.mktemp("chain") / "chain.duckdb"))
    for table in ("airlines", "planes", "flights", "airports"):
        session.sql(f"CREATE TABLE raw_{table} AS FROM '{DATA / table}.parquet'")
    session.sql("CREATE TABLE carriers (carrier VARCHAR PRIMARY KEY, name VARCHAR)")
    session.sql("INSERT INTO carriers FROM raw_airlines")
    session.sql(
        "CREATE TABLE fleet (tailnum VARCHAR PRIMARY KEY, carrier VARCHAR REFERENCES carriers, "
        "year INTEGER, seats INTEGER, engines INTEGER)"
    )
    session.sql(
        "INSERT INTO fleet SELECT p.tailnum, arg_max(f.carrier, (n, f.carrier)), any_value(p.year), "
        "any_value(p.seats), any_value(p.engines) FROM raw_planes p JOIN (SELECT tailnum, "
        "carrier, count(*) AS n FROM raw_flights GROUP BY ALL) f USING (tailnum) GROUP BY p.tailnum "
        "ORDER BY p.tailnum"
    )
    session.sql(
        "CREATE TABLE trips (tailnum VARCHAR REFERENCES fleet, dep_delay INTEGER, distance INTEGER)"
    )
    session.sql(
        "INSERT INTO trips SELECT tailnum, dep_delay, distance FROM raw_flights "
        "WHERE tailnum IN (SELECT tailnum FROM fleet)"
    )
    session.sql("CREATE TABLE ports (faa VARCHAR PRIMARY KEY, alt INTEGER, tz INTEGER)")
    session.sql(
        "INSERT INTO ports SELECT faa, alt, tz FROM raw_airports WHERE faa IN "
        "(SELECT origin FROM raw_flights UNION SELECT dest FROM raw_flights)"
    )
    session.sql(
        "CREATE TABLE legs (origin VARCHAR REFERENCES ports, dest VARCHAR REFERENCES ports, "
        "distance INTEGER, air_time INTEGER)"
    )
    session.sql(
        "INSERT INTO legs SELECT origin, CASE WHEN dest IN (SELECT faa FROM ports) THEN dest END, "
        "distance, air_time FROM raw_flights"
    )
    session.sql(
        "CREATE TABLE routes (origin VARCHAR, dest VARCHAR, carriers INTEGER, "
        "PRIMARY KEY (origin, dest))"
    )
    session.sql(
        "INSERT INTO routes SELECT origin, dest, count(DISTINCT carrier) FROM raw_flights "
        "GROUP BY ALL ORDER BY ALL"
    )
    session.sql(
        "CREATE TABLE hops (origin VARCHAR, dest VARCHAR, dep_delay INTEGER, "
        "FOREIGN KEY (origin, dest) REFERENCES routes (origin, dest))"
    )
    session.sql("INSERT INTO hops SELECT origin, dest, dep_delay FROM raw_flights")
    # a parent whose key (origin, day) holds a foreign key (origin -> ports) and a date
    session.sql(
        "CREATE TABLE days (origin VARCHAR REFERENCES ports, day DATE, "
        "flights INTEGER, PRIMARY KEY (origin, day))"
    )
    session.sql(
        "INSERT INTO days SELECT origin, make_date(year, month, day), count(*) FROM raw_flights "
        "GROUP BY ALL ORDER BY ALL"
    )
    session.sql(
        "CREATE TABLE departures (origin VARCHAR, day DATE, dep_delay INTEGER, "
        "FOREIGN KEY (origin, day) REFERENCES days (origin, day))"
    )
    session.sql(
        "INSERT INTO departures SELECT origin, make_date(year, month, day), dep_delay "
        "FROM raw_flights"
    )
    yield session
    session.close()


def test_a_composite_key_links_children_to_generated_parents(chain):
    chain.sql("FROM train('hops', ['routes', 'hops'], epochs => 5, seed => 4)")
    chain.sql("FROM generate_tables('hops', seed => 1)").fetchall()
    assert value(chain, "SELECT count(*) FROM syn_routes") == value(
        chain, "FROM routes SELECT count(*)"
    )
    dangling = (
        "SELECT count(*) FROM syn_hops h WHERE NOT EXISTS (SELECT 1 FROM syn_routes r "
        "WHERE r.origin = h.origin AND r.dest = h.dest)"
    )
    assert value(chain, dangling) == 0
    assert value(chain, "SELECT count(*) FROM syn_hops") > 1000


def test_a_three_level_chain_of_declared_keys_resolves_at_every_level(chain):
    chain.sql("FROM train('chain', ['trips', 'fleet', 'carriers'], epochs => 40, seed => 2)")
    chain.sql("FROM generate_tables('chain', seed => 1, scale => 5)").fetchall()
    for child, key, parent in (("fleet", "carrier", "carriers"), ("trips", "tailnum", "fleet")):
        assert value(chain, f"SELECT count(*) FROM syn_{child} WHERE {key} IS NULL") == 0
        dangling = (
            f"SELECT count(*) FROM syn_{child} WHERE {key} NOT IN (SELECT {key} FROM syn_{parent})"
        )
        assert value(chain, dangling) == 0
    carriers_zero = (
        "SELECT avg((n = 0)::INT) FROM (SELECT count(f.carrier) n FROM {c} c "
        "LEFT JOIN {f} f USING (carrier) GROUP BY c.carrier)"
    )
    real = value(chain, carriers_zero.format(c="carriers", f="fleet"))
    synthetic = value(chain, carriers_zero.format(c="syn_carriers", f="syn_fleet"))
    assert abs(real - synthetic) <= 0.2  # 16 carriers: a coarse check
    rows = database_metrics(
        chain.con,
        schema(chain.con, ["carriers", "fleet", "trips"]),
        {t: f"SELECT * FROM syn_{t}" for t in ("carriers", "fleet", "trips")},
    )
    by_relation = {r["columns"]: r["value"] for r in rows if r["metric"] == "degree_similarity"}
    assert by_relation["trips(tailnum) -> fleet(tailnum)"] >= 0.9, by_relation
    # 16 carriers, a few with hundreds of planes: a coarse check
    assert by_relation["fleet(carrier) -> carriers(carrier)"] >= 0.6, by_relation


def test_two_keys_to_one_parent_keep_both_links(chain):
    # dest is the context (listed first); origin a second key to the same table, matched to
    # generated ports in proportion to the legs each drew for it
    chain.sql(
        "FROM train('legs', ['ports', 'legs'], epochs => 20, seed => 3, relations => ["
        "{'child': 'legs', 'key': 'dest', 'parent': 'ports', 'parent_key': 'faa'}, "
        "{'child': 'legs', 'key': 'origin', 'parent': 'ports', 'parent_key': 'faa'}])"
    )
    chain.sql("FROM generate_tables('legs', seed => 1)").fetchall()
    for key in ("origin", "dest"):
        dangling = f"SELECT count(*) FROM syn_legs WHERE {key} NOT IN (SELECT faa FROM syn_ports)"
        assert value(chain, dangling) == 0
    # legs to a port not in the table keep their NULL key: exactly as many as were trained
    assert value(chain, "SELECT count(*) FILTER (WHERE dest IS NULL) FROM syn_legs") == value(
        chain, "SELECT count(*) FILTER (WHERE dest IS NULL) FROM legs"
    )


def test_a_key_holding_a_foreign_key_and_a_date_stays_unique_and_linked(chain):
    chain.sql("FROM train('days', ['ports', 'days', 'departures'], epochs => 5, seed => 5)")
    chain.sql("FROM generate_tables('days', seed => 2, prefix => 'd_')").fetchall()
    assert value(chain, "SELECT count(*) - count(DISTINCT (origin, day)) FROM d_days") == 0
    assert (
        value(chain, "SELECT count(*) FROM d_days WHERE origin NOT IN (SELECT faa FROM d_ports)")
        == 0
    )
    dangling = (
        "SELECT count(*) FROM d_departures d WHERE NOT EXISTS (SELECT 1 FROM d_days s "
        "WHERE s.origin = d.origin AND s.day = d.day)"
    )
    assert value(chain, dangling) == 0 and value(chain, "SELECT count(*) FROM d_departures") > 0
    assert chain.sql("SELECT typeof(day) FROM d_days LIMIT 1").fetchone() == ("DATE",)


def test_a_junction_table_of_keys_only_and_uuid_keys_are_generated(chain):
    # which planes flew which routes: a table of two foreign keys and nothing else
    chain.sql("CREATE TABLE craft (id UUID PRIMARY KEY, tailnum VARCHAR UNIQUE, seats INTEGER)")
    chain.sql(
        "INSERT INTO craft SELECT uuid(), tailnum, seats FROM raw_planes WHERE tailnum IN "
        "(SELECT tailnum FROM raw_flights) ORDER BY tailnum"
    )
    chain.sql(
        "CREATE TABLE flown (craft UUID REFERENCES craft (id), origin VARCHAR, dest VARCHAR, "
        "FOREIGN KEY (origin, dest) REFERENCES routes (origin, dest))"
    )
    chain.sql(
        "INSERT INTO flown SELECT DISTINCT c.id, f.origin, f.dest FROM raw_flights f "
        "JOIN craft c USING (tailnum) ORDER BY ALL"
    )
    chain.sql(
        "FROM train('flown', ['craft', 'routes', 'flown'], epochs => 5, seed => 6, "
        "exclude => ['craft.tailnum'])"
    )
    chain.sql("FROM generate_tables('flown', seed => 1, prefix => 'j_')").fetchall()
    assert chain.sql("SELECT typeof(id) FROM j_craft LIMIT 1").fetchone() == ("UUID",)
    assert value(chain, "SELECT count(*) FROM j_flown") > 0
    dangling = (
        "SELECT count(*) FROM j_flown f WHERE f.craft NOT IN (SELECT id FROM j_craft) OR NOT "
        "EXISTS (SELECT 1 FROM j_routes r WHERE r.origin = f.origin AND r.dest = f.dest)"
    )
    assert value(chain, dangling) == 0


def test_free_text_in_a_database_is_refused_naming_its_table(chain):
    chain.sql("CREATE TABLE notes (tailnum VARCHAR REFERENCES fleet, note VARCHAR)")
    chain.sql(
        "INSERT INTO notes SELECT tailnum, 'plane ' || tailnum || ' of carrier ' || carrier || "
        "', built in ' || year || ', was seen with ' || seats || ' seats and ' || engines || "
        "' engines at the gate, then left for its next flight of the day' FROM fleet"
    )
    with pytest.raises(SynthError, match=r"table 'notes': column 'note' looks like free text") as e:
        chain.sql("FROM train('notes', ['carriers', 'fleet', 'notes'], epochs => 1)")
    assert "exclude => ['notes.note']" in str(e.value)


def test_describe_a_view_and_one_table_functions_know_a_database(s):
    described = {r[2]: r[4] for r in s.sql("FROM describe_model('fl')").fetchall()}
    assert described["planes.seats"] == "numeric" and "planes.#flights(tailnum)" in described
    assert "flights.tailnum" not in described  # keys are generated, not learned
    s.sql("CREATE VIEW synthetic_planes AS FROM generate('fl', \"table\" => 'planes', seed => 1)")
    assert s.sql("FROM synthetic_planes LIMIT 0").columns == s.sql("FROM planes LIMIT 0").columns
    for call in ("validate('fl', 'planes')", "export_model('fl', 'fl.safetensors')"):
        with pytest.raises(SynthError, match="'fl' is a database \\(airlines, planes, flights\\)"):
            s.sql(f"FROM {call}")


def test_a_link_follows_the_siblings_a_plane_keeps_flying_for_its_carrier(s):
    shared = (
        "SELECT sum(m) / sum(n) FROM (SELECT max(c) m, sum(c) n FROM (SELECT tailnum, carrier, "
        "count(*) c FROM {flights} WHERE tailnum IS NOT NULL GROUP BY ALL) GROUP BY tailnum)"
    )
    real = value(s, shared.format(flights="linked_flights"))
    assert real == 1.0  # in this subset every plane flies for one carrier
    assert value(s, shared.format(flights="syn_flights")) == real
    # and the carriers' numbers of flights keep their distribution
    real_degrees = degrees(s, "airlines", "linked_flights", "carrier")
    synthetic_degrees = degrees(s, "syn_airlines", "syn_flights", "carrier")
    assert len(synthetic_degrees) == 5 * len(real_degrees)  # scale => 5: as many per airline
    assert abs(np.median(real_degrees) - np.median(synthetic_degrees)) < 0.5 * np.median(
        real_degrees
    )
