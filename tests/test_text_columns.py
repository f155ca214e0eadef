"""Free-text columns: written by a character model conditioned on the row, never leaking a
rare training text or a rare run of characters (planted secrets), judged by evaluate()."""

from __future__ import annotations

import json

import pytest

import duck_synth

# 1,000 support notes whose wording follows their kind; every 33rd row holds a secret email,
# planted once each
NOTES = """
CREATE TABLE notes AS
SELECT ['order', 'complaint', 'question'][i % 3 + 1] AS kind, (i * 37) % 100 AS amount,
  CASE WHEN i % 33 = 7 THEN 'please write to ' || substr(md5(i::VARCHAR), 1, 10) || '@mailbox.org'
       WHEN i % 3 = 0 THEN 'order shipped to ' || ['paris', 'london', 'berlin', 'rome', 'oslo'][i % 5 + 1]
            || ' on day ' || (i % 28 + 1)
       WHEN i % 3 = 1 THEN 'the ' || ['lamp', 'chair', 'table', 'sofa'][i % 4 + 1]
            || ' arrived broken, please refund'
       ELSE 'when will my ' || ['lamp', 'chair', 'table', 'sofa'][i % 4 + 1] || ' arrive in '
            || ['paris', 'london', 'berlin', 'rome', 'oslo'][i % 5 + 1] || '?' END AS note
FROM range(1000) t(i)
"""
SECRETS = "SELECT substr(note, 17, 10) FROM notes WHERE note LIKE 'please write to %'"
TRAIN = "FROM train('{name}', 'notes', encoding => {{'note': 'text'}}, epochs => {epochs}, seed => 1, max_time => 600{more})"
EPOCHS = 4


def secrets_found(s: duck_synth.Session, table: str) -> set[str]:
    secrets = [r[0] for r in s.sql(SECRETS).fetchall()]
    texts = [r[0] for r in s.sql(f"SELECT note FROM {table} WHERE note IS NOT NULL").fetchall()]
    return {secret for secret in secrets if any(secret in text for text in texts)}


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    s = duck_synth.connect(str(tmp_path_factory.mktemp("text") / "notes.duckdb"))
    s.sql(NOTES)
    s.sql(TRAIN.format(name="n", epochs=EPOCHS, more=""))
    s.sql("CREATE TABLE synthetic AS FROM generate('n', target => 100000, seed => 2)")
    yield s
    s.close()


def test_planted_secrets_never_appear_in_100000_texts(notes):
    assert len(notes.sql(SECRETS).fetchall()) == 31
    assert notes.sql("SELECT count(note) FROM synthetic").fetchone()[0] == 100_000
    assert secrets_found(notes, "synthetic") == set()


def test_rare_training_texts_are_not_copied_but_common_ones_are(notes):
    copied = notes.sql(
        "SELECT s.note, count(*) FROM synthetic s JOIN notes n USING (note) GROUP BY ALL"
    ).fetchall()
    counts = dict(notes.sql("SELECT note, count(*) FROM notes GROUP BY ALL").fetchall())
    assert copied and all(counts[text] >= 5 for text, _ in copied)


def test_without_protection_a_longer_training_reproduces_secrets(tmp_path):
    """The control: rare_threshold => 1 and 10x the epochs memorise planted secrets, so the
    test above can fail."""
    s = duck_synth.connect(str(tmp_path / "control.duckdb"))
    s.sql(NOTES)
    s.sql(TRAIN.format(name="c", epochs=10 * EPOCHS, more=", rare_threshold => 1"))
    s.sql("CREATE TABLE synthetic AS FROM generate('c', target => 20000, seed => 2)")
    assert len(secrets_found(s, "synthetic")) >= 1


def test_text_follows_the_other_columns_under_where(notes):
    rows = notes.sql(
        "SELECT note FROM generate('n', target => 300, seed => 3) WHERE kind = 'complaint'"
    ).fetchall()
    assert len(rows) == 300
    assert sum("broken" in r[0] for r in rows) > 0.5 * len(rows)  # real: all, others: none
    shares = dict(
        notes.sql(
            "SELECT kind, avg((note LIKE '%broken%')::INT) FROM synthetic GROUP BY kind"
        ).fetchall()
    )
    assert shares["complaint"] > 0.5 and shares["order"] < 0.1 and shares["question"] < 0.1


def test_where_on_the_text_itself_filters_the_written_texts(notes):
    rows = notes.sql(
        "SELECT kind, note FROM generate('n', target => 50, seed => 4) WHERE note LIKE 'when will%'"
    ).fetchall()
    assert len(rows) == 50 and all(note.startswith("when will") for _, note in rows)
    assert sum(kind == "question" for kind, _ in rows) >= 40  # the texts follow their rows


def test_same_seed_same_texts_and_the_model_round_trips(notes, tmp_path):
    query = "SELECT * FROM generate('{}', target => 500, seed => 7)"
    first = notes.sql(query.format("n")).fetchall()
    assert first == notes.sql(query.format("n")).fetchall()
    path = tmp_path / "n.safetensors"
    notes.sql(f"FROM export_model('n', '{path}')")
    notes.sql(f"FROM import_model('{path}', name => 'n_copy')")
    assert notes.sql(query.format("n_copy")).fetchall() == first


def test_describe_model_shows_a_text_column(notes):
    described = notes.sql("SELECT \"column\", kind, summary FROM describe_model('n')").fetchall()
    assert ("note", "text") in [row[:2] for row in described]
    assert "mailbox" not in json.dumps(described, default=str)


