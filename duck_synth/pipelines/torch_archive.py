"""A torch.export file (``.pt2``, written by ``torch.export.save``) checked before anything in
it can run, and rebuilt from the checked parts alone for ``torch.export.load``.

torch 2.13 writes a zip whose entries share one folder (the file's stem)::

    archive_format ('pt2'), archive_version ('0'), byteorder, .data/version, .data/serialization_id
    models/model.json                          the program: graph, signature, shapes (JSON)
    data/weights/model_weights_config.json     {name: {path_name, use_pickle, tensor_meta}}
    data/weights/weight_N                      a tensor's raw bytes
    data/constants/model_constants_config.json, data/constants/tensor_N   the same, constants
    data/sample_inputs/model.pt                the example inputs (a torch.save pickle)

The same format also holds pickled tensors (``use_pickle``), pickled objects
(``custom_obj_N``, ``opaque_obj_N``), compiled code (``data/aotinductor/``) and older layouts.
torch.export.load would run code from a crafted file in at least four places: it unpickles
``use_pickle`` payloads and the objects with ``weights_only=False``, falls back to
``weights_only=False`` for the sample inputs, parses every shape expression with sympy (Python's
``eval``) and builds the input guards by ``exec`` of ``guards_code``. So ``check`` reads the zip
with ``zipfile``, the JSON with ``json`` (the program: torch_program.py), the sample inputs'
pickle with ``pickletools`` (never unpickling), and refuses what it does not know; then
``Program.archive`` is a new archive written from the checked parts: the program's JSON without
node metadata, raw tensor bytes, and empty sample inputs, so torch unpickles nothing.
"""

from __future__ import annotations

import io
import json
import pickletools
import re
import zipfile
from dataclasses import dataclass

from ..errors import SynthError
from .torch_program import PROGRAM, check_program, contract, walk

MAX_UNPACKED_BYTES = 1024**3  # a zip bomb stops here
SAMPLE_INPUTS = "data/sample_inputs/model.pt"
PAYLOADS = (  # (folder, its config, the records it names)
    ("data/weights/", "model_weights_config.json", re.compile(r"weight_\d+")),
    ("data/constants/", "model_constants_config.json", re.compile(r"tensor_\d+")),
)
FIXED = {"archive_format": b"pt2", "archive_version": b"0"}
OPTIONAL = {".data/version", ".data/serialization_id", "byteorder", SAMPLE_INPUTS}
# what the usual refusals are, by where the entry lies
ENTRY_KINDS = (
    ("data/aotinductor/", "compiled code"),
    ("data/executorch/", "compiled code"),
    ("data/constants/custom_obj_", "a pickled object"),
    ("data/constants/opaque_obj_", "a pickled object"),
    ("extra/", "an extra file"),
)
# what a torch.save pickle of tensors names: the only globals its sample inputs may hold
PICKLE_GLOBALS = re.compile(
    r"torch\._utils (_rebuild_tensor_v2|_rebuild_parameter)|torch \w*Storage|"
    r"collections OrderedDict|torch device"
)
PICKLE_CALLS_BY_STACK = {"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"}


@dataclass(frozen=True)
class Program:
    """A checked program: the archive torch may load, and what it takes and returns."""

    archive: bytes  # rebuilt from the checked parts (torch.export.load reads only this)
    operators: tuple[str, ...]  # the operators its graph calls, sorted
    columns: int  # the input tensor's second dimension
    outputs: int | None  # the output's second dimension; None: one value per row
    batch: tuple[int, int | None]  # the rows one call accepts: (at least, at most or None)


def check(data: bytes, where: str) -> Program:
    """The program in ``data``, checked whole; SynthError (one line, ``where`` first) else."""
    entries = _entries(data, where)
    try:
        configs = [
            _payloads(entries, folder, config, records, where)
            for folder, config, records in PAYLOADS
        ]
        _check_sample_inputs(entries.get(SAMPLE_INPUTS, b""), where)
        program = _json(entries[PROGRAM], f"{where}: {PROGRAM}")
        operators = check_program(program, where)
        columns, outputs, batch = contract(program, where)
    except (
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
    ):  # JSON of another shape
        raise SynthError(f"{where}: not a torch.export program (unexpected JSON)") from None
    return Program(_rebuilt(entries, program, configs), operators, columns, outputs, batch)


