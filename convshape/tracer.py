"""One forward pass with hooks, recorded as a :class:`~convshape.records.Trace`.

Two interceptors, both installed in ``__enter__`` and removed in ``__exit__`` whatever happens:

* every module call reaches the recorder through ``Module._call_impl``, whose code is a trampoline to
  ``Recorder._call`` for the pass (a container before its children; see ``_TRAMPOLINE``);
* a :class:`torch.overrides.TorchFunctionMode` sees every torch function and tensor method. A call
  is kept as a row only when the user's own code made it directly; calls made inside torch's own
  modules (the ``F.conv2d`` inside ``nn.Conv2d.forward``) fold into that module's row.
"""

from __future__ import annotations

import contextvars
import functools
import os
import sys
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import CodeType, FrameType, FunctionType, TracebackType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as nn_module
from torch.overrides import TorchFunctionMode

from . import diagnose
from .cells import place
from .costs import DISPATCH, PLANS, CostCounter, plan
from .leaves import ZERO, layer_plan
from .oplabels import op_label
from .params import numel, unsized
from .paths import OWN_DIR, TORCH_DIR, is_user_file
from .records import Row, Shape
from .reuse import Template, input_state, module_state, output_parts, sibling_runs
from .structure import Structure, walk
from .tensors import DTYPE_NAMES, PLAIN_TYPES, dtype_name, has_tensor, jsonable, tensors_in

# torch files that only dispatch a call onward: a call passing through them is still the user's own.
_THIN_WRAPPERS = tuple(
    os.path.join(TORCH_DIR, p)
    for p in ("overrides.py", "_jit_internal.py", "nn/functional.py", "functional.py", "_tensor.py")
)
_LINEAR = F.linear
_TENSOR = torch.Tensor
_NO_TORCH_FUNCTION = torch._C.DisableTorchFunction
_PARAMETER = nn.Parameter
_MODES = torch._C._len_torch_function_stack
_MODE_AT = torch._C._get_function_stack_at
_POP_MODE = torch._C._pop_torch_function_stack
_PUSH_MODE = torch._C._push_on_torch_function_stack
_PRE_HOOKS = nn_module._global_forward_pre_hooks
_POST_HOOKS = nn_module._global_forward_hooks
# Row(...) goes through the NamedTuple's generated __new__ (defaults, keywords): a function row gives every field
_new_row = tuple.__new__


