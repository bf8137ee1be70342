"""Saved programs as traces: a ``torch.export`` archive (``.pt2``) from its graph's own shape metadata
(no forward pass runs), and a TorchScript archive from its module tree (hooks do not run inside
TorchScript, so layer-by-layer shapes are not visible; with ``--input`` its forward runs once for the
output shape). Each trace says in its notes what it can and cannot show.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import torch

from .checkpoint import CheckpointError, archive_kind
from .paths import is_user_file
from .records import Row, Shape, TensorInfo, Totals, Trace
from .spec import InputSpec
from .tensors import dtype_name

_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def trace_program(path: str, inputs: Sequence[InputSpec] = (), layer_shapes: bool = False) -> Trace:
    """The trace of a saved program: ``.pt2`` from torch.export.save, or a TorchScript archive.

    ``layer_shapes=True`` (what fc-size needs) refuses a TorchScript archive, which cannot show them."""
    if not os.path.exists(path):
        raise CheckpointError(f"file not found: {path}")
    kind = archive_kind(path) if not os.path.isdir(path) else None
    if kind == "torch.export":
        return exported_trace(path, inputs)
    if kind == "torchscript":
        if layer_shapes:
            raise CheckpointError(
                f"{path} is a TorchScript archive: Python hooks do not run inside TorchScript, so the size each "
                "nn.Linear receives cannot be seen. Run fc-size on the model's .py file, or on a .pt2 from "
                "torch.export.save; `convshape trace` shows the archive's module tree")
        return scripted_trace(path, inputs)
    if kind == "torch.save" or path.lower().endswith(".safetensors"):
        raise CheckpointError(
            f"{path} is a checkpoint of tensors, not a saved program: it has no forward to trace. List it with "
            f"`convshape params {path}`, or check it fits a model with "
            f"`convshape trace MODEL.py --input SHAPE --weights {path}`")
    raise CheckpointError(f"{path} is not a program torch saved; expected a .pt2 from torch.export.save or a "
                          "TorchScript archive from torch.jit.save (or a model file.py)")


# ---- torch.export ------------------------------------------------------------------------------


def _dims(value: Any, symbols: dict[str, str]) -> Shape:
    from torch.fx.experimental.symbolic_shapes import is_concrete_int

    out = []
    for d in value.shape:
        if is_concrete_int(d):
            out.append(int(d))
        else:
            symbols[str(d)] = ""
            out.append(-1)  # a dynamic dimension: shown as -1, its range in the notes
    return tuple(out)


def _tensors(value: Any) -> list[Any]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _source(stack_trace: str | None) -> str | None:
    """``net.py:14``: the innermost frame of the user's code in a node's recorded stack trace."""
    where = None
    for file, line in _FRAME.findall(stack_trace or ""):
        if is_user_file(file):
            where = f"{os.path.basename(file)}:{line}"
    return where


def _short(type_path: str) -> str:
    return type_path.rpartition(".")[2]


def _layer_attrs(kind: str, path: str, state: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments a Linear's or conv's weight shape shows (what fc-size needs)."""
    weight = state.get(f"{path}.weight" if path else "weight")
    if weight is None:
        return {}
    shape = tuple(weight.shape)
    if kind in ("Linear", "LazyLinear") and len(shape) == 2:
        return {"in_features": shape[1], "out_features": shape[0]}
    if kind.startswith("Conv") and len(shape) >= 3:
        return {"out_channels": shape[0], "in_channels": shape[1], "kernel_size": shape[2:]}
    return {}