def _entries(data: bytes, where: str) -> dict[str, bytes]:
    """The zip's records by their name under its one folder, every name one torch writes."""
    not_archive = f"{where}: not a torch.export archive"
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except Exception:  # zipfile raises many kinds on what is not a zip
        raise SynthError(f"{not_archive} (not a zip file)") from None
    names = [info.filename for info in infos]
    roots = {name.split("/", 1)[0] for name in names}
    if len(roots) != 1 or any("/" not in name for name in names) or len(set(names)) != len(names):
        raise SynthError(f"{not_archive} (its entries do not lie in one folder, once each)")
    if sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
        raise SynthError(f"{where}: unpacks to more than {MAX_UNPACKED_BYTES // 1024**2} MiB")
    archive, root = zipfile.ZipFile(io.BytesIO(data)), f"{roots.pop()}/"
    try:
        entries = {name[len(root) :]: archive.read(name) for name in names}
    except Exception as error:  # a damaged or encrypted record, an unknown compression
        raise SynthError(f"{not_archive} ({error})") from None
    if any(entries.get(name) != value for name, value in FIXED.items()):
        raise SynthError(
            f"{not_archive} (no archive_format 'pt2', version 0: torch.save's or TorchScript's?)"
        )
    for name in entries:
        if not _expected(name):
            kind = next((k for prefix, k in ENTRY_KINDS if name.startswith(prefix)), "unknown")
            raise SynthError(f"{where}: unexpected entry '{name}' ({kind}): refused")
    for name in (PROGRAM, *(folder + config for folder, config, _ in PAYLOADS)):
        if name not in entries:
            raise SynthError(f"{not_archive} (no {name})")
    return entries


def _expected(name: str) -> bool:
    if name in FIXED or name in OPTIONAL or name == PROGRAM:
        return True
    for folder, config, records in PAYLOADS:
        if name.startswith(folder) and (
            name[len(folder) :] == config or records.fullmatch(name[len(folder) :])
        ):
            return True
    return False


def _json(data: bytes, where: str):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise SynthError(f"{where}: not JSON") from None


def _payloads(entries: dict[str, bytes], folder: str, config: str, records, where: str) -> dict:
    """A weights or constants config: every tensor raw bytes in a record of the archive."""
    parsed = _json(entries[folder + config], f"{where}: {folder}{config}")
    if (
        not isinstance(parsed, dict)
        or set(parsed) != {"config"}
        or not isinstance(parsed["config"], dict)
    ):
        raise SynthError(f"{where}: {folder}{config}: not a payload config")
    for name, meta in parsed["config"].items():
        if not isinstance(meta, dict) or meta.get("use_pickle") is not False:
            raise SynthError(
                f"{where}: '{name}' is stored as a pickle (a tensor subclass or an object): "
                "refused, as unpickling it could run code"
            )
        path = meta.get("path_name")
        if not isinstance(path, str) or not records.fullmatch(path) or folder + path not in entries:
            raise SynthError(f"{where}: '{name}' names a missing record {path!r}")
        if "as_expr" in json.dumps(meta):
            raise SynthError(f"{where}: '{name}' has a symbolic shape; a stored tensor has none")
        walk(meta, where)
    walk(list(parsed["config"]), where)
    return parsed


def _check_sample_inputs(data: bytes, where: str) -> None:
    """The example inputs torch.export.save pickled: tensors only, read with pickletools (the
    rebuilt archive leaves them out, so nothing ever unpickles them)."""
    if not data:
        return
    refused = f"{where}: {SAMPLE_INPUTS}"
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
        pickles = [name for name in inner.namelist() if name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise SynthError(f"{refused}: not one torch.save pickle")
        for opcode, argument, _ in pickletools.genops(inner.read(pickles[0])):
            if opcode.name in PICKLE_CALLS_BY_STACK or (
                opcode.name == "GLOBAL" and not PICKLE_GLOBALS.fullmatch(str(argument))
            ):
                raise SynthError(
                    f"{refused}: the pickle calls {argument or opcode.name}, not "
                    "only tensors: refused, as unpickling it would run it"
                )
    except SynthError:
        raise
    except Exception:  # not a zip, or a pickle pickletools cannot read
        raise SynthError(f"{refused}: not a torch.save file of tensors") from None


def _rebuilt(entries: dict[str, bytes], program: dict, configs: list[dict]) -> bytes:
    """The archive torch loads: written from the checked parts alone, sample inputs empty."""
    from torch.export.pt2_archive import PT2ArchiveWriter

    buffer = io.BytesIO()
    with PT2ArchiveWriter(buffer) as writer:
        writer.write_string(PROGRAM, json.dumps(program))
        for (folder, config_name, _), config in zip(PAYLOADS, configs, strict=True):
            writer.write_string(folder + config_name, json.dumps(config))
            for path in sorted({meta["path_name"] for meta in config["config"].values()}):
                writer.write_bytes(folder + path, entries[folder + path])
        writer.write_bytes(SAMPLE_INPUTS, b"")  # no example inputs: torch unpickles nothing
    return buffer.getvalue()
