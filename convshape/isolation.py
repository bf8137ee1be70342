"""Run a user's model without changing it or the process around it.

* :func:`stand_in` makes a copy of a model's structure whose tensors live on another device (meta: no
  values at all), so tracing "on meta" never moves or empties the caller's model.
* :class:`Preserved` runs a model in place and puts back what a forward pass may change: training flags
  and buffers written in place.
* :func:`guarded` holds the process-wide state a model's code can reach for the length of a load or a
  trace: ``os._exit`` raises :class:`ModelExit` instead of killing the process; the global random state,
  warnings filters and ``sys.path`` come back as they were; torch.compile'd code runs eagerly (so Dynamo never traces
  convshape's hooks), and a pass stops with :class:`TimedOut` after ``timeout`` seconds.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.signal without its enum conversions
import copy
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, NoReturn

import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from .errors import ConvshapeError
from .params import unsized
from .structure import Structure, set_flags, walk


class ModelExit(BaseException):
    """The model's code called ``sys.exit``, ``exit()`` or ``os._exit``: convshape reports it instead of exiting."""

    def __init__(self, code: object, how: str) -> None:
        super().__init__(code)
        self.code = code
        self.how = how


class TimedOut(BaseException):
    """A load or forward pass ran past ``--timeout`` (a BaseException, so ``except Exception`` can't swallow it)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def _unique_tensors(model: nn.Module) -> Iterator[torch.Tensor]:
    """Parameters, buffers and plain tensor attributes of every module, each once."""
    seen: set[int] = set()
    for module in model.modules():
        for tensor in (*module._parameters.values(), *module._buffers.values(),
                       *(v for v in vars(module).values() if isinstance(v, torch.Tensor))):
            if tensor is not None and id(tensor) not in seen:
                seen.add(id(tensor))
                yield tensor


def _placed(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``: no values on meta, zeros coming from meta, a copy of the values otherwise."""
    if isinstance(tensor, (UninitializedParameter, UninitializedBuffer)):
        # torch's stubs leave out the device and dtype that these constructors take
        return type(tensor)(requires_grad=tensor.requires_grad, device=device, dtype=tensor.dtype)  # type: ignore[call-arg]
    with torch.no_grad():
        if device.type == "meta":
            data = torch.empty_like(tensor, device=device)
        elif tensor.device.type == "meta":
            data = torch.zeros_like(tensor, device=device)  # meta holds no values: zeros, the same every run
        else:
            data = tensor.detach().to(device, copy=True)
    if isinstance(tensor, nn.Parameter):
        return nn.Parameter(data, requires_grad=tensor.requires_grad)
    return data


