"""Symbolic input sizes: trace a model with sizes that are names (``Bx1xHxW``), and get every shape as a formula.

torch's own symbolic shape machinery does the algebra: each name becomes a size symbol of a
:class:`~torch.fx.experimental.symbolic_shapes.ShapeEnv`, the inputs and a copy of the model become fake
tensors (:class:`~torch._subclasses.fake_tensor.FakeTensorMode`: shapes, no data), and the usual recorder
runs one forward pass. Every shape torch computes is then a ``SymInt`` whose expression is the formula;
every decision torch (or the model's own Python) takes on a size is recorded by the ShapeEnv as a *guard*.
The guards of one pass describe the set of sizes that take exactly the same path, and so behave the same:
:mod:`convshape.sizes` reads them.

A symbolic pass runs at sample values of the sizes (32 unless that fails: then the nearest sizes that run);
the rows keep those numbers (:class:`~convshape.symbolic_records.SizeExpr` prints the formula), so every
analysis that works with numbers still does. Where symbols cannot follow (data-dependent code, ``.item()``,
an op without a symbolic rule, a size turned into a plain Python number), the trace says which row and line,
and the rows from there on are a concrete trace at the sample sizes: never a wrong formula.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sympy  # type: ignore[import-untyped]
import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from . import symexpr
from . import tracer as tracer_module
from .cells import place
from .errors import ConvshapeError, InputSpecError, safe_str
from .failure import describe
from .inputlang import Inputs
from .inputs import leaves, map_leaves, plain_values
from .isolation import _unique_tensors, guarded
from .params import totals_of
from .paths import TORCH_DIR, is_user_file, user_frame_summary
from .records import Row, TensorInfo, Trace
from .spec import InputSpec, Value
from .symbolic_records import Requirement, SizeExpr, Symbols, SymbolStop
from .tensors import dtype_name, tensors_in
from .tracer import Recorder, Stop, raised_by_convshape

DEFAULT_SAMPLE = 32  # the size each name takes in the first pass
SAMPLE_TRIES = 12  # passes spent looking for sample sizes that run, when the default ones do not


def names_in(given: Inputs) -> list[str]:
    """The symbolic size names of the inputs, in order of first appearance."""
    names: list[str] = []
    for leaf in leaves((given.args, given.kwargs)):
        if isinstance(leaf, InputSpec):
            for d in leaf.shape:
                if isinstance(d, str) and d not in names:
                    names.append(d)
    return names


def concrete(given: Inputs, sizes: dict[str, int]) -> Inputs:
    """The inputs with each name replaced by its size."""
    def fix(leaf: Any) -> Any:
        if isinstance(leaf, InputSpec) and leaf.symbolic:
            return replace(leaf, shape=tuple(sizes[d] if isinstance(d, str) else d for d in leaf.shape))
        return leaf

    return Inputs(map_leaves(given.args, fix), map_leaves(given.kwargs, fix))


# -- one pass ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Where:
    """Who made torch decide something about a size: the row in progress and the user's line."""

    next_row: int  # the index the next row will take (a direct function call in progress)
    module_row: int | None  # the innermost module call in progress
    source: str | None  # the user's line
    in_your_code: bool  # the model's own Python compared a size (an if), not a torch op
    in_conv_choice: bool = False  # made while torch's convolution picked a kernel (see kernel_choice)
    batch: frozenset[Any] = frozenset()  # the symbols of that convolution's batch size


_SYMBOLIC_INTERNALS = tuple(f"{TORCH_DIR}{p}" for p in ("fx/experimental/", "__init__.py", "_guards.py"))
_USER: dict[str, bool] = {}
_CONV_IMPL = "_subclasses/fake_impls.py"


def kernel_choice(expr: Any, where: Where) -> bool:
    """True for a guard that only chose which cpu convolution kernel runs: torch's fake convolution asks
    ``_select_conv_backend``, which compares the input's size with fixed thresholds (``3 * H * W <= 20480``,
    a batch size below 16). Every kernel computes the same shapes and runs on every size, so the choice splits
    no set of sizes that run (the tests check it: every size ``sizes`` says runs is run concretely). The
    convolution's real check, input at least the kernel's reach (``H >= 5``), is on the spatial sizes and
    small numbers, and stays."""
    if not where.in_conv_choice or not isinstance(expr, sympy.core.relational.Relational):
        return False
    if isinstance(expr, (sympy.Eq, sympy.Ne)):
        return False
    if any(side.is_number and abs(side) >= 1024 for side in (expr.lhs, expr.rhs)):
        return True
    return bool(expr.free_symbols) and expr.free_symbols <= where.batch


