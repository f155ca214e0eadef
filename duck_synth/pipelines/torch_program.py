"""The program of a torch.export archive (models/model.json), checked as JSON before torch reads
it: known fields, plain names, shape expressions of sympy arithmetic only (torch parses them with
sympy, whose parser is Python's ``eval``), no guard code (torch runs it with ``exec``), no nested
graph, custom object or Python type, and only the operators of operators.py. ``contract`` reads
what the program takes and returns."""

from __future__ import annotations

import ast
import json
import re

from ..errors import SynthError
from .operators import ALLOWED_OPERATORS, operator_name

PROGRAM = "models/model.json"
MAX_EXPRESSION = 2000
PLAIN = re.compile(r"[A-Za-z0-9_.+:\-]*")  # names, dtypes, versions: no quote, space or newline
SYMBOL = re.compile(r"[a-z]+\d+")  # a shape symbol: s0, s77, u3
ARGUMENT_KINDS = {
    *("as_none", "as_tensor", "as_tensors", "as_optional_tensor", "as_optional_tensors"),
    *("as_int", "as_ints", "as_int_lists", "as_float", "as_floats", "as_float_lists"),
    *("as_bool", "as_bools", "as_string", "as_strings", "as_complex", "as_scalar_type"),
    *("as_sym_int", "as_sym_ints", "as_sym_bool", "as_sym_bools", "as_sym_float"),
    *("as_sym_floats", "as_memory_format", "as_layout", "as_device", "as_expr", "as_name"),
}
REFUSED_KINDS = {
    "as_graph": "a nested graph (control flow)",
    "as_custom_obj": "a custom object",
    "as_operator": "an operator as an argument",
}
# sympy names a shape expression may use (torch writes them with sympy.srepr)
EXPRESSION_FUNCTIONS = {
    *("Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Max", "Min", "Mod"),
    *("FloorDiv", "CleanDiv", "CeilToInt", "FloorToInt", "TruncToInt", "RoundToInt", "PythonMod"),
    *("IntTrueDiv", "FloatTrueDiv", "PowByNatural", "FloatPow", "ToFloat", "Identity", "Abs"),
    *("Eq", "Ne", "Ge", "Gt", "Le", "Lt", "And", "Or", "Not", "Piecewise", "ITE"),
}
EXPRESSION_NAMES = {*EXPRESSION_FUNCTIONS, "true", "false", "oo", "int_oo", "True", "False"}
EXPRESSION_NODES = (ast.Expression, ast.Call, ast.Name, ast.Constant, ast.keyword, ast.Load)
EXPRESSION_OPERATORS = (ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)
EXPRESSION_OPERATORS += (ast.FloorDiv, ast.Mod, ast.USub, ast.UAdd, ast.Tuple)
TREESPEC_TYPES = {None, "builtins.tuple", "builtins.list", "builtins.dict"}
PROGRAM_KEYS = {
    *("graph_module", "opset_version", "range_constraints", "schema_version", "verifiers"),
    *("torch_version", "guards_code"),
}
MODULE_KEYS = {"graph", "signature", "module_call_graph", "metadata", "treespec_namedtuple_fields"}
VERIFIERS = {"ATEN", "TRAINING"}
PARAMETER_KINDS = {"parameter", "buffer", "tensor_constant"}
FLOAT32 = 7  # torch._export.serde.schema.ScalarType.FLOAT


