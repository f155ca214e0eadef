"""User PyTorch models (duck_synth/pipelines/): a torch.export file registered with
register_model() scores rows in SQL with score() exactly as its own forward does; every file
that is not a plain torch.export program of allowed operators is refused in one line, before
anything in it runs; over a real server a read-only token may score but not register, and an
admin's file must lie within the allowed folders."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pathlib
import pickle
import shutil
import zipfile

import numpy as np
import pyarrow as pa
import pytest
import torch
from conftest import DIAMONDS

import duck_synth
from duck_synth.errors import SynthError
from duck_synth.pipelines import user_models

COLUMNS = ("carat", "depth", "table")
INPUTS = "inputs => ['carat', 'depth', 'table']"
V1, V2 = ([1.5, -0.02, 0.01], -0.3), ([-0.8, 0.03, -0.02], 0.1)


class FraudClassifier(torch.nn.Module):
    """p = sigmoid(w . (carat, depth, table) + b), with fixed weights."""

    def __init__(self, weights: list[float], bias: float):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([weights]))
            self.linear.bias.fill_(bias)

    def forward(self, x):
        return torch.sigmoid(self.linear(x)).squeeze(-1)


class BothClasses(FraudClassifier):
    """(rows, 2): p and 1 - p."""

    def forward(self, x):
        p = super().forward(x)
        return torch.stack([p, 1 - p], dim=1)


@torch.library.custom_op("mylib::leak", mutates_args=())
def leak(x: torch.Tensor) -> torch.Tensor:
    """A custom operator whose Python body leaves a file where LEAK_MARKER says."""
    with open(os.environ["LEAK_MARKER"], "w"):
        return x.clone()


@leak.register_fake
def _(x):
    return torch.empty_like(x)


class Leaking(torch.nn.Module):
    def forward(self, x):
        return torch.ops.mylib.leak(x)[:, 0]


class Opens:
    """Unpickled, it opens (creates) ``path``: a pickle that runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def save(module: torch.nn.Module, path, fixed_rows: int | None = None) -> str:
    """torch.export.save of ``module``: taking any number of rows, or exactly ``fixed_rows``."""
    example = (torch.zeros(fixed_rows or 4, len(COLUMNS)),)
    rows = None if fixed_rows else ({0: torch.export.Dim("rows")},)
    torch.export.save(torch.export.export(module.eval(), example, dynamic_shapes=rows), path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("user_models")
    return {
        "v1": save(FraudClassifier(*V1), folder / "clf_v1.pt2"),
        "v2": save(FraudClassifier(*V2), folder / "clf_v2.pt2"),
        "both": save(BothClasses(*V1), folder / "both.pt2", fixed_rows=4),
        "leak": save(Leaking(), folder / "leak.pt2"),
    }


@pytest.fixture
def s(tmp_path):
    session = duck_synth.connect(str(tmp_path / "scores.duckdb"))
    session.sql(
        "CREATE TABLE d AS SELECT row_number() OVER (ORDER BY price, carat, depth) AS id, carat, "
        f"depth, \"table\", price FROM '{DIAMONDS}' USING SAMPLE 50 ROWS (reservoir, 7)"
    )
    session.sql("UPDATE d SET carat = NULL WHERE id = 3")
    yield session
    session.close()


def own_forward(model: torch.nn.Module, s) -> list[float | None]:
    """The model run by torch itself on d's rows (ordered by id); NULL for a NULL input."""
    rows = s.sql('SELECT carat, depth, "table" FROM d ORDER BY id').fetchall()
    with torch.no_grad():
        out = model(torch.tensor([[v or 0.0 for v in r] for r in rows], dtype=torch.float32))
    return [None if None in r else float(p) for r, p in zip(rows, out.tolist(), strict=True)]


def scores(s, spec: str, key: str = "p") -> list[float | None]:
    return [
        r[0] for r in s.sql(f"SELECT score('{spec}', d)['{key}'] FROM d ORDER BY id").fetchall()
    ]


def register(s, path: str, name: str = "clf", inputs: str = INPUTS, outputs: str = "['p']"):
    return s.sql(f"FROM register_model('{name}', '{path}', {inputs}, outputs => {outputs})")


def close(got: list, expected: list) -> bool:
    return all(
        (a is None and b is None) or (a is not None and b is not None and abs(a - b) < 1e-6)
        for a, b in zip(got, expected, strict=True)
    )


# -- scoring ------------------------------------------------------------------------------------
def test_score_equals_the_models_own_forward_on_the_same_rows(s, files):
    summary = register(s, files["v1"]).fetchall()
    assert summary[0][:5] == ("clf", 1, '["carat", "depth", "table"]', '["p"]', 3)
    got = scores(s, "clf")
    assert close(got, own_forward(FraudClassifier(*V1), s))
    assert got[2] is None  # row 3's carat is NULL
    (row,) = s.sql("SELECT score('clf', {'carat': 1.0, 'depth': 60, 'table': 55})").fetchone()
    expected = FraudClassifier(*V1)(torch.tensor([[1.0, 60.0, 55.0]])).item()
    assert dict(row) == {"p": pytest.approx(expected, abs=1e-6)}  # a MAP(VARCHAR, DOUBLE)


def test_registering_again_adds_version_2_and_at_version_keeps_scoring_the_first(s, files):
    register(s, files["v1"])
    assert register(s, files["v2"]).fetchall()[0][1] == 2
    assert close(scores(s, "clf"), own_forward(FraudClassifier(*V2), s))
    assert close(scores(s, "clf@1"), own_forward(FraudClassifier(*V1), s))
    listed = s.sql("FROM user_models()").df()
    assert listed.columns.tolist() == [
        "name", "version", "inputs", "outputs", "n_operators", "sha256", "bytes", "created"
    ]  # fmt: skip
    assert listed["version"].tolist() == [1, 2]
    assert listed["bytes"].tolist() == [os.path.getsize(files["v1"]), os.path.getsize(files["v2"])]


def test_a_fixed_batch_program_returns_its_named_outputs_for_any_number_of_rows(s, files):
    register(s, files["both"], "both", outputs="['p', 'q']")  # exported for exactly 4 rows
    p, q = scores(s, "both", "p"), scores(s, "both", "q")  # 50 rows: 12 calls, the last padded
    assert close(p, own_forward(FraudClassifier(*V1), s))
    assert all(a is None or abs(a + b - 1) < 1e-6 for a, b in zip(p, q, strict=True))


def test_score_table_reads_the_declared_columns_and_names_a_missing_one(s, files):
    register(s, files["v1"])
    table = pa.table({"table": [55.0, 57.0], "depth": [61, 62], "carat": [0.3, None], "x": [1, 2]})
    out = user_models.score_table(s.con, "clf", table)
    assert out.column_names == ["p"] and out.column("p").null_count == 1
    with pytest.raises(
        SynthError, match=r"^score\(\): user model 'clf@1': no input column 'depth'"
    ):
        user_models.score_table(s.con, "clf@1", table.drop_columns(["depth"]))
    with pytest.raises(SynthError, match=r"^unknown user model 'nope' \(see FROM user_models"):
        s.sql("SELECT score('nope', d) FROM d").fetchall()


# -- refusals: one line, and nothing in the file runs -------------------------------------------
def refused(s, path: str, match: str, **arguments) -> str:
    with pytest.raises(SynthError, match=match) as error:
        register(s, path, **arguments).fetchall()
    assert "\n" not in str(error.value)
    assert s.sql("SELECT count(*) FROM synth.user_models").fetchone()[0] == 0
    return str(error.value)


def test_declared_columns_must_match_the_program_and_the_file_must_exist(s, files):
    two_inputs = "inputs => ['carat', 'depth']"
    refused(
        s,
        files["v1"],
        r"'clf_v1.pt2': 2 inputs declared but the program takes 3$",
        inputs=two_inputs,
    )
    refused(s, files["v1"], r"2 outputs declared but the program returns 1$", outputs="['p', 'q']")
    refused(s, files["v1"].replace("clf_v1", "missing"), r"cannot read '.*missing.pt2': No such")


def test_a_custom_operator_is_refused_by_name_and_never_runs(s, files, tmp_path, monkeypatch):
    marker = tmp_path / "leaked"
    monkeypatch.setenv("LEAK_MARKER", str(marker))
    refused(s, files["leak"], r"'leak.pt2': unknown operator 'mylib::leak' \(custom operators")
    assert not marker.exists()
    torch.export.load(files["leak"]).module()(torch.zeros(2, 3))  # what the refusal prevents
    assert marker.exists()


def not_archives(folder) -> dict[str, str]:
    torch.save({"weight": torch.ones(3)}, folder / "state.pt")
    torch.jit.save(torch.jit.script(FraudClassifier(*V1)), folder / "script.pt")
    (folder / "random.pt2").write_bytes(np.random.default_rng(0).bytes(4096))
    return {name: str(folder / name) for name in ("state.pt", "script.pt", "random.pt2")}


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # a TorchScript file
def test_other_files_are_refused_as_not_torch_export_archives(s, tmp_path):
    for name, path in not_archives(tmp_path).items():
        refused(s, path, rf"^register_model\(\): '{name}': not a torch.export archive")


def crafted(source: str, target, change) -> str:
    """A copy of the archive ``source`` with ``change(records)`` applied (name -> bytes)."""
    with zipfile.ZipFile(source) as archive:
        root = archive.namelist()[0].split("/")[0] + "/"
        records = {n[len(root) :]: archive.read(n) for n in archive.namelist()}
    change(records)
    with zipfile.ZipFile(target, "w") as out:
        for name, data in records.items():
            out.writestr(root + name, data)
    return str(target)


def edit_json(records, name: str, edit) -> None:
    parsed = json.loads(records[name])
    edit(parsed)
    records[name] = json.dumps(parsed).encode()


def pickled_weight(records, marker) -> None:
    edit_json(records, "data/weights/model_weights_config.json",
              lambda c: c["config"]["linear.weight"].update(use_pickle=True))  # fmt: skip
    records["data/weights/weight_0"] = pickle.dumps(Opens(marker), protocol=2)


def pickled_sample_inputs(records, marker) -> None:
    buffer = io.BytesIO()
    torch.save(Opens(marker), buffer)
    records["data/sample_inputs/model.pt"] = buffer.getvalue()


def shape_expression(records, marker) -> None:
    def edit(program):
        size = program["graph_module"]["graph"]["tensor_values"]["x"]["sizes"][0]["as_expr"]
        size["expr_str"] = f"__import__('pathlib').Path('{marker}').touch() or {size['expr_str']}"

    edit_json(records, "models/model.json", edit)


def guard_code(records, marker) -> None:
    edit_json(records, "models/model.json",
              lambda p: p.update(guards_code=[f"open('{marker}', 'w') is not None"]))  # fmt: skip


def node_name(records, marker) -> None:
    text = records["models/model.json"].decode()
    records["models/model.json"] = text.replace(
        '"sigmoid"', json.dumps(f"s; open('{marker}')")
    ).encode()


def compiled_code(records, marker) -> None:
    records["data/aotinductor/model/model.so"] = b"\x7fELF"


CRAFTED = {
    pickled_weight: r"'linear.weight' is stored as a pickle",
    pickled_sample_inputs: r"data/sample_inputs/model.pt: the pickle calls io open",
    shape_expression: r"the shape expression .* is not plain arithmetic",
    guard_code: r"the program carries guard code",
    node_name: r"the program holds the name .* not a plain name",
    compiled_code: r"unexpected entry 'data/aotinductor/model/model.so' \(compiled code\)",
}


@pytest.mark.parametrize(("change", "message"), CRAFTED.items(), ids=[f.__name__ for f in CRAFTED])
def test_a_crafted_archive_is_refused_before_anything_in_it_runs(
    s, files, tmp_path, change, message
):
    marker = tmp_path / "ran"
    path = crafted(files["v1"], tmp_path / "crafted.pt2", lambda r: change(r, marker))
    refused(s, path, rf"^register_model\(\): 'crafted.pt2': {message}")
    assert not marker.exists()


def test_a_program_rewritten_in_the_catalog_is_checked_again_before_it_runs(s, files, tmp_path):
    register(s, files["v1"])
    marker = tmp_path / "ran"
    path = crafted(files["v1"], tmp_path / "crafted.pt2", lambda r: pickled_weight(r, marker))
    data = pathlib.Path(path).read_bytes()
    s.con.execute(
        "UPDATE synth.user_models SET program = ?, sha256 = ?",
        [data, hashlib.sha256(data).hexdigest()],
    )
    with pytest.raises(SynthError, match=r"user model 'clf@1': 'linear.weight' is stored as a pi"):
        scores(s, "clf")
    assert not marker.exists()


@pytest.mark.parametrize("change", [pickled_weight, shape_expression], ids=lambda f: f.__name__)
def test_the_crafted_archives_do_run_code_under_a_plain_torch_export_load(files, tmp_path, change):
    """What the refusals above prevent: torch.export.load alone runs the file's code."""
    marker = tmp_path / "ran"
    path = crafted(files["v1"], tmp_path / "crafted.pt2", lambda r: change(r, marker))
    with contextlib.suppress(Exception):  # the file's code runs before torch fails on it
        torch.export.load(path)
    assert marker.exists()


# -- over a real server -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory, files):
    from test_serve import start_with_tokens, stop

    root = tmp_path_factory.mktemp("served_user_models")
    (root / "db").mkdir()
    (root / "outside").mkdir()
    for folder in ("db", "outside"):
        shutil.copy(files["v1"], root / folder / "clf.pt2")
    with duck_synth.connect(str(root / "db" / "served.duckdb")) as s:
        s.sql(f"CREATE TABLE d AS SELECT carat, depth, \"table\" FROM '{DIAMONDS}' LIMIT 20")
    process, url, _ = start_with_tokens(root / "db" / "served.duckdb")
    yield url, root
    stop(process)
    assert process.returncode == 0, process.stderr.read()


def run(url: str, token: str, sql: str) -> list:
    from test_serve import adbc

    with adbc(url, token) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def refused_by(url: str, token: str, sql: str) -> str:
    from adbc_driver_manager import Error as AdbcError

    with pytest.raises(AdbcError) as error:
        run(url, token, sql)
    return str(error.value).split(". Detail:")[0]


@pytest.mark.slow
def test_over_a_server_an_admin_registers_a_reader_scores_and_may_not_register(server):
    from test_serve import ADMIN, READER

    url, root = server
    registering = (f"FROM register_model('clf', '{root / 'db' / 'clf.pt2'}', {INPUTS}, "
                   "outputs => ['p'])")  # fmt: skip
    assert "register_model() is not allowed (it writes)" in refused_by(url, READER, registering)
    assert run(url, ADMIN, registering)[0][:2] == ("clf", 1)
    scored = run(url, READER, "SELECT score('clf', d)['p'] FROM d")
    assert len(scored) == 20 and all(0 < p < 1 for (p,) in scored)
    assert run(url, READER, "SELECT synth_score('clf', to_json(d)::VARCHAR)['p'] FROM d LIMIT 1")


@pytest.mark.slow
def test_over_a_server_a_file_outside_the_allowed_folders_is_refused(server):
    from test_serve import ADMIN

    url, root = server
    message = refused_by(
        url, ADMIN,
        f"FROM register_model('out', '{root / 'outside' / 'clf.pt2'}', {INPUTS}, outputs => 'p')",
    )  # fmt: skip
    assert "is outside the folders this server allows (--allow-files)" in message


def test_a_pipeline_scores_its_rows_with_a_user_model_and_validates_the_score(s, files):
    register(s, files["v1"])
    s.sql(
        "FROM create_pipeline('scored', steps => [{'score': 'clf'}, "
        "{'validation': 'likely', 'check': 'p < 0.5'}])"
    )
    s.sql("FROM deploy('scored')")
    rows = s.sql(
        """SELECT "out.p", check_failures FROM infer('scored', """
        """input => 'SELECT carat, depth, "table" FROM d ORDER BY id')"""
    ).fetchall()
    expected = own_forward(FraudClassifier(*V1), s)
    assert close([p for p, _ in rows], expected)
    flagged = [p is not None and p >= 0.5 for p in expected]
    assert [failed == ["likely"] for _, failed in rows] == flagged and any(flagged)
    steps = s.sql("SELECT steps FROM pipelines() WHERE name = 'scored'").fetchone()[0]
    assert json.loads(steps)[0] == {"score": "clf@1"}  # pinned to the version registered