def _user(filename: str) -> bool:
    known = _USER.get(filename)
    if known is None:
        known = _USER[filename] = is_user_file(filename)
    return known


def _where_now() -> Where:
    rec = tracer_module.current
    frame = sys._getframe(2)
    first_other = None
    conv = False
    batch: frozenset[Any] = frozenset()
    source = None
    while frame is not None:
        name = frame.f_code.co_filename
        if first_other is None and not name.startswith(_SYMBOLIC_INTERNALS) and "/sympy/" not in name:
            first_other = name
            conv = name.endswith(_CONV_IMPL) and frame.f_code.co_name == "conv"
            if conv:
                first = frame.f_locals.get("input_")
                size = first.shape[0] if isinstance(first, torch.Tensor) and first.dim() else None
                batch = frozenset(size.node.expr.free_symbols) if isinstance(size, torch.SymInt) else frozenset()
        if _user(name):
            source = place(name, frame.f_lineno)
            break
        frame = frame.f_back  # type: ignore[assignment]
    return Where(len(rec.rows) if rec is not None else 0,
                 rec.stack[-1].index if rec is not None and rec.stack else None, source,
                 first_other is not None and _user(first_other), conv, batch)


class _Guards(list[Any]):
    """The ShapeEnv's guard list, noting who made each guard and when a size became a plain number."""

    def __init__(self, env: Any, symbols: dict[sympy.Symbol, str]) -> None:
        super().__init__()
        self.env = env
        self.symbols = symbols
        self.where: list[Where] = []
        self.fixed: dict[str, tuple[int, Where]] = {}  # name -> (value, where it became one)

    def append(self, guard: Any) -> None:
        super().append(guard)
        where = _where_now()
        self.where.append(where)
        for sym, name in self.symbols.items():
            value = self.env.replacements.get(sym)
            if value is not None and value.is_number and name not in self.fixed:
                self.fixed[name] = (int(value), where)


@dataclass
class Pass:
    """One forward pass with symbolic sizes, as torch left it (SymInts, guards): turned into records later."""

    sizes: dict[str, int]  # the sample value of each name
    env: Any  # the ShapeEnv
    symbols: dict[sympy.Symbol, str]
    rows: tuple[Row, ...]
    stop: Stop | None
    guards: _Guards
    inputs: tuple[TensorInfo, ...]
    unknown_cost_ops: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.stop is None

    def conditions(self) -> list[tuple[Any, Where]]:
        """Each guard (a sympy boolean over this pass's symbols) with who made it."""
        return [(g.expr, w) for g, w in zip(self.guards, self.guards.where, strict=True)]

    def stop_row(self) -> int | None:
        if self.stop is None:
            return None
        return self.stop.function_row if self.stop.function_row is not None else self.stop.module_row