def exported_trace(path: str, inputs: Sequence[InputSpec] = ()) -> Trace:
    try:
        program = torch.export.load(path)
    except Exception as e:
        raise CheckpointError(f"torch.export.load({path}) raised {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}") from e
    graph, sig = program.graph, program.graph_signature
    state = {**program.state_dict, **dict(program.constants)}
    param_nodes = {**sig.inputs_to_parameters, **sig.inputs_to_buffers,
                   **getattr(sig, "inputs_to_lifted_tensor_constants", {})}
    params = set(sig.inputs_to_parameters)
    symbols: dict[str, str] = {}
    vals: dict[str, list[Any]] = {n.name: _tensors(n.meta.get("val")) for n in graph.nodes}
    producer: dict[str, int | None] = {}
    rows: list[dict[str, Any]] = []
    user_inputs = [n for n in graph.nodes if n.op == "placeholder" and n.name not in param_nodes]
    root_type = "ExportedProgram"
    for n in graph.nodes:
        for p, t in (n.meta.get("nn_module_stack") or {}).values():
            if p in ("", "L['self']"):
                root_type = _short(str(t))
                break
    rows.append({"kind": "module", "name": "", "op": root_type, "depth": 0, "parent": None, "members": [],
                 "key": None, "path": ""})
    open_scopes: list[tuple[str, int]] = []  # (nn_module_stack key, row index)
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is __import__("operator").getitem:
            src = node.args[0]
            producer[node.name] = producer.get(getattr(src, "name", ""))
            continue
        stack = [(k, v) for k, v in (node.meta.get("nn_module_stack") or {}).items()
                 if v[0] not in ("", "L['self']")]
        common = 0
        while common < min(len(stack), len(open_scopes)) and stack[common][0] == open_scopes[common][0]:
            common += 1
        del open_scopes[common:]
        for key, (mod_path, mod_type) in stack[common:]:
            parent = open_scopes[-1][1] if open_scopes else 0
            mod_path = _clean_path(str(mod_path))
            rows.append({"kind": "module", "name": mod_path, "op": _short(str(mod_type)), "depth": len(open_scopes) + 1,
                         "parent": parent, "members": [], "key": key, "path": mod_path})
            open_scopes.append((key, len(rows) - 1))
        parent = open_scopes[-1][1] if open_scopes else 0
        op_name = str(node.target).split(".")[1] if str(node.target).startswith("aten.") else getattr(
            node.target, "__name__", str(node.target))
        arg_nodes = [a for a in node.all_input_nodes]
        rows.append({"kind": "function", "name": op_name, "op": f"aten.{op_name}" if str(node.target).startswith(
            "aten.") else op_name, "depth": len(open_scopes) + 1, "parent": parent, "node": node,
            "args": arg_nodes, "source": _source(node.meta.get("stack_trace"))})
        index = len(rows) - 1
        producer[node.name] = index
        for _, scope in [("", 0), *open_scopes]:
            rows[scope]["members"].append(node)
    stored = _weight_files(path)  # tied parameters share one weight file in the archive
    frozen = _freeze(rows, vals, producer, param_nodes, params, state, symbols, user_inputs, graph, stored)
    infos = tuple(TensorInfo(_dims(v, symbols), dtype_name(v.dtype)) for n in user_inputs for v in vals[n.name])
    unique = {stored.get(k, k): state[k] for k in sig.inputs_to_parameters.values() if k in state}
    n_params = sum(math.prod(t.shape) for t in unique.values())
    n_bytes = sum(math.prod(t.shape) * t.element_size() for t in unique.values())
    notes = [
        "traced from the exported graph's own shape metadata (node.meta['val']): no forward pass ran",
        "shows the ATen ops torch.export recorded (F.relu appears as aten relu, x.view as aten view) inside the "
        "module scopes it kept; Python code that export ran through (loops, shape arithmetic) leaves no rows",
    ]
    if inputs:
        notes.append("--input is ignored: an exported program's shapes are those it was exported with")
    if symbols:
        ranges = {str(k): v for k, v in program.range_constraints.items()}
        described = ", ".join(f"{s} in [{ranges[s].lower}, {ranges[s].upper}]" if s in ranges else s
                              for s in symbols)
        notes.append(f"dimensions shown as -1 are dynamic: {described}")
    label = f"{os.path.basename(path)}:{root_type}"
    return Trace(label, "export graph", infos, tuple(frozen), Totals(n_params, n_params, 0, n_bytes), None,
                 tuple(notes))