def check_program(program, where: str) -> tuple[str, ...]:
    """The program's JSON: known fields, plain names, safe expressions, allowed operators.
    Node metadata (stack traces, module paths) is dropped: nothing reads it here."""
    if not isinstance(program, dict) or set(program) != PROGRAM_KEYS:
        raise SynthError(f"{where}: {PROGRAM}: not a torch.export program of this torch version")
    module = program["graph_module"]
    if not isinstance(module, dict) or not set(module) <= MODULE_KEYS or "graph" not in module:
        raise SynthError(f"{where}: {PROGRAM}: not a torch.export program of this torch version")
    from torch._export.serde.schema import SCHEMA_VERSION

    if (program["schema_version"] or {}).get("major") != SCHEMA_VERSION[0]:
        raise SynthError(
            f"{where}: written by another torch.export version (schema "
            f"{program['schema_version']}, this torch reads {SCHEMA_VERSION[0]}.x)"
        )
    if program["guards_code"]:
        raise SynthError(f"{where}: the program carries guard code (Python run on load): refused")
    if module.get("treespec_namedtuple_fields") or module["graph"].get("custom_obj_values"):
        raise SynthError(f"{where}: the program names Python types or custom objects: refused")
    if not set(program["verifiers"] or []) <= VERIFIERS:
        raise SynthError(f"{where}: unknown dialect {program['verifiers']}")
    module["metadata"] = {}
    operators = set()
    for node in module["graph"].get("nodes") or []:
        if not isinstance(node, dict) or not isinstance(node.get("target"), str):
            raise SynthError(f"{where}: {PROGRAM}: a node without an operator")
        operator = operator_name(node["target"])
        if operator not in ALLOWED_OPERATORS:
            if operator.startswith("aten::"):
                raise SynthError(f"{where}: operator '{operator}' is not on the allow-list")
            raise SynthError(
                f"{where}: unknown operator '{operator}' (custom operators and Python "
                "functions are refused)"
            )
        if node.get("is_hop_single_tensor_return") is not None:
            raise SynthError(f"{where}: '{operator}' is a higher-order operator: refused")
        operators.add(operator)
        node["metadata"] = {}
    walk(program, where)
    return tuple(sorted(operators))


def walk(node, where: str) -> None:
    """Every string plain, every argument of a known kind, every expression sympy-only."""
    if isinstance(node, dict):
        for key, value in node.items():
            _plain(key, where)
            if key in REFUSED_KINDS or (key.startswith("as_") and key not in ARGUMENT_KINDS):
                raise SynthError(
                    f"{where}: the program passes {REFUSED_KINDS.get(key, key)}: refused"
                )
            device = key in ("device", "as_device") and isinstance(value, dict)
            if device and value.get("type") != "cpu":
                raise SynthError(
                    f"{where}: tensors on '{value.get('type')}': export the model on the CPU"
                )
            if key == "expr_str":
                check_expression(value, where)
            elif key in ("in_spec", "out_spec"):
                _check_treespec(value, where)
            elif key in ("as_string", "as_strings"):
                if not all(isinstance(s, str) and s.isprintable() for s in _listed(value)):
                    raise SynthError(f"{where}: a string argument holds control characters")
            else:
                walk(value, where)
    elif isinstance(node, list):
        for item in node:
            walk(item, where)
    elif isinstance(node, str):
        _plain(node, where)
    elif node is not None and not isinstance(node, bool | int | float):
        raise SynthError(f"{where}: {PROGRAM}: unexpected value {node!r}")


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _plain(text: str, where: str) -> None:
    if not PLAIN.fullmatch(text):
        raise SynthError(f"{where}: the program holds the name {text[:60]!r}: not a plain name")


def check_expression(text, where: str) -> None:
    """A shape expression sympy will ``eval``: calls of sympy's arithmetic on numbers and
    symbol names, nothing else (no attribute, subscript, lambda or other name)."""
    refused = f"{where}: the shape expression {str(text)[:80]!r} is not plain arithmetic"
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION:
        raise SynthError(refused)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise SynthError(refused) from None
    for node in ast.walk(tree):
        fine = isinstance(node, EXPRESSION_NODES + EXPRESSION_OPERATORS)
        if isinstance(node, ast.Name):
            fine = node.id in EXPRESSION_NAMES or bool(SYMBOL.fullmatch(node.id))
        elif isinstance(node, ast.Call):
            fine = isinstance(node.func, ast.Name) and node.func.id in EXPRESSION_FUNCTIONS
        elif isinstance(node, ast.keyword):
            fine = node.arg is not None
        elif isinstance(node, ast.Constant):
            value = node.value
            fine = isinstance(value, bool | int | float) or (
                isinstance(value, str) and bool(PLAIN.fullmatch(value))
            )
        if not fine:
            raise SynthError(refused)