def _fake_model(model: nn.Module, mode: Any) -> nn.Module:
    """A copy of ``model`` whose tensors are fake (shapes and dtypes, no data): the caller's model is untouched.
    Tensors on meta become fake cpu tensors, so a model built on meta runs as it would on the cpu."""
    cpu = torch.device("cpu")
    memo: dict[int, Any] = {}
    with mode:
        for t in _unique_tensors(model):
            if isinstance(t, (UninitializedParameter, UninitializedBuffer)):
                continue
            # static shapes: only the inputs' sizes are symbols
            fake = torch.empty_strided(tuple(t.shape), tuple(t.stride()), dtype=t.dtype,
                                       device=cpu if t.device.type == "meta" else t.device)
            memo[id(t)] = nn.Parameter(fake, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else fake
    try:
        return copy.deepcopy(model, memo)
    except Exception as e:
        raise ConvshapeError(f"cannot make a shape-only copy of {type(model).__name__} for a symbolic trace "
                             f"({type(e).__name__}: {safe_str(e)[:160]}); give numbers instead of names") from e


def _session(sizes: dict[str, int]) -> tuple[Any, Any, dict[str, Any], dict[sympy.Symbol, str]]:
    from torch._dynamo.source import ConstantSource
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv

    env = ShapeEnv(duck_shape=False, specialize_zero_one=False)
    mode = FakeTensorMode(shape_env=env, allow_non_fake_inputs=True)
    made: dict[str, Any] = {}
    symbols: dict[sympy.Symbol, str] = {}
    for name, hint in sizes.items():
        source = ConstantSource(f"size_{name}")
        sym = env.create_symbol(hint, source, DimDynamic.DYNAMIC, positive=True)
        made[name] = env.create_symintnode(sym, hint=hint, source=source)
        symbols[sym] = name
    return env, mode, made, symbols


def _fake_inputs(given: Inputs, made: dict[str, Any], mode: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    def leaf(value: Any) -> Any:
        if isinstance(value, InputSpec):
            shape = [made[d] if isinstance(d, str) else d for d in value.shape]
            with mode:
                return torch.empty(shape, dtype=getattr(torch, value.dtype))
        if isinstance(value, torch.Tensor):
            return mode.from_tensor(value)
        if isinstance(value, Value):
            return value.value
        return value

    return map_leaves(given.args, leaf), map_leaves(given.kwargs, leaf)


def _infos(args: Any, kwargs: dict[str, Any]) -> tuple[TensorInfo, ...]:
    infos = [TensorInfo(tuple(t.shape), dtype_name(t.dtype)) for t in tensors_in(args)]
    for key, value in kwargs.items():
        tensors = tensors_in(value)
        infos.extend(TensorInfo(tuple(t.shape), dtype_name(t.dtype), key if len(tensors) == 1 else f"{key}[{i}]")
                     for i, t in enumerate(tensors))
    return tuple(infos)


def run_pass(model: nn.Module, given: Inputs, sizes: dict[str, int], options: Any) -> Pass:
    """One forward pass of a shape-only copy of ``model`` with the named sizes symbolic, at ``sizes``."""
    env, mode, made, symbols = _session(sizes)
    guards = _Guards(env, symbols)
    env.guards = guards
    fake = _fake_model(model, mode)
    args, kwargs = _fake_inputs(given, made, mode)
    recorder = Recorder(fake, repair_linear=options.repair_linear, max_rows=options.max_rows, costs=options.costs)
    recorder.input_ids.update(id(t) for t in (*tensors_in(args), *tensors_in(kwargs)))
    stop = None
    with guarded(options.timeout), _quiet_logs():
        try:
            fake.train(options.train)
            with mode, torch.no_grad(), recorder:
                fake(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            if isinstance(e, Exception) and raised_by_convshape(e):
                raise RuntimeError(f"convshape internal error in a symbolic trace (please report it): "
                                   f"{safe_str(e)}") from e
            stop = recorder.stop(e)
    return Pass(dict(sizes), env, symbols, recorder.frozen_rows(), stop, guards, _infos(args, kwargs),
                dict(recorder.unknown_cost_ops))


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """torch logs a fake op that fails (the model's shape error) with its traceback: the trace says it better."""
    loggers = [logging.getLogger(n) for n in ("torch._subclasses.fake_tensor", "torch.fx.experimental.symbolic_shapes",
                                              "torch.fx.experimental.recording")]
    before = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    finally:
        for lg, was in zip(loggers, before, strict=True):
            lg.disabled = was


# -- from a pass to records ----------------------------------------------------------------------------------

def _unify(p: Pass) -> dict[Any, Any]:
    """The equalities among the sizes that the pass learned (``W`` is ``H``), each written in terms of the
    size the inputs name first: ``{W: H}``, never ``{H: W}``."""
    order = list(p.symbols)
    out: dict[Any, Any] = {}
    for s, r in p.env.replacements.items():
        if s not in p.symbols or r.is_number:
            continue
        if isinstance(r, sympy.Symbol) and r in p.symbols and order.index(r) > order.index(s):
            out[r] = s  # H -> W becomes W -> H: the name given first stays
        else:
            out[s] = r
    return out


class Sizer:
    """Turns a pass's SymInts into numbers that print as formulas (:class:`SizeExpr`)."""

    def __init__(self, p: Pass, simplify: bool) -> None:
        self.p = p
        self.hints = {sym: sympy.Integer(p.sizes[name]) for sym, name in p.symbols.items()}
        self.simplify = simplify  # False once a size became a plain number: its value must not leak backwards
        self.unify = _unify(p)

    def expression(self, v: Any) -> Any:
        """The sympy expression of a SymInt, with the equalities the pass learned applied."""
        e = v.node._expr if self.simplify is False else v.node.expr
        if self.simplify:
            with contextlib.suppress(Exception):  # simplification is cosmetic: the raw expression is as true
                e = self.p.env.simplify(e)
        e = e.xreplace(self.unify)
        return e

    def size(self, v: Any) -> Any:
        if not isinstance(v, torch.SymInt):
            return v
        e = self.expression(v)
        value = e.xreplace(self.hints)
        if not value.is_number:  # an unbacked (data-dependent) size: its hint is all there is
            return int(v.node.hint) if v.node.hint is not None else 0
        if e.is_number:
            return int(e)
        texts = []
        for form in (e, v.node._expr.xreplace(self.unify)):  # simplified, and as torch built it (a sum of terms)
            try:
                text = symexpr.readable(form, self.p.symbols)
            except symexpr.Unsupported:
                continue
            if symexpr.evaluate(text, self.p.sizes) == int(value):  # never a formula wrong at the sample
                texts.append(text)
        if not texts:
            return int(value)
        return SizeExpr(int(value), min(texts, key=len))

    def shape(self, s: Any) -> tuple[Any, ...]:
        return tuple(self.size(d) for d in s)

    def plain(self, s: Any) -> tuple[int, ...]:
        return tuple(int(self.size(d)) for d in s)

    def row(self, r: Row, exact: bool) -> Row:
        conv = self.shape if exact else self.plain
        def count(v: Any) -> Any:
            if v is None:
                return None
            out = self.size(v)
            return out if exact else int(out)
        return r._replace(input_shapes=tuple(conv(s) for s in r.input_shapes),
                          output_shapes=tuple(conv(s) for s in r.output_shapes),
                          flops=count(r.flops), macs=count(r.macs), alloc_bytes=int(self.size(r.alloc_bytes)))


_SYM_NAME = re.compile(r"\bs(\d+)\b")


def _readable(message: str, symbols: dict[sympy.Symbol, str]) -> str:
    by_name = {s.name: n for s, n in symbols.items()}
    return _SYM_NAME.sub(lambda m: by_name.get(m.group(0), m.group(0)), message)


def row_label(rows: Sequence[Row], index: int | None) -> str | None:
    if index is None or index >= len(rows):
        return None
    r = rows[index]
    return f"{r.name or 'model'} ({r.op})" if r.kind == "module" else r.name


def attribute(rows: Sequence[Row], where: Where) -> tuple[int | None, str | None, str | None]:
    """The row a guard belongs to: the direct call in progress at the user's line, else the innermost module."""
    if where.next_row < len(rows):
        r = rows[where.next_row]
        if r.kind == "function" and r.source == where.source:
            return r.index, r.name, where.source
    if where.module_row is not None and where.module_row < len(rows):
        r = rows[where.module_row]
        return r.index, row_label(rows, r.index), where.source or r.source
    return None, None, where.source


def requirements(p: Pass) -> tuple[Requirement, ...]:
    """The conditions on the sizes along the pass's path that are not always true, each with who imposed it."""
    out: list[Requirement] = []
    seen: set[str] = set()
    for expr, where in p.conditions():
        names = tuple(sorted({p.symbols[s] for s in expr.free_symbols if s in p.symbols}))
        if not names or kernel_choice(expr, where):  # a kernel choice changes no shape
            continue
        try:
            condition = symexpr.text(expr, p.symbols)
        except symexpr.Unsupported:
            continue
        if condition in seen:
            continue
        seen.add(condition)
        row, layer, source = attribute(p.rows, where)
        out.append(Requirement(condition, names, row, layer, source, where.in_your_code))
    return tuple(out)


def _stopped_at_fixed(p: Pass) -> SymbolStop | None:
    if not p.guards.fixed:
        return None
    first = min(where.next_row for _, where in p.guards.fixed.values())
    fixed = {n: v for n, (v, where) in p.guards.fixed.items() if where.next_row == first}
    where = next(w for _, w in p.guards.fixed.values() if w.next_row == first)
    row, layer, source = attribute(p.rows, where)
    names = ", ".join(fixed)
    values = ", ".join(f"{n} = {v}" for n, v in fixed.items())
    return SymbolStop(row if row is not None else where.next_row, layer, source,
                      f"{names} became {'a plain number' if len(fixed) == 1 else 'plain numbers'} here (int(), "
                      "range(), a size computed in Python floats, or a check only one size passes): the shapes "
                      f"from this row on hold for {values} only")


def to_trace(p: Pass, label: str, totals: Any, options: Any, given: Inputs, notes: Sequence[str],
             sample_note: str | None = None) -> Trace:
    """A :class:`Trace` of a pass that ran (or failed in the model) with symbols all the way."""
    stop = _stopped_at_fixed(p)
    exact_rows = stop.row if stop is not None and stop.row is not None else len(p.rows)
    sizer = Sizer(p, simplify=stop is None)
    rows = tuple(sizer.row(r, r.index < exact_rows) for r in p.rows)
    failure = None
    if p.stop is not None:
        failure = describe(rows, p.stop)
        failure = replace(failure, message=_readable(failure.message, p.symbols),
                          summary=_readable(failure.summary, p.symbols))
    all_notes = list(notes)
    if p.unknown_cost_ops:
        ops = ", ".join(f"{op} (in {where or 'the model'})" for op, where in p.unknown_cost_ops.items())
        all_notes.append(f"FLOPs unknown for: {ops}; rows that run them show no count")
    equal = {p.symbols[s]: symexpr.text(r, p.symbols) for s, r in sizer.unify.items()}
    symbols = Symbols(tuple(p.sizes), dict(p.sizes), exact_rows, stop, equal, requirements(p), sample_note)
    inputs = tuple(TensorInfo(sizer.shape(i.shape), i.dtype, i.name) for i in p.inputs)
    return Trace(label, "symbolic (fake cpu)", inputs, rows, totals, failure, tuple(all_notes), options.costs,
                 plain_values(given), options.train, symbols)


def overlay(concrete_trace: Trace, p: Pass, stop_row: int, reason: str) -> Trace:
    """A concrete trace at the sample sizes, with the formulas of the symbolic pass on the rows before
    ``stop_row`` (where the symbolic pass could not go on). A formula is kept only where its value at the
    sample sizes is the concrete trace's number."""
    sizer = Sizer(p, simplify=True)
    rows = list(concrete_trace.rows)
    exact = 0
    for i in range(min(stop_row, len(rows), len(p.rows))):
        sym, real = p.rows[i], rows[i]
        if (sym.kind, sym.name, sym.op) != (real.kind, real.name, real.op):
            break
        made = sizer.row(sym, True)
        if made.input_shapes != real.input_shapes:
            break
        if not sym.output_shapes and real.output_shapes:  # a module still open when symbols stopped: inputs only
            rows[i] = real._replace(input_shapes=made.input_shapes)
            exact = i + 1
            continue
        if made.output_shapes != real.output_shapes:
            break
        rows[i] = real._replace(input_shapes=made.input_shapes, output_shapes=made.output_shapes,
                                flops=made.flops if made.flops == real.flops else real.flops,
                                macs=made.macs if made.macs == real.macs else real.macs)
        exact = i + 1
    where = p.rows[stop_row] if stop_row < len(p.rows) else None
    line = None
    if p.stop is not None:
        frame = user_frame_summary(p.stop.exception)
        line = place(frame.filename, frame.lineno) if frame is not None else None
    stop = SymbolStop(stop_row, row_label(p.rows, stop_row), where.source if where else line, reason)
    inputs = tuple(TensorInfo(sizer.shape(i.shape), i.dtype, i.name) for i in p.inputs)
    symbols = Symbols(tuple(p.sizes), dict(p.sizes), exact, stop, {}, requirements(p))
    return replace(concrete_trace, rows=tuple(rows), inputs=inputs, symbols=symbols)


# -- the run stage's entry points ----------------------------------------------------------------------------

@dataclass
class Target:
    """What a symbolic trace runs: a shape-only model, and how to run a concrete trace of the same model."""

    model: nn.Module
    label: str
    concrete: Any  # (Inputs, RunOptions) -> Ran: a concrete trace, the truth a failure is checked against


def _limitation(p: Pass, concrete_ran: Any) -> bool:
    """True when the symbolic pass stopped where a concrete pass at the same sizes does not: symbols could not
    follow (data-dependent code, an op with no symbolic rule), the model did not fail."""
    trace = concrete_ran.trace
    if trace.error is None:
        return True
    stop_row = p.stop_row()
    if stop_row is None or trace.error.row is None:
        return trace.error.row != stop_row
    mine = p.rows[stop_row] if stop_row < len(p.rows) else None
    theirs = trace.rows[trace.error.row] if trace.error.row < len(trace.rows) else None
    if mine is None or theirs is None:
        return True
    return (mine.kind, mine.name, mine.op) != (theirs.kind, theirs.name, theirs.op)


def trace_symbolic(target: Target, given: Inputs, options: Any, notes: Sequence[str] = ()) -> Any:
    """Trace with symbolic sizes (see the module docstring); returns a :class:`~convshape.run.Ran`."""
    from .run import Ran

    names = names_in(given)
    if not names:
        raise InputSpecError("no symbolic size in the inputs")
    totals = totals_of(target.model)
    sizes = dict.fromkeys(names, DEFAULT_SAMPLE)
    first = run_pass(target.model, given, sizes, options)
    chosen, sample_note = first, None
    if not first.ok:
        truth = target.concrete(concrete(given, sizes), options)
        if _limitation(first, truth):
            stop = first.stop
            exc = stop.exception if stop is not None else None
            # a failing direct call is the row; else (a Python comparison on a value) every row made so far ran
            row = stop.function_row if stop is not None and stop.function_row is not None else len(first.rows)
            said = _readable(safe_str(exc), first.symbols).splitlines()[0].split(" (")[0][:160] if exc else ""
            reason = (f"symbols cannot follow here ({type(exc).__name__}: {said}); the rows from here on are a "
                      f"concrete trace at {_sizes_text(sizes)}")
            trace = overlay(truth.trace, first, row, reason)
            return Ran(trace, truth.exception)
        from .sizes import nearest_running

        found = nearest_running(target.model, given, first, options, SAMPLE_TRIES)
        if found is not None:
            chosen = run_pass(target.model, given, found.sizes, options)  # the search counted no MACs
            failed_at = first.stop_row()
            why = first.rows[failed_at] if failed_at is not None and failed_at < len(first.rows) else None
            sample_note = (f"sample sizes {_sizes_text(found.sizes)}: at {_sizes_text(sizes)} the model fails"
                           + (f" at {row_label(first.rows, failed_at)}" if why is not None else "")
                           + (f" ({why.source})" if why is not None and why.source else "")
                           + "; `convshape sizes` tells which sizes run")
    trace = to_trace(chosen, target.label, totals, options, given, notes, sample_note)
    return Ran(trace, chosen.stop.exception if chosen.stop else None)


def _sizes_text(sizes: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sizes.items())


def module_target(model: nn.Module, label: str, notes: Sequence[str]) -> Target:
    """A built module (the library's, or an instance in a file): its shape-only copies are made per pass."""
    from .run import trace_module

    return Target(model, label, lambda g, o: trace_module(model, g, o, label, notes))


def source_target(source: Any) -> tuple[Target, list[str]]:
    """A model to build (class or factory): built once on meta (no weights) for the symbolic passes; a small
    one is built once more on the cpu (its own init, seeded) for the concrete passes that check failures."""
    from .run import SMALL_MODEL_BYTES, _seeded, state_bytes, trace_module, trace_source

    if source.is_instance:
        return module_target(source.obj, source.label, source.notes), []
    model, how = source.build_meta_or_cpu()
    built: list[nn.Module] = []

    def run_concrete(g: Inputs, o: Any) -> Any:
        if o.device != "auto" or state_bytes(model) > SMALL_MODEL_BYTES:
            return trace_source(source, g, o)
        if not built:
            with _seeded(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                built.append(source.build("cpu"))
        return trace_module(built[0], g, o, source.label)

    return Target(model, source.label, run_concrete), [how] if how else []


def trace_module_symbolic(model: nn.Module, given: Inputs, options: Any, label: str, notes: Sequence[str]) -> Any:
    """A built module traced with symbolic sizes; never changed."""
    return trace_symbolic(module_target(model, label, notes), given, options, notes)


def trace_source_symbolic(source: Any, given: Inputs, options: Any, notes: Sequence[str]) -> Any:
    """A model to build, traced with symbolic sizes."""
    target, more = source_target(source)
    return trace_symbolic(target, given, options, [*notes, *more])