# 300 titles of four words from 3 x 8 x 8 x 6 (mostly distinct: free text), an id, a genre
FILMS = """
CREATE TABLE films AS SELECT i, i % 7 AS genre,
  ['the', 'a', 'my'][(hash(i || '1') % 3)::INT + 1] || ' '
  || ['long', 'red', 'last', 'cold', 'quiet', 'broken', 'golden', 'dark'][(hash(i || '2') % 8)::INT + 1] || ' '
  || ['night', 'river', 'summer', 'road', 'garden', 'letter', 'house', 'winter'][(hash(i || '3') % 8)::INT + 1]
  || ' of ' || ['paris', 'the sea', 'my father', 'tokyo', 'the north', 'glass'][(hash(i || '4') % 6)::INT + 1]
  AS title, md5(i::VARCHAR) AS code
FROM range(300) t(i)
"""


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    s = duck_synth.connect(str(tmp_path_factory.mktemp("films") / "films.duckdb"))
    s.sql(FILMS)
    s.sql("CREATE TABLE seen AS SELECT * EXCLUDE (i) FROM films WHERE i % 5 <> 0")
    s.sql("CREATE TABLE unseen AS SELECT * EXCLUDE (i) FROM films WHERE i % 5 = 0")
    s.sql("FROM train('f', 'seen', epochs => 30, seed => 1, max_time => 600)")
    s.sql("CREATE TABLE synthetic AS FROM generate('f', target => 2000, seed => 1)")
    yield s
    s.close()


def test_free_text_is_chosen_automatically_and_ids_are_not(films):
    kinds = dict(films.sql("SELECT \"column\", kind FROM describe_model('f')").fetchall())
    assert kinds == {"genre": "numeric", "title": "text", "code": "key"}
    titles = films.sql("SELECT title FROM synthetic").fetchall()
    assert len(titles) == 2000 and all(isinstance(t[0], str) for t in titles)


def test_resample_writes_new_texts_for_the_rows_a_condition_picks(films):
    before = films.sql("SELECT genre, code, title FROM synthetic LIMIT 200").fetchall()
    films.sql("CREATE TABLE few AS FROM synthetic LIMIT 200")
    after = films.sql(
        "SELECT genre, code, title FROM resample('few', 'title', condition => 'genre = 1', "
        "model => 'f', seed => 1)"
    ).fetchall()
    assert [r[:2] for r in after] == [r[:2] for r in before]
    kept = [a[2] == b[2] for a, b in zip(after, before, strict=True) if a[0] != 1]
    changed = [a[2] != b[2] for a, b in zip(after, before, strict=True) if a[0] == 1]
    assert all(kept) and sum(changed) > 0.5 * len(changed) > 0


def test_validate_checks_the_length_of_texts(films):
    query = "SELECT rule, passed, violations FROM validate('f', {}) WHERE \"column\" = 'title'"
    assert ("length", True, 0) in films.sql(query.format("'synthetic'")).fetchall()
    films.sql(
        "CREATE TABLE tampered AS SELECT * REPLACE (repeat(title, 20) AS title) FROM synthetic"
    )
    assert ("length", False, 2000) in films.sql(query.format("'tampered'")).fetchall()


def test_the_same_data_and_seed_give_the_same_text_model(films):
    weights = []
    for name in ("again_1", "again_2"):
        films.sql(f"FROM train('{name}', 'seen', epochs => 2, seed => 9, max_time => 600)")
        query = "SELECT weights FROM synth.models WHERE name = ?"
        weights.append(films.con.execute(query, [name]).fetchone()[0])
    assert weights[0] == weights[1]


@pytest.mark.parametrize(
    "options, message",
    [
        (
            "encoding => {'amount': 'text'}",
            r"column 'amount' of type BIGINT cannot be encoded as text",
        ),
        (
            "encoding => {'note': 'text'}, epsilon => 5",
            r"column 'note' cannot be encoded as text: a text model is not trained under "
            r"differential privacy",
        ),
        (
            "encoding => {'note': 'text'}, session_key => 'kind', order_by => 'amount'",
            r"column 'note' cannot be encoded as text: text columns are modelled in a single table",
        ),
    ],
)
def test_impossible_text_encodings_are_refused_in_one_line(notes, refused, options, message):
    refused(notes, f"FROM train('bad', 'notes', {options}, epochs => 1, max_time => 600)", message)


def test_evaluate_judges_text_by_length_trigrams_and_copies(films):
    rows = films.sql(
        "SELECT metric, value, detail FROM evaluate('seen', 'synthetic', holdout => 'unseen') "
        "WHERE columns = 'title'"
    ).fetchall()
    found = {metric: (value, json.loads(detail)) for metric, value, detail in rows}
    assert {"text_length", "text_trigrams", "exact_copies"} <= set(found)
    assert "column_shape" not in found  # a text is not a category
    assert found["text_length"][0] >= 0.7  # 240 titles: the 0.9 of movies needs more
    trigrams, detail = found["text_trigrams"]
    assert abs(trigrams - detail["holdout"]) <= 0.1
    only = films.sql("SELECT metric FROM evaluate('seen', 'synthetic', columns => ['title'])")
    assert {"text_length", "text_trigrams", "exact_copies"} <= {r[0] for r in only.fetchall()}
    copies, detail = found["exact_copies"]
    assert copies == 0  # every training title is held by fewer than 5 rows: none is copied