def _check_treespec(text, where: str) -> None:
    """A pytree spec (JSON in a string): tuples, lists and dicts of tensors only."""

    def visit(spec) -> None:
        if not isinstance(spec, dict) or spec.get("type") not in TREESPEC_TYPES:
            raise SynthError(
                f"{where}: the program's inputs or outputs are not tuples, lists "
                "and dicts of tensors"
            )
        context = json.loads(spec.get("context") or "null")
        walk(context, where)
        for child in spec.get("children_spec") or []:
            visit(child)

    try:
        parsed = json.loads(text)
    except (TypeError, ValueError):
        raise SynthError(f"{where}: the program's input or output spec is not JSON") from None
    if not isinstance(parsed, list) or len(parsed) != 2:
        raise SynthError(f"{where}: the program's input or output spec is not a pytree spec")
    try:
        visit(parsed[1])
    except (TypeError, ValueError):
        raise SynthError(f"{where}: the program's input or output spec is not JSON") from None


def contract(program: dict, where: str) -> tuple[int, int | None, tuple[int, int | None]]:
    """(columns, outputs, batch): one float32 tensor (rows, columns) in, one tensor (rows,
    outputs) or (rows,) out, besides its parameters, buffers and constants."""
    try:
        graph, signature = program["graph_module"]["graph"], program["graph_module"]["signature"]
        given = _one_tensor(signature["input_specs"], "user_input", PARAMETER_KINDS, where)
        returned = _one_tensor(signature["output_specs"], "user_output", set(), where)
        sizes, dtype = (
            graph["tensor_values"][given]["sizes"],
            graph["tensor_values"][given]["dtype"],
        )
        out = graph["tensor_values"][returned]["sizes"]
        ranges = program["range_constraints"]
    except (KeyError, TypeError, AttributeError, IndexError):
        raise SynthError(f"{where}: {PROGRAM}: not a torch.export program") from None
    if dtype != FLOAT32 or len(sizes) != 2 or "as_int" not in sizes[1]:
        raise SynthError(
            f"{where}: the program takes a tensor of {len(sizes)} dimensions (dtype code "
            f"{dtype}); it must take float32 (rows, columns), the columns fixed"
        )
    if len(out) not in (1, 2) or (len(out) == 2 and "as_int" not in out[1]) or out[0] != sizes[0]:
        raise SynthError(
            f"{where}: the program returns a tensor of {len(out)} dimensions; it must return "
            "(rows, outputs), or (rows,) for one output, a row per input row"
        )
    return (
        sizes[1]["as_int"],
        out[1]["as_int"] if len(out) == 2 else None,
        _batch(sizes[0], ranges, where),
    )


def _one_tensor(specs: list, kind: str, others: set[str], where: str) -> str:
    """The one tensor a program takes (kind 'user_input') or returns (kind 'user_output')."""
    kinds = [next(iter(spec), "nothing") for spec in specs]
    unexpected = sorted(set(kinds) - others - {kind})
    if unexpected:
        hint = (
            " (does it change a buffer? export it in eval mode)"
            if "mutation" in unexpected[0]
            else ""
        )
        raise SynthError(
            f"{where}: the program has a '{unexpected[0]}' input or output{hint}: refused"
        )
    ours = [spec[kind]["arg"] for spec in specs if kind in spec]
    what = "takes" if kind == "user_input" else "returns"
    if len(ours) != 1 or set(ours[0]) != {"as_tensor"}:
        raise SynthError(
            f"{where}: the program {what} {len(ours)} values; it must {what[:-1]} one tensor"
        )
    return ours[0]["as_tensor"]["name"]


def _batch(size: dict, ranges: dict, where: str) -> tuple[int, int | None]:
    """The rows one call accepts: a fixed number, or a dimension's range."""
    if "as_int" in size:
        if not isinstance(size["as_int"], int) or size["as_int"] < 1:
            raise SynthError(f"{where}: the program takes {size['as_int']} rows per call")
        return size["as_int"], size["as_int"]
    expression = ast.parse(size["as_expr"]["expr_str"], mode="eval").body
    if isinstance(expression, ast.Call) and expression.args:
        expression = expression.args[0]
    name = getattr(expression, "id", None) or getattr(expression, "value", None)
    bounds = ranges.get(name) if isinstance(name, str) else None
    if not isinstance(bounds, dict):
        raise SynthError(
            f"{where}: the program's rows are not one dimension (export it with "
            "dynamic_shapes={'x': {0: Dim('rows')}} or a fixed batch)"
        )
    low, high = bounds.get("min_val") or 0, bounds.get("max_val")
    if not isinstance(low, int) or not (
        high is None or isinstance(high, int) and high >= max(low, 1)
    ):
        raise SynthError(f"{where}: the program's rows range from {low} to {high}")
    return low, high