def _weight_files(path: str) -> dict[str, str]:
    """Parameter name -> the weight file holding it, from the archive's weights config (tied parameters
    share one file; torch.export.load gives them separate tensors)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("data/weights/model_weights_config.json")), None)
            config = json.loads(z.read(name))["config"] if name else {}
        return {k: str(v.get("path_name", k)) for k, v in config.items() if isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return {}


def _clean_path(path: str) -> str:
    """``L['self'].layers[0].attn`` (older exports) -> ``layers.0.attn``."""
    path = path.removeprefix("L['self'].").removeprefix("L['self']")
    return re.sub(r"\[(\d+)\]", r".\1", path).replace("._modules['", ".").replace("']", "")


def _freeze(rows: list[dict[str, Any]], vals: dict[str, list[Any]], producer: dict[str, int | None],
            param_nodes: dict[str, str], params: set[str], state: dict[str, Any], symbols: dict[str, str],
            user_inputs: list[Any], graph: Any, stored: dict[str, str]) -> list[Row]:
    calls: dict[str, int] = {}
    out: list[Row] = []
    output_node = next(n for n in graph.nodes if n.op == "output")
    for index, r in enumerate(rows):
        if r["kind"] == "function":
            node = r["node"]
            tensor_args = [a for a in r["args"] if vals.get(a.name) and a.name not in param_nodes]
            ins = tuple(_dims(v, symbols) for a in tensor_args for v in vals[a.name])
            outs = vals[node.name]
            n_params = sum(math.prod(state[param_nodes[a.name]].shape) for a in r["args"]
                           if a.name in params and param_nodes[a.name] in state)
            out.append(Row(index, "function", r["name"], r["op"], r["depth"], ins,
                           tuple(_dims(v, symbols) for v in outs), tuple(dtype_name(v.dtype) for v in outs),
                           n_params, r["source"], r["parent"],
                           tuple(producer.get(a.name) for a in tensor_args for _ in vals[a.name])))
            continue
        members = r["members"]
        names = {m.name for m in members}
        if index == 0:
            in_nodes, out_nodes = user_inputs, list(output_node.all_input_nodes)
        else:
            in_nodes = []
            for m in members:
                for a in m.all_input_nodes:
                    if a.name not in names and a.name not in param_nodes and vals.get(a.name) and a not in in_nodes:
                        in_nodes.append(a)
            out_nodes = [m for m in members if any(u.name not in names for u in m.users)] or members[-1:]
            # a getitem outside the scope reads a member's tuple: the member is the output
        prefix = f"{r['path']}." if r["path"] else ""
        owned = sum(math.prod(t.shape) for t in {stored.get(k, k): state[k] for n, k in param_nodes.items()
                                                 if n in params and k.startswith(prefix) and k in state}.values())
        call = calls.get(r["name"], 0)
        calls[r["name"]] = call + 1
        outs = [v for n in out_nodes for v in vals.get(n.name, [])]
        first_src = [producer.get(a.name) for a in in_nodes for _ in vals[a.name]] if index else []
        source = next((rows[i]["source"] for i in range(index + 1, len(rows))
                       if rows[i]["kind"] == "function" and rows[i]["source"]), None) if index else None
        out.append(Row(index, "module", r["name"], r["op"], r["depth"],
                       tuple(_dims(v, symbols) for n in in_nodes for v in vals[n.name]),
                       tuple(_dims(v, symbols) for v in outs), tuple(dtype_name(v.dtype) for v in outs),
                       owned if call == 0 else 0, source, r["parent"], tuple(first_src), call,
                       attrs=_layer_attrs(r["op"], r["path"], state)))
    return out


# ---- TorchScript -------------------------------------------------------------------------------


def scripted_trace(path: str, inputs: Sequence[InputSpec] = ()) -> Trace:
    import warnings

    from .inputs import make_input

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript; files remain
            module = torch.jit.load(path, map_location="cpu")
    except Exception as e:
        raise CheckpointError(f"torch.jit.load({path}) raised {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}") from e
    tensors = [make_input(s, torch.device("cpu")) for s in inputs]
    infos = tuple(TensorInfo(tuple(t.shape), dtype_name(t.dtype)) for t in tensors)
    out_shapes: tuple[Shape, ...] = ()
    out_dtypes: tuple[str, ...] = ()
    notes = ["a TorchScript archive: Python hooks do not run inside TorchScript, so this shows its module tree "
             "and parameters, not the shape after each layer"]
    error = None
    if tensors:
        try:
            with torch.no_grad():
                result = module(*tensors)
            outs = _tensors(result)
            out_shapes = tuple(tuple(t.shape) for t in outs)
            out_dtypes = tuple(dtype_name(t.dtype) for t in outs)
            notes.append("the output shape comes from one forward pass of the archive's code on the cpu")
        except Exception as e:
            from .records import Failure

            message = str(e).strip().splitlines()
            error = Failure(f"the TorchScript forward failed on input {', '.join(str(s) for s in inputs)}: "
                            f"{message[-1] if message else type(e).__name__}", str(e), type(e).__name__, 0,
                            "", getattr(module, "original_name", "ScriptModule"))
    else:
        notes.append("give --input SHAPE to run its forward once and show the output shape")
    rows: list[Row] = []
    index_of: dict[str, int] = {}
    for name, sub in module.named_modules():
        depth = name.count(".") + 1 if name else 0
        parent = index_of.get(name.rpartition(".")[0]) if name else None
        own = sum(p.numel() for p in sub.parameters(recurse=True))
        index_of[name] = len(rows)
        ins = tuple(i.shape for i in infos) if not name else ()
        rows.append(Row(len(rows), "module", name, getattr(sub, "original_name", type(sub).__name__), depth,
                        ins, out_shapes if not name else (), out_dtypes if not name else (), own, None, parent,
                        (), failed=not name and error is not None))
    unique = {id(p): p for p in module.parameters()}
    n = sum(p.numel() for p in unique.values())
    trainable = sum(p.numel() for p in unique.values() if p.requires_grad)
    nbytes = sum(p.numel() * p.element_size() for p in unique.values())
    label = f"{os.path.basename(path)}:{getattr(module, 'original_name', 'ScriptModule')}"
    return Trace(label, "cpu (TorchScript)" if tensors else "none (TorchScript module tree)", infos, tuple(rows),
                 Totals(n, trainable, n - trainable, nbytes), error, tuple(notes))
