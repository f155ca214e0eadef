"""Model files and catalog rows are untrusted data: checked on the way in (model_schema.py).

One tiny model per method is trained and exported; files crafted from those exports are refused
at import with the field named, and the catalog is left as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import torch
from conftest import DIAMONDS_TABLE, MALES_TABLE
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import duck_synth
from duck_synth import SynthError

PANEL = "session_key => 'nr', order_by => 'year'"
MODELS = {
    "ar": "FROM train('ar', 'small', epochs => 1, seed => 1)",
    "gan": "FROM train('gan', 'small', method => 'tabgan', epochs => 1, seed => 1)",
    "pb": "FROM train('pb', 'small', method => 'privbayes', seed => 1)",
    "tg": f"FROM train('tg', 'panel', method => 'timegan', {PANEL}, epochs => 1, seed => 1)",
    "ars": f"FROM train('ars', 'panel', {PANEL}, epochs => 1, seed => 1)",  # + steps. tensors
}
INJECTED = (
    "DOUBLE) AS carat, (SELECT content FROM read_text('/etc/hostname')) AS pwned, CAST(1 AS INT"
)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """Each tiny model's export: 300 diamonds, or 40 careers as sessions."""
    folder = tmp_path_factory.mktemp("model_files")
    s = duck_synth.connect(str(folder / "source.duckdb"))
    s.sql(DIAMONDS_TABLE)
    s.sql(MALES_TABLE)
    s.sql("CREATE TABLE small AS FROM diamonds USING SAMPLE 300 ROWS (reservoir, 1)")
    s.sql("CREATE TABLE panel AS FROM males WHERE nr IN (SELECT DISTINCT nr FROM males LIMIT 40)")
    paths = {}
    for name, sql in MODELS.items():
        s.sql(sql)
        paths[name] = folder / f"{name}.safetensors"
        s.sql(f"FROM export_model('{name}', '{paths[name]}')")
    s.close()
    return paths


@pytest.fixture
def target(tmp_path):
    s = duck_synth.connect(str(tmp_path / "target.duckdb"))
    yield s
    s.close()


def crafted(source: Path, out: Path, edit) -> Path:
    """A copy of ``source`` after ``edit(tensors, fields)``: fields are the metadata with each
    JSON value parsed; a field left as a ``Raw`` string is written as it is."""
    with safe_open(str(source), framework="pt") as handle:
        meta = handle.metadata()
    tensors = load_file(str(source))
    fields = {k: v if k == "duck_synth" else json.loads(v) for k, v in meta.items()}
    edit(tensors, fields)
    meta = {k: v if isinstance(v, Raw) or k == "duck_synth" else json.dumps(v)
            for k, v in fields.items()}  # fmt: skip
    save_file(tensors, str(out), metadata=meta)
    return out


class Raw(str):
    """A metadata value written verbatim (not as JSON)."""


def model_params(fields: dict) -> dict:
    return fields["statistics"]["model"]


def set_column_type(t, f):
    f["columns"][0]["type"] = INJECTED


def reshape(name):
    def edit(t, f):
        t[name] = torch.zeros(*[d + 1 for d in t[name].shape])

    return edit


def first_of(prefix):
    def edit(t, f):
        name = next(k for k in sorted(t) if k.startswith(prefix))
        t[name] = torch.zeros(*[d + 1 for d in t[name].shape])

    return edit


