"""The operators a user's torch.export program may call (``ALLOWED_OPERATORS``).

What a tabular model needs to score rows: linear algebra, element-wise arithmetic and math,
activations, normalisation as exported in eval mode, reshaping, reductions and comparisons.
Every one is a pure function of its tensors in ATen's own namespace. Left out: custom operators
(any other namespace: their code is the user's Python or C++), higher-order operators (control
flow, Python callables), in-place and ``out=`` variants (``add_``), random draws (``rand``,
``bernoulli``), and operators that make tensors of a size given as an argument (``zeros``,
``arange``, ``full``). ``_operator.*`` are the Python arithmetic torch.export records on symbolic
sizes (``x.size(0) * 2``) and ``getitem`` picks one tensor of an operator returning several.
"""

from __future__ import annotations

from ..errors import SynthError

_ATEN = """
    linear addmm mm bmm matmul baddbmm addmv mv dot einsum t transpose permute
    view reshape _unsafe_view expand expand_as squeeze unsqueeze flatten unflatten contiguous
    clone alias detach lift_fresh_copy select slice narrow index_select gather cat concat stack
    split split_with_sizes chunk unbind repeat flip roll movedim
    _to_copy to type_as _assert_tensor_metadata _assert_scalar sym_size sym_numel sym_stride
    add sub rsub mul div neg abs exp exp2 log log2 log10 log1p expm1 sqrt rsqrt pow square
    reciprocal sign floor ceil round trunc frac remainder fmod clamp clamp_min clamp_max clip
    minimum maximum fmin fmax where erf erfc sin cos tan tanh atan atan2 sinh cosh lerp addcmul
    addcdiv nan_to_num isnan isinf isfinite
    relu relu6 gelu silu mish softplus leaky_relu elu selu celu hardtanh hardsigmoid hardswish
    log_sigmoid sigmoid softmax _softmax log_softmax _log_softmax logit prelu dropout
    layer_norm native_layer_norm batch_norm _native_batch_norm_legit_no_training group_norm
    native_group_norm rms_norm embedding one_hot
    sum mean amax amin max min argmax argmin prod var std logsumexp cumsum norm
    linalg_vector_norm all any
    lt le gt ge eq ne logical_and logical_or logical_not logical_xor bitwise_not
    zeros_like ones_like full_like empty_like scalar_tensor
"""
_PYTHON = "getitem add sub mul floordiv truediv mod neg eq ne ge gt le lt"

ALLOWED_OPERATORS = frozenset(
    [f"aten::{name}" for name in _ATEN.split()] + [f"_operator.{name}" for name in _PYTHON.split()]
)


def operator_name(target: str) -> str:
    """'torch.ops.aten.add.Tensor' -> 'aten::add'; any other target as it is written."""
    parts = target.split(".")
    if len(parts) == 5 and parts[:2] == ["torch", "ops"]:
        return f"{parts[2]}::{parts[3]}"
    return target


def check_graph(exported, where: str) -> None:
    """The graph torch built from the checked archive calls only allowed operators: a second
    look, on the objects this time (the check before loading read the JSON)."""
    import operator

    import torch

    for node in exported.graph_module.graph.nodes:
        if node.op in ("placeholder", "output"):
            continue
        target = node.target
        if node.op == "call_function" and isinstance(target, torch._ops.OpOverload):
            name = target.name().split(".")[0]  # 'aten::add.Tensor' -> 'aten::add'
        elif (
            node.op == "call_function"
            and getattr(operator, getattr(target, "__name__", ""), None) is target
        ):
            name = f"_operator.{target.__name__}"
        else:
            name = f"{node.op} {target}"
        if name not in ALLOWED_OPERATORS:
            raise SynthError(f"{where}: the loaded program calls '{name}': refused")