def stand_in(model: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``model`` whose tensors are on ``device``; the caller's model is not touched.

    Tied tensors stay tied. Only the structure is copied by ``copy.deepcopy``; every tensor is made anew
    by :func:`_placed`, so a large model's weights are never copied on the way to meta.
    """
    memo: dict[int, Any] = {id(t): _placed(t, device) for t in _unique_tensors(model)}
    try:
        return copy.deepcopy(model, memo)
    except Exception as e:
        raise ConvshapeError(
            f"cannot make a {device} copy of {type(model).__name__} to trace ({type(e).__name__}: {e}); "
            "trace it where its parameters are (device=None) or build it on that device"
        ) from e


class Preserved:
    """Run a model in place and restore what a forward pass may change (training flags, buffers written in
    place; :func:`guarded` restores the random state). Parameters a forward changes in place cannot be
    restored: they are listed in ``changed`` so the caller can say so."""

    def __init__(self, model: nn.Module, found: Structure | None = None) -> None:
        self.model = model
        self.found = found if found is not None else walk(model)
        self.changed: list[str] = []

    def __enter__(self) -> Preserved:
        found = self.found
        self._flags = [module.training for module in found.modules]
        with torch.no_grad():  # (a copy with no history: one guard, not a detach() per buffer)
            self._buffers: list[tuple[torch.Tensor, torch.Tensor | None, int]] = [
                (b, None if b.is_meta else b.clone(), b._version)
                for b in found.buffers if not isinstance(b, UninitializedBuffer)]
        self._params = [(p, p._version) for p in found.parameters if not unsized(p)]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        set_flags(self.found.modules, self._flags)
        with torch.no_grad():
            for buffer, saved, version in self._buffers:
                # BatchNorm's kernel updates its running statistics in training mode without bumping _version
                if saved is not None and (buffer._version != version or not torch.equal(buffer, saved)):
                    buffer.copy_(saved)
        changed = {id(p) for p, version in self._params if p._version != version}
        if changed:
            self.changed = [name for name, p in self.model.named_parameters() if id(p) in changed]


def _exit_instead(code: int = 0) -> NoReturn:
    raise ModelExit(code, "os._exit")


def _timed_out(seconds: float) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise TimedOut(seconds)

    return handler


_SWITCH: list[tuple[Callable[[Any], Any], Any] | None] = []  # _stance_setter's answer, once Dynamo is imported


def _stance_setter() -> tuple[Callable[[Any], Any], Any] | None:
    """Dynamo's own stance switch and its "force_eager" stance (what ``torch.compiler.set_stance`` enters, without
    its decorator machinery: a twentieth of the time), or None where this torch has no such internals."""
    if not _SWITCH:
        try:
            from torch._dynamo.eval_frame import DynamoStance, _set_stance
        except ImportError:
            _SWITCH.append(None)
        else:
            _SWITCH.append((_set_stance, DynamoStance("force_eager")))
    return _SWITCH[0]


_active = threading.local()


@contextmanager
def guarded(timeout: float | None = None) -> Iterator[None]:
    """Hold the process-wide state a model's code can reach, for one load or trace (see the module docstring).

    ``sys.path`` comes back as it was: the loader puts the model's directory first, as ``python file.py``
    would have it, for the length of the load and the trace. Nested use is a no-op: the outermost guard
    (the CLI's, around load and trace) sets the limits.
    """
    if getattr(_active, "on", False):
        yield
        return
    _active.on = True
    try:
        with _Guard(timeout):
            yield
    finally:
        _active.on = False


class _Guard:
    """What :func:`guarded` holds, taken and put back in one place: each part undone on the way out, in reverse,
    whatever happens. (As a stack of generator context managers it was about half of what a small model's trace
    spent outside its forward pass.)"""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._undo: list[Callable[[], object]] = []

    def __enter__(self) -> None:
        undo = self._undo
        try:
            saved_path = list(sys.path)
            saved_exit = os._exit

            def path_and_exit() -> None:
                os._exit = saved_exit
                sys.path[:] = saved_path

            undo.append(path_and_exit)
            warns = warnings.catch_warnings()
            warns.__enter__()
            undo.append(lambda: warns.__exit__(None, None, None))
            # the global random state: a lazy layer's initialization or a forward's torch.rand must not move it
            # (what torch.random.fork_rng saves: the CPU generator, and every CUDA device's once CUDA is up)
            cpu_state = torch.default_generator.get_state()
            cuda = [(d, torch.cuda.get_rng_state(d)) for d in range(torch.cuda.device_count())] \
                if torch.cuda.is_initialized() else []

            def random_state() -> None:
                torch.default_generator.set_state(cpu_state)
                for device, state in cuda:
                    torch.cuda.set_rng_state(state, device)

            undo.append(random_state)
            os._exit = _exit_instead  # type: ignore[assignment]
            self._eager_compiled_code()
            self._alarm()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _eager_compiled_code(self) -> None:
        """torch.compile'd functions run eagerly while tracing: Dynamo would otherwise trace convshape's own hooks.

        Only when Dynamo is already imported (a model that compiles anything imported it while being built):
        importing it costs about a second."""
        if "torch._dynamo" not in sys.modules:
            return
        switch = _stance_setter()
        if switch is None:
            stance = torch.compiler.set_stance("force_eager")
            stance.__enter__()
            self._undo.append(lambda: stance.__exit__(None, None, None))
            return
        set_stance, eager = switch
        prior = set_stance(eager)
        self._undo.append(lambda: set_stance(prior))

    def _alarm(self) -> None:
        """Raise :class:`TimedOut` in the main thread after ``timeout`` seconds (no limit elsewhere, or when None)."""
        seconds = self.timeout
        if not seconds or threading.current_thread() is not threading.main_thread() or \
                not hasattr(signal, "setitimer") or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
            return  # the caller's own alarm is running: leave it be
        # the C function behind signal.signal, which turns each answer into an enum (5 µs a pair here)
        previous = _signal.signal(signal.SIGALRM, _timed_out(seconds))

        def handler_back() -> None:
            _signal.signal(signal.SIGALRM, previous)

        self._undo.append(handler_back)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        self._undo.append(lambda: signal.setitimer(signal.ITIMER_REAL, 0))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        undo = self._undo
        error: BaseException | None = None
        while undo:
            try:
                undo.pop()()
            except BaseException as e:  # every part is put back; the first failure is raised after
                error = error or e
        if error is not None:
            raise error
