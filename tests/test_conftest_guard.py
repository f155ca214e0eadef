"""Trainings in tests do not depend on the machine's speed: conftest's guard fails an in-process
training without epochs => (or one max_time cut), and the SQL the tests send to other processes
(the CLI, servers, clients) gives epochs => wherever it trains."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from conftest import violations

import duck_synth

TESTS = Path(__file__).resolve().parent
TRAIN = re.compile(r"\btrain\(")

# SQL with train( but no epochs => in the files that start other processes, and why that is
# not a training whose result depends on the machine's speed
NOT_FITTED = {
    ("test_first_contact.py", "FROM train('n', 't')"): "refused by the plain duckdb CLI",
    ("test_serve.py", "FROM train('d2', 'diamonds', max_time => 1)"): "refused: read-only token",
    ("test_serve.py", "FROM train(''x'', ''diamonds'')"): "refused: read-only token over Quack",
}
# files whose subprocess trainings are time-bound on purpose, and why that is honest
TIME_BOUND = {
    "test_demo.py": "runs examples/demo.py as users do (--max-time 5); it asserts what the demo "
    "prints and stores, never how good its models are",
}


@pytest.fixture
def tiny():
    s = duck_synth.connect()
    s.sql("CREATE TABLE t AS SELECT range % 5 AS a, (range % 3)::VARCHAR AS b FROM range(500)")
    yield s
    s.close()


def test_a_training_without_epochs_fails_the_test(request, tiny):
    with pytest.raises(duck_synth.SynthError, match="training without epochs =>"):
        tiny.sql("FROM train('m', 't', seed => 1)")
    (found,) = violations.pop(request.node.nodeid)  # the guard would fail this test at its end
    assert found.startswith(request.node.nodeid) and "mark the test" in found
    assert tiny.sql("FROM models()").fetchall() == []


def test_a_training_max_time_cut_fails_the_test(request, tiny):
    summary = tiny.sql("FROM train('m', 't', epochs => 100000, max_time => 1, seed => 1)").df()
    assert summary["stopped"][0] == "max_time"
    (found,) = violations.pop(request.node.nodeid)
    assert "max_time => 1 s stopped a training of epochs => 100000" in found


@pytest.mark.max_time
def test_a_test_about_max_time_may_train_without_epochs(tiny):
    summary = tiny.sql("FROM train('m', 't', max_time => 1, seed => 1)").df()
    assert summary["stopped"][0] in ("max_time", "early_stopping", "epochs")


def strings(tree: ast.Module) -> list[tuple[int, str]]:
    """Every string in a test file, f-strings with the file's string constants filled in."""
    constants: dict[str, str] = {}

    def text(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    parts.append(value.value)
                elif isinstance(value.value, ast.Name) and value.value.id in constants:
                    parts.append(constants[value.value.id])
                else:
                    parts.append("{" + ast.unparse(value.value) + "}")
            return "".join(parts)
        return None

    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            value = text(node.value)
            if value is not None:
                constants[node.targets[0].id] = value
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    return [
        (node.lineno, value)
        for node in ast.walk(tree)
        if id(node) not in inner and (value := text(node)) is not None
    ]


def starts_processes(tree: ast.Module) -> bool:
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module)])
    }
    return bool(imported & {"subprocess", "pexpect", "multiprocessing"})


def test_trainings_sent_to_other_processes_give_epochs():
    """The guard sees only this process: the SQL for the CLI, servers and client processes
    must say epochs => itself (module constants such as QUICK count)."""
    checked, missing = 0, []
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        if not starts_processes(tree) or path.name in TIME_BOUND:
            continue
        for line, sql in strings(tree):
            if not TRAIN.search(sql) or "FROM" not in sql or (path.name, sql) in NOT_FITTED:
                continue
            checked += 1
            if not re.search(r"\bepochs\s*=>", sql):
                missing.append(f"{path.name}:{line}: {sql!r}")
    assert not missing, "trainings without epochs =>:\n" + "\n".join(missing)
    assert checked >= 5  # the scan still finds the trainings it is about