@dataclass(eq=False, slots=True)
class _Pending:
    """A row under construction; frozen into a :class:`Row` once the trace ends."""

    index: int
    kind: str
    name: str
    op: str
    depth: int
    input_shapes: tuple[Shape, ...]
    params: int
    source: str | None
    parent: int | None
    inputs_from: tuple[int | None, ...]
    call: int = 0
    module: nn.Module | None = None
    output_shapes: tuple[Shape, ...] = ()
    output_dtypes: tuple[str, ...] = ()
    failed: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)
    own_flops: int | None = 0  # ops run by the module's own code (torch-internal calls folded in)
    alloc_bytes: int = 0
    site: int | None = None
    frames: tuple[tuple[str, int, int, str, int, int], ...] = ()
    priced: Any = None  # a torch leaf run without the mode (leaves.py): ZERO or the formula of its one priced call

    def freeze(self, flops: int | None = None) -> Row:
        return _new_row(Row, (self.index, self.kind, self.name, self.op, self.depth, self.input_shapes,
                              self.output_shapes, self.output_dtypes, self.params, self.source, self.parent,
                              self.inputs_from, self.call, self.failed, self.attrs, flops,
                              None if flops is None else flops // 2, self.alloc_bytes, self.site, self.frames))


_NO_TENSOR = PLAIN_TYPES | {torch.Size, torch.dtype, torch.device}  # x.size(), x.dim(), x.dtype: no tensor inside

# (id(code), instruction) -> (code, "file.py:12"): the same few call sites, again and again (a frame's line number
# is decoded from its instruction on every read; the instruction is not). Keyed by id: a code object hashes its
# constants on every lookup (0.7 µs for torch's Module._call_impl); the value holds the code, so its id stays its own.
_WHERE: dict[tuple[int, int], tuple[CodeType, str]] = {}


def _where(frame: FrameType | None) -> str | None:
    if frame is None:
        return None
    code = frame.f_code
    key = (id(code), frame.f_lasti)
    known = _WHERE.get(key)
    if known is not None:
        return known[1]
    where = place(code.co_filename, frame.f_lineno)
    if len(_WHERE) > 100_000:  # code made again and again (a notebook re-running cells): start over
        _WHERE.clear()
    if not where.startswith("cell ["):  # a cell's number changes when the same code runs again
        _WHERE[key] = (code, where)
    return where


_MODULE_MACHINERY = os.path.join(TORCH_DIR, "nn", "modules", "module.py")
# The frame of Module.__call__ between _call_impl and the module's caller (torch 2.x: _wrapped_call_impl), skipped
# by identity before _module_caller looks up what is left
_WRAPPED = nn.Module._wrapped_call_impl.__code__


# What a frame's code is, decided once per code object (a trace asks for every call, up the same few frames);
# keyed by id(code) like _WHERE, the value holding the code
_LOOK_OUT, _TORCH, _USER = 0, 1, 2
_MODULE_FRAMES: dict[int, tuple[int, CodeType]] = {}
_FUNCTION_FRAMES: dict[int, tuple[int, CodeType]] = {}


def _module_frame(filename: str) -> int:
    if filename == _MODULE_MACHINERY or filename.startswith(OWN_DIR):
        return _LOOK_OUT
    return _TORCH if filename.startswith(TORCH_DIR) else _USER


def _function_frame(filename: str) -> int:
    if filename.startswith(TORCH_DIR):
        return _LOOK_OUT if filename.startswith(_THIN_WRAPPERS) else _TORCH
    return _TORCH if filename.startswith(OWN_DIR) else _USER


def _classified(frames: dict[int, tuple[int, CodeType]], classify: Callable[[str], int], code: CodeType) -> int:
    if len(frames) > 100_000:  # code made again and again (a notebook re-running cells): start over
        frames.clear()
    kind = classify(code.co_filename)
    frames[id(code)] = (kind, code)
    return kind


def _caller(frame: FrameType | None, frames: dict[int, tuple[int, CodeType]], classify: Callable[[str], int]
            ) -> FrameType | None:
    """The first frame outward that ``classify`` does not look past: a user frame, or None for torch's."""
    while frame is not None:
        code = frame.f_code
        known = frames.get(id(code))
        kind = known[0] if known is not None else _classified(frames, classify, code)
        if kind:
            return frame if kind == _USER else None
        frame = frame.f_back
    return None


def _module_caller(frame: FrameType | None) -> FrameType | None:
    """The user frame that called a module, or None when torch's code (a Sequential) called it."""
    return _caller(frame, _MODULE_FRAMES, _module_frame)


def _direct_caller(frame: FrameType | None) -> FrameType | None:
    """The user frame that called a torch function directly, or None when torch's own code did.

    Frames in torch's thin dispatch wrappers (``F.relu`` -> ``handle_torch_function``) are skipped;
    any other torch frame on the way (``nn.Conv2d.forward``) means the call is torch-internal.
    """
    return _caller(frame, _FUNCTION_FRAMES, _function_frame)


_ATTR_ORDER = {key: i for i, key in enumerate(diagnose.LAYER_ATTRS)}
_ATTR_KEYS = frozenset(_ATTR_ORDER)
_ORDERED: dict[frozenset[str], tuple[str, ...]] = {}  # a set of layer arguments, in the order they show
_SCALARS = frozenset({bool, int, float, str})


def layer_attrs(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments users reason about, read from the instance's own attributes."""
    own = vars(module)  # plain attributes only: no Module.__getattr__ (and its AttributeError) per miss
    attrs: dict[str, Any] = {}
    keys = _ATTR_KEYS.intersection(own)  # one pass in C over the instance's attributes
    if keys:
        ordered = _ORDERED.get(keys)
        if ordered is None:
            ordered = _ORDERED[keys] = tuple(sorted(keys, key=_ATTR_ORDER.__getitem__))
        for key in ordered:
            value = own[key]
            kind = type(value)
            if kind in _SCALARS:
                attrs[key] = value
            elif kind is tuple:  # kernel_size=(3, 3) and the like: jsonable's answer, with one call per tuple
                attrs[key] = [v if type(v) in PLAIN_TYPES else jsonable(v) for v in value]
            elif isinstance(value, (bool, int, float, str, tuple, list)):
                attrs[key] = jsonable(value)
    if "bias" in own and isinstance(own["bias"], bool):
        attrs["bias"] = own["bias"]  # nn.LSTM keeps a bool
    else:
        parameters = own.get("_parameters")
        if parameters is not None and "bias" in parameters:
            attrs["bias"] = parameters["bias"] is not None
    return attrs


def raised_by_convshape(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc``'s traceback is convshape's own code: a bug of ours,
    not the user's model failing."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if isinstance(exc, (RecursionError, MemoryError)):
        return False  # the model's recursion or size, even when the last frame was one of our hooks
    return code.co_filename.startswith(OWN_DIR) and code is not _call_through.__code__


# annotate needs each row's chain of user frames; other commands do not pay for it
RECORD_FRAMES: contextvars.ContextVar[bool] = contextvars.ContextVar("convshape_record_frames", default=False)
_COMPREHENSIONS = frozenset({"<listcomp>", "<genexpr>", "<setcomp>", "<dictcomp>"})
_USER_FILE: dict[str, bool] = {}


def _user_frames(frame: FrameType | None, serials: dict[int, tuple[FrameType, int]]
                 ) -> tuple[tuple[str, int, int, str, int, int], ...]:
    """The user's frames from ``frame`` outward, up to the first frame of torch or convshape."""
    chain = []
    while frame is not None:
        code = frame.f_code
        user = _USER_FILE.get(code.co_filename)
        if user is None:
            user = _USER_FILE[code.co_filename] = is_user_file(code.co_filename)
        if not user:
            break
        serial = -1
        if code.co_name in _COMPREHENSIONS:  # one frame runs every iteration: tell it from the next one
            held = serials.get(id(frame))
            if held is None or held[0] is not frame:
                held = serials[id(frame)] = (frame, len(serials))
            serial = held[1]
        chain.append((code.co_filename, frame.f_lineno, frame.f_lasti, code.co_qualname, code.co_firstlineno,
                      serial))
        frame = frame.f_back
    return tuple(chain)


_NONE_LITERALS = frozenset({slice, type(Ellipsis), torch.device})  # literals that jsonable makes None


def _literal(value: Any, tensors: list[torch.Tensor]) -> Any:
    """``jsonable(value)``, with the tensors in it added to ``tensors`` as ``tensors_in`` finds them: a dtype, a
    slice, a tuple of numbers (``x.view((2, 3))``, ``x[..., :4]``) or a list of plain tensors without either scan."""
    kind = type(value)
    if kind is torch.dtype:
        return DTYPE_NAMES.get(value) or dtype_name(value)
    if kind in _NONE_LITERALS:
        return None
    mark = len(tensors)
    if kind is tuple or kind is list or kind is torch.Size:
        items: list[Any] = []
        for v in value:
            item = type(v)
            if item in PLAIN_TYPES:
                items.append(v)
            elif item is _TENSOR:
                tensors.append(v)
                items.append(None)
            elif item in _NONE_LITERALS:
                items.append(None)
            else:
                break
        else:
            return items
        del tensors[mark:]  # something else inside: the general scans, from the start
    tensors_in(value, tensors)
    return jsonable(value)


def _plus(a: int | None, b: int | None) -> int | None:
    """A sum of FLOP counts where None (unknown) wins: unknown plus anything is unknown."""
    return None if a is None or b is None else a + b


def _call_through(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call the intercepted function: an error raised here is the model's (or torch's), not ours."""
    return func(*args, **kwargs)


current: Recorder | None = None  # the recorder of the pass in progress, read by the progress line
# Module._call_impl runs every module call. For the pass its code is swapped for _TRAMPOLINE's, which hands the call
# to the recorder's _call under a name put in the globals of torch's module.py for the pass (_HANDLER); the recorder
# runs _call_impl's own code from a function of its own (_inner). Global hooks sent every call down the slow path of
# _call_impl (inner(), hook lists): a module call cost 27 µs over the plain forward with them and 19 µs without
# (benchmarks/ab.py, the ReLU chain). Not a class attribute either: setting one on nn.Module invalidates the
# attribute caches of every subclass, 47 µs a set with transformers imported (__call__, a slot: 217 µs a trace).
_CALL_IMPL_FN = nn.Module._call_impl  # torch's function, whose code is swapped
_CALL_IMPL_CODE = _CALL_IMPL_FN.__code__
_HANDLER = "_convshape_module_call"
_TORCH_GLOBALS = _CALL_IMPL_FN.__globals__


def _trampoline(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    return _convshape_module_call(self, *args, **kwargs)  # type: ignore[name-defined]  # noqa: F821 (see above)


_TRAMPOLINE = _trampoline.__code__
_COPIES: dict[int, tuple[CodeType, Callable[..., Any]]] = {}  # id(code) -> a function of its own running it


def _function_of(code: CodeType) -> Callable[..., Any]:
    """A function running ``code`` as ``_call_impl`` does: its globals, defaults and name."""
    known = _COPIES.get(id(code))
    if known is None:
        fn = FunctionType(code, _TORCH_GLOBALS, _CALL_IMPL_FN.__name__, _CALL_IMPL_FN.__defaults__,
                          _CALL_IMPL_FN.__closure__)
        fn.__kwdefaults__ = _CALL_IMPL_FN.__kwdefaults__
        known = _COPIES[id(code)] = (code, fn)
    return known[1]


_inner: Callable[..., Any] = _function_of(_CALL_IMPL_CODE)  # _call_impl's code as it was before the pass
_Taken = tuple[CodeType, Any, Callable[..., Any]]  # what _take_call_impl found: code, handler, _inner


def _take_call_impl(handler: Callable[..., Any]) -> _Taken:
    """``Module._call_impl``'s code becomes the trampoline to ``handler``; :func:`_give_back_call_impl` undoes it."""
    global _inner
    code = _CALL_IMPL_FN.__code__
    taken = (code, _TORCH_GLOBALS.get(_HANDLER), _inner)
    if code is not _TRAMPOLINE:  # (a recorder inside another's pass: the outer one's _inner stays)
        _inner = _function_of(code)
    _TORCH_GLOBALS[_HANDLER] = handler
    _CALL_IMPL_FN.__code__ = _TRAMPOLINE
    return taken


def _give_back_call_impl(taken: _Taken) -> None:
    global _inner
    code, handler, _inner = taken
    _CALL_IMPL_FN.__code__ = code
    if handler is None:
        _TORCH_GLOBALS.pop(_HANDLER, None)
    else:
        _TORCH_GLOBALS[_HANDLER] = handler


MAX_ROWS = 1_000_000


class TooManyCalls(BaseException):
    """Raised from inside a forward pass that made more than ``max_rows`` calls: a forward that loops without
    end would otherwise fill the memory (a BaseException, so a model's ``except Exception`` cannot swallow it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


@dataclass(frozen=True)
class Stop:
    """What the recorder saw when the forward pass stopped: plain facts, worded by :mod:`convshape.failure`."""

    exception: BaseException
    function_row: int | None  # the user's direct call that raised, when it was one
    module_row: int | None  # the innermost module call still open


class Recorder(TorchFunctionMode):
    """Records module calls and the user's direct torch calls during one forward pass.

    With ``repair_linear`` a Linear whose input does not match its ``in_features`` returns an output
    of the declared ``out_features`` instead of failing, so one run reaches every Linear.
    """

    def __init__(self, root: nn.Module, repair_linear: bool = False, max_rows: int = MAX_ROWS,
                 costs: bool = False, found: Structure | None = None, reuse: bool = False) -> None:
        super().__init__()
        self.costs = costs
        self.unknown_cost_ops: dict[str, str | None] = {}  # aten op -> where it ran
        self._counter: CostCounter | None = None  # prices the calls no formula covers (costs.plan), in a pass
        self._counted: int | None = 0  # FLOPs the counter has seen in the call it is counting
        self.max_rows = max_rows  # a pass that makes more calls than this stops (a forward that never ends)
        found = found if found is not None else walk(root)
        self.names: dict[int, str] = found.names  # a module reachable under several names: its first one
        self.saw_new_modules = False
        self.repair_linear = repair_linear
        self.rows: list[_Pending | Row] = []
        self.stack: list[_Pending] = []
        self._producers: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}
        self._calls: dict[int, int] = {}
        # Counted before the mode is active: hashing parameters under a TorchFunctionMode is slow.
        self._param_counts: dict[int, int] = found.subtree_params()
        self._static: dict[int, tuple[str, str, dict[str, Any], bool]] = {}  # id(module) -> _static_of(module)
        self.input_ids: set[int] = set()  # the model's input tensors (alive for the whole pass)
        self._held = {id(t) for t in (*found.parameters, *found.buffers)}  # storage that existed before
        self._bases: dict[int, weakref.ref[torch.Tensor]] = {}  # view bases already counted
        self._busy = False
        self._failed_fn: Row | None = None
        self._outer: tuple[Recorder | None, _Taken] = (None, (_CALL_IMPL_CODE, None, _inner))
        self.frames = RECORD_FRAMES.get()
        self._serials: dict[int, tuple[FrameType, int]] = {}  # comprehension frames seen (held for the pass)
        self._off: _Pending | None = None  # the torch leaf running with this mode taken off the stack
        # reuse.py: identical blocks replayed from the first one's rows (a concrete trace on meta)
        self._runs = sibling_runs(found) if reuse and not self.frames and not repair_linear else {}
        self._entries: dict[int, tuple[_Pending, Any, bool, Row | None]] = {}
        self._installed: dict[int, nn.Module] = {}  # blocks with a replayer in their call slot
        self.templates: list[Template] = []

    # -- interception lifecycle -------------------------------------------------------------
    def __enter__(self) -> Recorder:
        global current
        self._outer = (current, _take_call_impl(self._call))
        self._counter = CostCounter(self._add_flops)
        current = self
        try:
            return super().__enter__()
        except BaseException:
            self._restore()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            for block in self._installed.values():  # the replayers come off: the model is as it was
                vars(block).pop("_compiled_call_impl", None)
            self._installed = {}
            if self._off is None:
                super().__exit__(exc_type, exc, tb)
            else:  # a BaseException left a leaf while the mode was off the stack: it is not there to pop
                self._off = None
        finally:
            self._restore()

    def _restore(self) -> None:
        global current
        outer, taken = self._outer
        _give_back_call_impl(taken)
        self._counter = None  # it holds a bound method of this recorder: no cycle outlives the pass
        current = outer

    def _add_flops(self, flops: int | None, op: str) -> None:
        """The sink of the dispatch counter: one aten op of the call being counted."""
        if flops is None:
            where = self.stack[-1].name if self.stack else None
            self.unknown_cost_ops.setdefault(op, where)
        self._counted = _plus(self._counted, flops)

    # -- bookkeeping --------------------------------------------------------------------------
    def _inputs(self, tensors: Sequence[torch.Tensor]) -> tuple[tuple[Shape, ...], tuple[int | None, ...], int]:
        """Shapes of the input tensors, the row that produced each, and the elements of any Parameters."""
        producers = self._producers
        if len(tensors) == 1 and type(tensors[0]) is _TENSOR:  # the common call: one plain tensor
            t = tensors[0]
            entry = producers.get(id(t))
            return (tuple(t.shape),), (entry[1] if entry is not None and entry[0]() is t else None,), 0
        shapes, sources = [], []
        params = 0
        for t in tensors:
            shapes.append(tuple(t.shape))
            entry = producers.get(id(t))
            sources.append(entry[1] if entry is not None and entry[0]() is t else None)
            kind = type(t)
            if kind is not torch.Tensor and (kind is _PARAMETER or isinstance(t, nn.Parameter)):
                params += t.numel()  # nn.Parameter's metaclass makes isinstance slow: most tensors skip it
        return tuple(shapes), tuple(sources), params

    def _produced(self, value: Any, index: int, keep_inner: bool
                  ) -> tuple[tuple[Shape, ...], tuple[str, ...], int]:
        """Record ``index`` as the producer of each tensor in ``value``.

        Returns their shapes, dtypes, and the bytes this call newly allocated: outputs that are not views
        (``_base``), not model inputs, and not tensors that existed before the call (in-place results).
        """
        if type(value) is _TENSOR:  # the common output: one plain tensor
            key = id(value)
            entry = self._producers.get(key)
            existed = entry is not None and entry[0]() is value
            allocated = 0 if existed or key in self.input_ids else self._new_storage_bytes(value)
            if not (keep_inner and existed and entry[1] > index):  # type: ignore[index]
                self._producers[key] = (weakref.ref(value), index)
            dtype = value.dtype
            return (tuple(value.shape),), (DTYPE_NAMES.get(dtype) or dtype_name(dtype),), allocated
        shapes, dtypes = [], []
        allocated = 0
        for t in tensors_in(value):
            shapes.append(tuple(t.shape))
            dtypes.append(dtype_name(t.dtype))
            key = id(t)
            entry = self._producers.get(key)
            existed = entry is not None and entry[0]() is t
            if not existed and key not in self.input_ids:
                allocated += self._new_storage_bytes(t)
            if keep_inner and existed and entry[1] > index:  # type: ignore[index]
                continue  # made by a layer inside this one: the inner one is the more useful origin
            self._producers[key] = (weakref.ref(t), index)
        return tuple(shapes), tuple(dtypes), allocated

    def _new_storage_bytes(self, t: torch.Tensor) -> int:
        """Bytes of ``t``'s storage if no earlier row, input, parameter or buffer holds it; a view counts
        its base's storage, once (``nn.MultiheadAttention(batch_first=True)`` returns a view of storage it
        allocated inside)."""
        base = t._base
        if base is None:
            return t.numel() * t.element_size()
        key = id(base)
        entry = self._producers.get(key)
        counted = self._bases.get(key)
        if (entry is not None and entry[0]() is base) or (counted is not None and counted() is base) or \
                key in self.input_ids or key in self._held:
            return 0
        self._bases[key] = weakref.ref(base)
        return base.numel() * base.element_size()

    def _params_of(self, module: nn.Module) -> int:
        key = id(module)
        if key not in self._param_counts:
            params = list(module.parameters())
            count = sum(numel(p) for p in params)
            if any(unsized(p) for p in params):
                return count  # a lazy layer: counted again once its forward has sized it
            self._param_counts[key] = count
        return self._param_counts[key]

    # -- module calls (_call) ---------------------------------------------------------------------
    def _enter_module(self, module: nn.Module, args: tuple[Any, ...], frame: FrameType | None) -> None:
        producers = self._producers
        if len(args) == 1 and type(args[0]) is _TENSOR:  # layer(x), the commonest call: its one tensor, no scan
            x = args[0]
            entry = producers.get(id(x))
            shapes: tuple[Shape, ...] = (tuple(x.shape),)
            sources: tuple[int | None, ...] = (entry[1] if entry is not None and entry[0]() is x else None,)
        else:
            shapes, sources, _ = self._inputs(tensors_in(args))
        key = id(module)
        calls = self._calls
        call = calls.get(key, 0)
        calls[key] = call + 1
        known = self._static.get(key)
        if known is None or known[3]:
            known = self._static[key] = self._static_of(module)
        stack = self.stack
        rows = self.rows
        caller = source = site = parent = None
        if stack:
            parent = stack[-1].index
            while frame is not None and frame.f_code is _WRAPPED:
                frame = frame.f_back  # compared by identity: a code object hashes and compares its contents
            if frame is not None:
                code = frame.f_code
                kind = _MODULE_FRAMES.get(id(code))  # the caller is most often the frame right there: a user's line
                caller = frame if kind is not None and kind[0] == _USER else _module_caller(frame)
                if caller is not None:
                    site = caller.f_lasti
                    where = _WHERE.get((id(caller.f_code), site))
                    source = where[1] if where is not None else _where(caller)
        params = self._param_counts.get(key)
        row = _Pending(len(rows), "module", known[0], known[1], len(stack), shapes,
                       self._params_of(module) if params is None else params, source, parent, sources, call, module,
                       (), (), False, known[2], 0, 0, site)
        if self.frames and caller is not None:
            row.frames = _user_frames(caller, self._serials)
        rows.append(row)
        stack.append(row)
        if self._runs and call == 0 and key in self._runs:  # the first of a run of blocks: a template, maybe
            self._entries[key] = (row, input_state(args, {}), self.saw_new_modules, self._failed_fn)
        if not (_PRE_HOOKS or _POST_HOOKS or self.repair_linear):  # no one's global hooks run inside this call
            priced = layer_plan(module, args)
            if priced is not DISPATCH:
                modes = _MODES()
                if modes and _MODE_AT(modes - 1) is self:  # (an empty stack: torch segfaults)
                    _POP_MODE()  # torch's own calls in this leaf are known: no need to see them
                    row.priced = priced
                    self._off = row

    def _call(self, module: nn.Module, *args: Any, **kwargs: Any) -> Any:
        """A module call (``_call_impl``, through _TRAMPOLINE), recorded around ``_call_impl``'s own code."""
        if self._busy:  # convshape's own calls, made while it records
            return _inner(module, *args, **kwargs)
        if self._off is not None:  # a module called from inside a leaf's forward (the user's patched code there)
            self._mode_on()
        if len(self.rows) >= self.max_rows:
            raise TooManyCalls(self.max_rows)
        self._busy = True
        try:
            with _NO_TORCH_FUNCTION():  # plain attribute access: t.shape would dispatch to this mode
                self._enter_module(module, args, sys._getframe(2))  # the frame that called _call_impl
        finally:
            self._busy = False
        try:
            output = _inner(module, *args, **kwargs)
        except BaseException:
            off = self._off
            if off is not None and off.module is module:  # a leaf that took the mode off raised
                self._mode_on()
            raise  # the row stays open: the failure, or the caller's except, settles it
        off = self._off
        if off is not None and off.module is module:  # a leaf that took the mode off returned
            _PUSH_MODE(self)
            self._off = None
        self._busy = True
        try:
            with _NO_TORCH_FUNCTION():
                self._leave_module(module, args, kwargs, output)
        finally:
            self._busy = False
        return output

    def _mode_on(self) -> None:
        _PUSH_MODE(self)
        self._off = None

    def _static_of(self, module: nn.Module) -> tuple[str, str, dict[str, Any], bool]:
        """(name, class name, layer arguments, whether to read them again next call): once per module."""
        op = type(module).__name__
        name = self.names.get(id(module))
        if name is None:
            self.saw_new_modules = True  # made in forward: not in the tree walked before the pass
            name = f"<{op}>"
        # a lazy layer's arguments change when its first forward sizes it
        return name, op, layer_attrs(module), op.startswith("Lazy")

    def _leave_module(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        stack = self.stack
        # Pop rows whose modules raised and were caught by the user's code on the way here.
        while stack and stack[-1].module is not module:
            stack.pop()
        if not stack:
            return
        row = stack.pop()
        if row.op.startswith("Lazy") or id(module) not in self._param_counts:
            row.params = self._params_of(module)
        if kwargs:
            shapes, sources, _ = self._inputs(tensors_in(kwargs))
            row.input_shapes += shapes
            row.inputs_from += sources
        if type(output) is _TENSOR:  # the commonest output, written out: _produced(output, row.index, True)
            key = id(output)
            producers = self._producers
            made = producers.get(key)
            if made is None or made[0]() is not output:  # new here
                if key not in self.input_ids:
                    row.alloc_bytes = output.numel() * output.element_size() if output._base is None else \
                        self._new_storage_bytes(output)
                producers[key] = (weakref.ref(output), row.index)
            elif made[1] <= row.index:  # existed: unless a layer inside made it (the more useful origin)
                producers[key] = (made[0], row.index)
            dtype = output.dtype
            row.output_shapes = (tuple(output.shape),)
            row.output_dtypes = (DTYPE_NAMES.get(dtype) or dtype_name(dtype),)
        else:
            row.output_shapes, row.output_dtypes, row.alloc_bytes = self._produced(output, row.index, keep_inner=True)
        row.module = None
        priced = row.priced
        if priced is not None and priced is not ZERO and self.costs:
            row.own_flops = priced(row.input_shapes[0], output)
        if self._entries:
            entry = self._entries.pop(id(module), None)
            if entry is not None and entry[0] is row:
                self._template(module, row, entry, args, kwargs, output)

    # -- identical blocks (reuse.py) -----------------------------------------------------------
    def _template(self, block: nn.Module, row: _Pending, entry: tuple[_Pending, Any, bool, Row | None],
                  args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        """The first block of a run has finished: if its rows can stand for its later siblings, put a replayer
        in the call slot of each sibling that is the same."""
        _, before, new_modules, failed_fn = entry
        if before is None or new_modules != self.saw_new_modules or failed_fn is not self._failed_fn:
            return
        after = input_state(args, kwargs)
        if after is None or after[0][:len(before[0])] != before[0]:
            return  # inputs that are not plain, or a forward that resized its inputs in place
        outputs = output_parts(output)
        state = module_state(block)
        if state is None or outputs is None:
            return
        rows = self.rows[row.index:]
        prefix = row.name + "."
        relative: list[str | None] = []
        calls: dict[str, int] = {}
        for r in rows:
            if isinstance(r, Row):
                relative.append(None)
                continue
            rel = "" if r is row else r.name[len(prefix):] if r.name.startswith(prefix) else None
            if rel is None or r.failed or r.call != calls.get(rel, 0):
                return  # a module from outside the block, or one called before this block ran
            calls[rel] = r.call + 1
            relative.append(rel)
        start = row.index
        outer = set(row.inputs_from)
        if any(s is not None and s < start and s not in outer for r in rows[1:] for s in r.inputs_from):
            return  # a row read a tensor that came neither from the block's inputs nor from its own rows
        tensors = after[1]
        made: list[tuple[int | None, tuple[int, ...], tuple[int, ...], torch.dtype, int | None] | None] = []
        for t in outputs[1]:
            if t is None:
                made.append(None)
                continue
            same = next((j for j, x in enumerate(tensors) if x is t), None)
            entry_ = self._producers.get(id(t))
            source = entry_[1] if entry_ is not None and entry_[0]() is t else None
            if same is None and (source is None or source < start or t._base is not None):
                return  # an output the block did not make, or a view (a new tensor has no offset, no shared storage)
            made.append((same, tuple(t.shape), t.stride(), t.dtype, source))
        template = Template(block, row.name, state, after[0], tensors, row.inputs_from, start, rows, relative,
                            outputs[0], tuple(made), calls)
        used = False
        for sibling in self._runs.get(id(block), ()):
            key = id(sibling)
            if self._calls.get(key, 0) or self.names.get(key) is None:
                continue
            # a replayer from an earlier template comes off for the comparison (this template is the nearer one)
            earlier = vars(sibling).pop("_compiled_call_impl", None) if key in self._installed else None
            if "_compiled_call_impl" not in vars(sibling) and module_state(sibling) == state:
                object.__setattr__(sibling, "_compiled_call_impl", functools.partial(self._replay, sibling, template))
                self._installed[key] = sibling
                used = True
            elif earlier is not None:
                object.__setattr__(sibling, "_compiled_call_impl", earlier)
        if used:
            self.templates.append(template)

    def _replay(self, block: nn.Module, template: Template, *args: Any, **kwargs: Any) -> Any:
        """A sibling's call: its rows and outputs from the template, or its own forward when anything differs."""
        with _NO_TORCH_FUNCTION():
            out = self._replayed(block, template, args, kwargs)
        if out is None:  # it runs, as itself: and may be the first of the blocks after it
            vars(block).pop("_compiled_call_impl", None)
            del self._installed[id(block)]
            return block._call_impl(*args, **kwargs)
        return out

    def _replayed(self, block: nn.Module, template: Template, args: tuple[Any, ...], kwargs: dict[str, Any]
                  ) -> Any:
        if self._busy or self._off is not None or current is not self or _PRE_HOOKS or _POST_HOOKS or \
                len(self.rows) + len(template.rows) > self.max_rows:
            return None
        modes = _MODES()
        if not modes or _MODE_AT(modes - 1) is not self:
            return None  # another mode above this one: the block's own calls would be seen differently
        given = input_state(args, kwargs)
        if given is None or given[0] != template.inputs:
            return None
        name = self.names.get(id(block))
        if name is None:
            return None
        subs = dict(block.named_modules(remove_duplicate=False))
        for rel in template.calls:
            sub = subs.get(rel)
            if sub is None or self._calls.get(id(sub), 0) or \
                    self.names.get(id(sub)) != (name if rel == "" else f"{name}.{rel}"):
                return None
        offset = len(self.rows) - template.start
        moved: dict[int | None, int | None] = {None: None}
        for old, new_t, was in zip(template.input_sources, given[1], template.input_tensors, strict=True):
            if new_t is was:
                new = old
            else:
                entry = self._producers.get(id(new_t))
                new = entry[1] if entry is not None and entry[0]() is new_t else None
            if moved.setdefault(old, new) != new:
                return None  # two inputs from one row in the first block, from two rows here
        start = template.start

        def source(s: int | None) -> int | None:
            return s + offset if s is not None and s >= start else moved.get(s, s)

        parent = self.stack[-1] if self.stack else None
        caller = _module_caller(sys._getframe(1)) if parent is not None else None
        shift = len(self.stack) - template.rows[0].depth
        copies: list[_Pending | Row] = []
        for r, part in zip(template.rows, template.relative, strict=True):
            if isinstance(r, Row):
                copies.append(r._replace(index=r.index + offset, depth=r.depth + shift, parent=source(r.parent),
                                         inputs_from=tuple(source(s) for s in r.inputs_from)))
                continue
            first = part == ""
            copies.append(_Pending(
                r.index + offset, "module", name if first else f"{name}.{part}", r.op, r.depth + shift,
                r.input_shapes, r.params, _where(caller) if first else r.source,
                (parent.index if parent is not None else None) if first else source(r.parent),
                tuple(source(s) for s in r.inputs_from), r.call, None, r.output_shapes, r.output_dtypes, False,
                r.attrs, r.own_flops, r.alloc_bytes, (caller.f_lasti if caller is not None else None) if first
                else r.site))
        outs: list[torch.Tensor | None] = []
        for spec in template.outputs:
            if spec is None:
                outs.append(None)
                continue
            same, shape, stride, dtype, made_by = spec
            t = given[1][same] if same is not None else torch.empty_strided(shape, stride, dtype=dtype, device="meta")
            self._producers[id(t)] = (weakref.ref(t), made_by + offset if made_by is not None else copies[0].index)
            outs.append(t)
        self.rows.extend(copies)
        for rel, count in template.calls.items():
            self._calls[id(subs[rel])] = count
        template.replayed.append(name)
        return tuple(outs) if template.is_tuple else outs[0]

    # -- functions ------------------------------------------------------------------------------
    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if self._busy:
            return func(*args, **kwargs)
        if func is _LINEAR and self.repair_linear:
            repaired = self._repair_linear(args, kwargs)
            if repaired is not None:
                return repaired
        frame = sys._getframe(1)
        price: Any
        if self.costs:
            try:  # plan(func, args, kwargs), its commonest answers first: None (priced zero) or DISPATCH
                price = PLANS[func]
            except (KeyError, TypeError):  # a function not seen yet, or an unhashable callable
                price = plan(func, args, kwargs)
            else:
                if price is not None and price is not DISPATCH:
                    price = plan(func, args, kwargs)
        else:
            price = None
        try:
            if price is DISPATCH:
                out, flops = self._count(func, args, kwargs)
            else:
                out = _call_through(func, args, kwargs)
                if price is None:
                    flops = 0
                else:
                    with _NO_TORCH_FUNCTION():  # the formula reads shapes: not through the modes below
                        flops = price(args, kwargs, out)
        except Exception:
            caller = _direct_caller(frame)
            if caller is not None:
                self._failed_fn = self._function_row(func, args, kwargs, None, caller)
            raise
        if type(out) is _TENSOR:
            # the caller is most often the frame right above: a user's line, classified before
            known = _FUNCTION_FRAMES.get(id(frame.f_code))
            caller = frame if known is not None and known[0] == _USER else _direct_caller(frame)
            if caller is not None:
                if len(args) == 1 and not kwargs and type(args[0]) is _TENSOR:  # f(x), the commonest call
                    if _MODES():  # modes below this one (torch.device("meta")) need not see t.shape
                        with _NO_TORCH_FUNCTION():
                            self._unary_row(func, args[0], out, caller, flops)
                    else:  # nothing below this mode (which torch has taken off the stack while it runs): no guard
                        self._unary_row(func, args[0], out, caller, flops)
                else:
                    with _NO_TORCH_FUNCTION():  # modes below this one (torch.device("meta")) need not see t.shape
                        self._function_row(func, args, kwargs, out, caller, flops)
                return out
        elif type(out) not in _NO_TENSOR and has_tensor(out):
            caller = _direct_caller(frame)
            if caller is not None:
                with _NO_TORCH_FUNCTION():
                    self._function_row(func, args, kwargs, out, caller, flops)
                return out
        if (type(flops) is not int or flops != 0) and self.stack:  # a SymInt (symbolic sizes): no guard
            row = self.stack[-1]
            row.own_flops = _plus(row.own_flops, flops)
        return out

    def _count(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, int | None]:
        """Run one call under the dispatch counter: the FLOPs of every aten op it executes."""
        outer, self._counted = self._counted, 0
        try:
            with self._counter:  # type: ignore[union-attr]  # set for the length of the pass
                out = _call_through(func, args, kwargs)
            return out, self._counted
        finally:
            self._counted = outer

    def _unary_row(self, func: Any, x: torch.Tensor, out: torch.Tensor, caller: FrameType, flops: int | None) -> None:
        """:meth:`_function_row` of ``f(x)``, plain tensors in and out, written out: most function rows are these."""
        rows = self.rows
        index = len(rows)
        if index >= self.max_rows:
            raise TooManyCalls(self.max_rows)
        name, op = op_label(func)
        producers = self._producers
        entry = producers.get(id(x))
        source = entry[1] if entry is not None and entry[0]() is x else None  # (read before out, which may be x)
        key = id(out)
        entry = producers.get(key)
        if (entry is not None and entry[0]() is out) or key in self.input_ids:
            allocated = 0  # an in-place result
        else:
            allocated = out.numel() * out.element_size() if out._base is None else self._new_storage_bytes(out)
        producers[key] = (weakref.ref(out), index)
        dtype = out.dtype
        code = caller.f_code
        site = caller.f_lasti
        known = _WHERE.get((id(code), site))
        stack = self.stack
        counted = flops if self.costs else None
        rows.append(_new_row(Row, (
            index, "function", name, op, len(stack), (tuple(x.shape),), (tuple(out.shape),),
            (DTYPE_NAMES.get(dtype) or dtype_name(dtype),), 0, known[1] if known is not None else _where(caller),
            stack[-1].index if stack else None, (source,), 0, False, {"args": [None]}, counted,
            None if counted is None else counted // 2, allocated, site,
            _user_frames(caller, self._serials) if self.frames else ())))

    def _function_row(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any,
                      caller: FrameType, flops: int | None = 0) -> Row:
        """A function row is complete when made (its output is known): it is frozen at once."""
        rows = self.rows
        index = len(rows)
        if index >= self.max_rows:
            raise TooManyCalls(self.max_rows)
        name, op = op_label(func)
        producers = self._producers
        given: list[Any] = []  # the arguments as literals: tensors and other objects become None
        simple = not kwargs
        if simple:  # plain tensors and plain values (a + b, x.view(2, -1), x * 0.5): one pass, written out
            shape_list: list[Shape] = []
            source_list: list[int | None] = []
            for a in args:
                kind = type(a)
                if kind is _TENSOR:
                    entry = producers.get(id(a))
                    shape_list.append(tuple(a.shape))
                    source_list.append(entry[1] if entry is not None and entry[0]() is a else None)
                    given.append(None)
                elif kind in PLAIN_TYPES:
                    given.append(a)
                else:  # nested, a Parameter, a Size, a dtype...: the general steps below
                    simple = False
                    given = []
                    break
        if simple:
            shapes, sources, params = tuple(shape_list), tuple(source_list), 0
            literal: dict[str, Any] = {"args": given}
        else:
            tensors: list[torch.Tensor] = []
            for a in args:
                kind = type(a)
                if kind is _TENSOR:
                    tensors.append(a)
                    given.append(None)
                elif kind in PLAIN_TYPES:
                    given.append(a)
                else:
                    given.append(_literal(a, tensors))
            literal = {"args": given}
            if kwargs:
                named: dict[str, Any] = {}
                for k, v in kwargs.items():  # the same steps: the tensors after the positional ones, in order
                    kind = type(v)
                    if kind in PLAIN_TYPES:
                        named[k] = v
                    elif kind is _TENSOR:
                        tensors.append(v)
                        named[k] = None
                    else:
                        named[k] = _literal(v, tensors)
                literal["kwargs"] = named
            shapes, sources, params = self._inputs(tensors)
        out_shapes, out_dtypes, allocated = (self._produced(out, index, keep_inner=False) if out is not None
                                             else ((), (), 0))
        stack = self.stack
        counted = flops if self.costs else None
        code = caller.f_code
        site = caller.f_lasti
        known = _WHERE.get((id(code), site))
        row = _new_row(Row, (index, "function", name, op, len(stack), shapes, out_shapes, out_dtypes, params,
                             known[1] if known is not None else _where(caller), stack[-1].index if stack else None,
                             sources, 0, out is None, literal, counted, None if counted is None else counted // 2,
                             allocated, site, _user_frames(caller, self._serials) if self.frames else ()))
        rows.append(row)
        return row

    def _repair_linear(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor | None:
        x = args[0] if args else kwargs.get("input")
        weight = args[1] if len(args) > 1 else kwargs.get("weight")
        if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor) or x.dim() == 0:
            return None
        if x.shape[-1] == weight.shape[-1]:
            return None
        return x.new_zeros((*x.shape[:-1], weight.shape[0]))

    # -- failure --------------------------------------------------------------------------------
    def stop(self, exc: BaseException) -> Stop:
        """The facts of why the forward pass stopped; the innermost open module row is marked failed."""
        fn = self._failed_fn if self._failed_fn is not None and self.rows and self.rows[-1] is self._failed_fn \
            else None
        layer = self.stack[-1] if self.stack else None
        if fn is None and layer is not None:
            layer.failed = True
        return Stop(exc, fn.index if fn is not None else None, layer.index if layer is not None else None)

    def frozen_rows(self) -> tuple[Row, ...]:
        if not self.costs:
            return tuple(r if isinstance(r, Row) else r.freeze() for r in self.rows)
        # Roll FLOPs up: a module's own ops plus everything its children (modules and functions) ran.
        below: dict[int, int | None] = {}
        frozen: list[Row] = [None] * len(self.rows)  # type: ignore[list-item]
        for r in reversed(self.rows):
            if type(r) is Row:
                total = r.flops
                frozen[r.index] = r
            else:
                own, inner = r.own_flops, below.get(r.index, 0)  # _plus(own, inner), written out
                total = None if own is None or inner is None else own + inner
                frozen[r.index] = r.freeze(total)
            parent = r.parent
            if parent is not None:
                got = below.get(parent, 0)
                below[parent] = None if got is None or total is None else got + total
        return tuple(frozen)