CRAFTED = [
    ("sql_in_column_type", "ar", set_column_type, r"columns\[0\]\.type: not a DuckDB type"),
    (
        "huge_hidden",
        "ar",
        lambda t, f: model_params(f).update(hidden=10**7),
        r"statistics\.model\.hidden: must be between 1 and 4,096, got 10000000",
    ),
    ("wrong_shape", "ar", reshape("b1"), r"weights: tensor 'b1' has shape \[\d+, 65\]"),
    (
        "extra_tensor",
        "ar",
        lambda t, f: t.update(evil=torch.zeros(1)),
        "weights: unexpected tensor 'evil'",
    ),
    ("missing_tensor", "ar", lambda t, f: t.pop("w2"), "weights: missing tensor 'w2'"),
    (
        "unknown_method",
        "ar",
        lambda t, f: f.update(method="__class__"),
        "method: unknown method '__class__'",
    ),
    (
        "newer_format",
        "ar",
        lambda t, f: f.update(format_version=99),
        "format_version: 99 .* upgrade duck_synth",
    ),
    (
        "unknown_encoder_kind",
        "ar",
        lambda t, f: f["statistics"]["encoders"][1].update(kind="pickle"),
        r"statistics\.encoders\[1\]\.kind: unknown encoder kind 'pickle'",
    ),
    ("non_json_field", "ar", lambda t, f: f.update(columns=Raw("[{'name':")), "columns: not JSON"),
    (
        "columns_not_a_list",
        "ar",
        lambda t, f: f.update(columns={"name": "x"}),
        "columns: must be a JSON list",
    ),
    (
        "vocab_not_the_encoders",
        "ar",
        lambda t, f: model_params(f)["vocab_sizes"].__setitem__(0, 10**6),
        r"statistics\.model\.vocab_sizes: .* does not match the encoders' tokens",
    ),
    (
        "constraint_reads_a_table",
        "ar",
        lambda t, f: f["options"].update(constraints=["price > (SELECT count(*) FROM t)"]),
        r"options\.constraints\[0\]: a constraint may not query tables",
    ),
    (
        "huge_key_length",
        "ar",
        lambda t, f: f["statistics"]["encoders"].__setitem__(
            0, {"kind": "key", "name": "carat", "type": "DOUBLE", "stats": {"length": 10**9}}
        ),
        r"statistics\.encoders\[0\]\.stats\.length: must be between 1 and 4,096",
    ),
    (
        "tabgan_shape",
        "gan",
        first_of("generator.blocks.0.fc.weight"),
        r"weights: tensor 'generator\.blocks\.0\.fc\.weight' has shape",
    ),
    (
        "tabgan_huge_pac",
        "gan",
        lambda t, f: model_params(f).update(pac=10**6),
        r"statistics\.model\.pac: must be between 1 and 64",
    ),
    ("privbayes_shape", "pb", reshape("table.0"), r"weights: tensor 'table\.0' has shape"),
    (
        "privbayes_parent_out_of_range",
        "pb",
        lambda t, f: model_params(f)["parents"].__setitem__(0, [99]),
        r"statistics\.model\.parents\[0\]: must be distinct columns",
    ),
    ("timegan_shape", "tg", reshape("step_out.bias"), r"weights: tensor 'step_out\.bias'"),
    (
        "timegan_huge_session",
        "tg",
        lambda t, f: model_params(f).update(max_length=10**9),
        r"statistics\.model\.max_length: must be between 1 and 1,000,000",
    ),
    ("session_steps_shape", "ars", first_of("steps.w1"), r"weights: tensor 'steps\.w1'"),
    (
        "session_layout_type",
        "ars",
        lambda t, f: f["statistics"]["sessions"]["layout"]["columns"][0].__setitem__(1, INJECTED),
        r"statistics\.sessions\.layout\.columns\[0\]\[1\]: not a DuckDB type",
    ),
]


@pytest.mark.parametrize(
    ("model", "edit", "message"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED]
)
def test_a_crafted_file_is_refused_naming_the_field(
    exports, target, refused, tmp_path, model, edit, message
):
    target.sql(f"FROM import_model('{exports[model]}', name => 'kept')")  # a catalog to keep
    path = crafted(exports[model], tmp_path / "crafted.safetensors", edit)
    refused(target, f"FROM import_model('{path}')", f"^import_model\\(\\): {message}")
    assert target.sql("SELECT name FROM synth.models").fetchall() == [("kept",)]


@pytest.mark.parametrize("model", list(MODELS))
def test_an_untouched_export_imports_and_generates(exports, target, model):
    target.sql(f"FROM import_model('{exports[model]}', name => 'copy')")
    (rows,) = target.sql(
        "SELECT count(*) FROM generate('copy', target => 20, seed => 1)"
    ).fetchone()
    assert rows >= 20


def test_a_file_with_a_tensor_size_that_lies_is_refused(exports, target, refused, tmp_path):
    data = bytearray(exports["ar"].read_bytes())
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["b1"]["shape"] = [1 << 20, 1 << 20]  # the data is still the small tensor's
    text = json.dumps(header).encode()
    path = tmp_path / "lying.safetensors"
    path.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length :])
    refused(target, f"FROM import_model('{path}')", r"weights\['b1'\]: .* bytes \(limit")


def set_hidden(statistics: dict) -> dict:
    statistics["model"]["hidden"] = 10**7
    return statistics


def inject_type(columns: list) -> list:
    columns[0]["type"] = INJECTED
    return columns


@pytest.mark.parametrize(
    ("column", "edit", "message"),
    [
        ("columns", inject_type, r"columns\[0\]\.type: not a DuckDB type"),
        ("statistics", set_hidden, r"statistics\.model\.hidden: must be between 1 and 4,096"),
        ("method", lambda _: "__class__", "method: unknown method '__class__'"),
    ],
    ids=["sql_in_column_type", "huge_hidden", "unknown_method"],
)
def test_a_crafted_catalog_row_is_refused_at_generate(exports, target, column, edit, message):
    target.sql(f"FROM import_model('{exports['ar']}', name => 'crafted')")
    (value,) = target.con.execute(f"SELECT {column} FROM synth.models").fetchone()
    value = edit(json.loads(value)) if column != "method" else edit(value)
    value = value if column == "method" else json.dumps(value)
    target.con.execute(f"UPDATE synth.models SET {column} = ?", [value])
    with pytest.raises(SynthError, match=f"^model 'crafted@1': {message}") as raised:
        target.sql("FROM generate('crafted', target => 5)").fetchall()
    assert "\n" not in str(raised.value)


def test_a_catalog_newer_than_the_code_is_refused(tmp_path):
    path = str(tmp_path / "newer.duckdb")
    duck_synth.connect(path).close()
    con = duckdb.connect(path)
    con.execute("UPDATE synth.meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SynthError, match=r"catalog is version 99; .* knows up to \d+: upgrade"):
        duck_synth.connect(path)
