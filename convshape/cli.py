"""The ``convshape`` command line: parse, call the library, render, exit. Nothing else lives here.

torch is imported inside the commands, so ``--help`` and argument errors answer quickly.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
import warnings
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import click
import typer
import typer.core
from rich.console import Console

from . import __version__
from .errors import ConvshapeError, TraceError
from .spec import check_model_file, parse_device, parse_input, parse_kwargs, parse_model_ref

if TYPE_CHECKING:
    from .loader import ModelSource
    from .records import Trace

# torch warns on import when numpy is absent; convshape never needs numpy, so the warning is noise.
warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

app = typer.Typer(
    name="convshape", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    help="Every tensor shape through a PyTorch model, its parameters, and the in_features each Linear needs.",
)
_err = Console(stderr=True, highlight=False)


class _Command(typer.core.TyperCommand):
    """Usage lines read ``convshape trace [OPTIONS] MODEL``, without typer's ``{MODEL}`` braces."""

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in super().collect_usage_pieces(ctx)]


class Format(str, Enum):
    table = "table"
    json = "json"
    markdown = "markdown"
    csv = "csv"
    html = "html"
    mermaid = "mermaid"
    dot = "dot"


ModelArg = Annotated[str, typer.Argument(
    help="path/to/file.py, path/to/file.py:Name or package.module:Name (a class, factory or instance).",
    metavar="MODEL",
    show_default=False)]
InputOpt = Annotated[list[str], typer.Option(
    "--input", "-i", help="Shape of one forward argument, e.g. 64x784 or 2x16:int64; repeat per argument.",
    show_default=False)]
ArgOpt = Annotated[list[str], typer.Option(
    "--arg", "-a", help="Constructor/factory keyword argument key=value (a Python literal); repeatable.",
    show_default=False)]
FormatOpt = Annotated[Format | None, typer.Option(
    "--format", "-f", show_default=False,
    help="table (default), json, markdown or csv. Default: from -o's extension.")]
OutputOpt = Annotated[str | None, typer.Option(
    "--output", "-o", metavar="FILE", show_default=False,
    help="Write to FILE instead of stdout, in the format of its extension (.txt .json .md .csv .html .mmd .dot).")]
TraceFormatOpt = Annotated[Format | None, typer.Option(
    "--format", "-f", show_default=False,
    help="table (default), json, markdown, csv, html, mermaid or dot. Default: from -o's extension.")]
WidthOpt = Annotated[int | None, typer.Option(
    "--width", "-w", min=0, show_default=False,
    help="Fit the table in this many columns (0: no limit). Default: the terminal's width; pipes and files: no limit.")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", "-d", help="auto (fastest that works), meta (no weights allocated), cpu (real weights) or cuda.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show Python tracebacks.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"convshape {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """convshape: shapes, parameters and Linear sizes of PyTorch models."""


def _fail(error: ConvshapeError, debug: bool) -> NoReturn:
    if debug:
        _err.print_exception()
    _err.print(f"[bold red]error:[/] {error}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


def _emit(renderable: Any, fmt: Format, output: str | None = None) -> None:
    """Print the rendered value, or write it to ``output``: text as it is, a table as plain text."""
    from .render import to_text

    if output is not None:
        from .outputs import write_output

        write_output(output, renderable if isinstance(renderable, str) else to_text(renderable))
    elif isinstance(renderable, str):
        sys.stdout.write(renderable if renderable.endswith("\n") else renderable + "\n")
    elif sys.stdout.isatty():
        Console().print(renderable, soft_wrap=True)  # grids are laid out already: never re-wrap
    else:
        sys.stdout.write(to_text(renderable))


def _format(fmt: Format | None, output: str | None, allowed: tuple[Format, ...]) -> Format:
    from .outputs import choose_format

    return Format(choose_format(fmt.value if fmt else None, output, tuple(f.value for f in allowed)))


def _width(width: int | None, fmt: Format, output: str | None) -> int | None:
    """The table's width: --width, else the terminal's when stdout is one; pipes and files get the full table."""
    if width is not None:
        return width or None
    if fmt is Format.table and output is None and sys.stdout.isatty():
        return Console().width
    return None


def _progress(fmt: Format) -> Any:
    from .progress import live_progress

    return live_progress(sys.stderr, fmt is not Format.json and sys.stderr.isatty(), Console(stderr=True).width)


def _source(model: str, args: list[str] | None) -> ModelSource:
    ref = parse_model_ref(model, parse_kwargs(args))
    check_model_file(ref)  # a wrong path answers before torch is imported
    from .loader import resolve

    return resolve(ref)


def _traced(model: str, inputs: list[str] | None, args: list[str] | None, device: str,
            **options: Any) -> tuple[ModelSource, Trace, TraceError | None]:
    """Parse, load and trace. A failing forward pass still gives its partial trace (``trace.error`` set)
    and the TraceError (for --debug); any other ConvshapeError propagates."""
    specs = [parse_input(i) for i in inputs or []]
    dev = parse_device(device)
    source = _source(model, args)
    from .policy import trace_source  # torch from here on: every argument was checked first

    try:
        return source, trace_source(source, specs, dev, **options), None
    except TraceError as e:
        return source, e.trace, e  # type: ignore[return-value]


def _debug_traceback(error: TraceError, debug: bool) -> None:
    """With --debug, the model's own traceback (the TraceError's cause)."""
    if debug and error.__cause__ is not None:
        import traceback

        _err.print("".join(traceback.format_exception(error.__cause__)), markup=False, highlight=False)


@app.command(cls=_Command, short_help="Every layer and op in call order, with input and output shapes.")
def trace(
    model: ModelArg,
    inputs: InputOpt = None,  # type: ignore[assignment]
    args: ArgOpt = None,  # type: ignore[assignment]
    depth: Annotated[int | None, typer.Option("--depth", min=0, help="Show rows down to this depth.")] = None,
    no_functions: Annotated[bool, typer.Option("--no-functions", help="Module rows only.")] = False,
    explain: Annotated[bool, typer.Option(
        "--explain", help="Show the output-size arithmetic, receptive fields and flatten factorisations.")] = False,
    costs: Annotated[bool, typer.Option(
        "--costs", help="Count MACs/FLOPs per row from the ops executed, and show output memory.")] = False,
    expand: Annotated[bool, typer.Option(
        "--expand", help="Show every row: do not fold repeated blocks (layers.0-31  32 x Block).")] = False,
    columns: Annotated[str | None, typer.Option(
        "--columns", "-c", metavar="LIST", show_default=False,
        help="Table columns, comma-separated: name, type, input, output, params, params%, macs, memory, kernel, "
             "source.")] = None,
    full_names: Annotated[bool, typer.Option(
        "--full-names", help="Qualified names (encoder.layers.0.mlp.0) instead of the tree's short ones.")] = False,
    width: WidthOpt = None,
    fmt: TraceFormatOpt = None,
    output: OutputOpt = None,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """Every layer and functional op, in call order, with input and output shapes."""
    try:
        chosen = _format(fmt, output, tuple(Format))
        keys = None
        if columns is not None:
            from .render.columns import parse_columns

            keys = parse_columns(columns)
        with _progress(chosen):
            _, result, failed = _traced(model, inputs, args, device, costs=costs)
        view = TraceView(depth, not no_functions, explain, not expand, keys, full_names,
                         _width(width, chosen, output))
        _emit(_trace_out(result, chosen, view), chosen, output)
    except ConvshapeError as e:
        _fail(e, debug)
    if failed is not None:
        _debug_traceback(failed, debug)
        raise typer.Exit(failed.exit_code)


@dataclasses.dataclass(frozen=True)
class TraceView:
    """What the trace options ask a renderer for."""

    depth: int | None = None
    functions: bool = True
    explain: bool = False
    fold: bool = True
    columns: tuple[str, ...] | None = None
    full_names: bool = False
    width: int | None = None


def _trace_out(result: Trace, fmt: Format, view: TraceView) -> Any:
    if fmt is Format.json:
        from .render.json import to_json

        return to_json(result, explain=view.explain)
    if fmt is Format.csv:
        from .render.csv import trace_csv

        return trace_csv(result)
    if fmt is Format.markdown:
        from .render.markdown import trace_markdown

        return trace_markdown(result, view.depth, view.functions, view.fold, view.columns)
    if fmt is Format.html:
        from .render.html import trace_html

        return trace_html(result, view.depth, view.functions, view.fold)
    if fmt in (Format.mermaid, Format.dot):
        from .render.graph import trace_dot, trace_mermaid

        draw = trace_mermaid if fmt is Format.mermaid else trace_dot
        return draw(result, view.depth, view.functions, view.fold)
    from .render.table import trace_table

    return trace_table(result, view.depth, view.functions, explain=view.explain, width=view.width,
                       columns=view.columns, fold=view.fold, full_names=view.full_names)


@app.command(cls=_Command, short_help="Parameter tensors, counts, trainable/frozen and totals.")
def params(
    model: ModelArg,
    args: ArgOpt = None,  # type: ignore[assignment]
    explain: Annotated[bool, typer.Option(
        "--explain", help="Show the formula behind each count, with the layer's numbers.")] = False,
    width: WidthOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Parameter tensors, counts, trainable/frozen and totals (no weights are allocated)."""
    from .render.table import params_table

    try:
        chosen = _format(fmt, output, _REPORT_FORMATS)
        source = _source(model, args)
        from .api import parameters

        report = parameters(source.build("meta"), source.label)
        _emit(_report_out(report, chosen, explain) if chosen is not Format.table
              else params_table(report, explain, _width(width, chosen, output)), chosen, output)
    except ConvshapeError as e:
        _fail(e, debug)


_REPORT_FORMATS = (Format.table, Format.json, Format.markdown, Format.csv)


def _report_out(report: Any, fmt: Format, explain: bool = False) -> str:
    """A params or fc-size report as JSON, Markdown or CSV."""
    if fmt is Format.json:
        from .render.json import to_json

        return to_json(report)
    if fmt is Format.markdown:
        from .render.markdown import report_markdown

        return report_markdown(report, explain)
    from .render.csv import report_csv

    return report_csv(report)


@app.command("fc-size", cls=_Command, short_help="The in_features each nn.Linear needs, and the fix.")
def fc_size(
    model: ModelArg,
    inputs: InputOpt = None,  # type: ignore[assignment]
    args: ArgOpt = None,  # type: ignore[assignment]
    layer: Annotated[str | None, typer.Option("--layer", "-l", help="Answer for this Linear only.")] = None,
    width: WidthOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """The in_features each nn.Linear needs after the layers before it, and the fix."""
    from .render.table import fc_table

    try:
        chosen = _format(fmt, output, _REPORT_FORMATS)
        # a model failing elsewhere than a Linear still reports the Linear layers reached before it
        with _progress(chosen):
            _, traced, _ = _traced(model, inputs, args, device, repair_linear=True)
        from .fc import fc_report

        report = fc_report(traced)
        if layer is not None:
            names = [c.name for c in report.layers]
            if layer not in names:
                from .errors import InputSpecError

                raise InputSpecError(f"--layer {layer!r}: no nn.Linear of that name was reached; "
                                     f"the Linear layers are: {', '.join(names) or 'none'}")
            report = dataclasses.replace(report, layers=tuple(c for c in report.layers if c.name == layer))
        _emit(_report_out(report, chosen) if chosen is not Format.table
              else fc_table(report, _width(width, chosen, output)), chosen, output)
    except ConvshapeError as e:
        _fail(e, debug)
    if report.error is not None:
        raise typer.Exit(1)


@app.command(cls=_Command, short_help="Your forward's source with each line's shape as a comment.")
def annotate(
    model: ModelArg,
    inputs: InputOpt = None,  # type: ignore[assignment]
    args: ArgOpt = None,  # type: ignore[assignment]
    submodules: Annotated[bool, typer.Option(
        "--all", help="Also annotate the forwards of your own submodule classes.")] = False,
    device: DeviceOpt = "auto",
    debug: DebugOpt = False,
) -> None:
    """Print the model's forward source with each line's shape as a trailing comment."""
    try:
        source, traced, failed = _traced(model, inputs, args, device)
    except ConvshapeError as e:
        _fail(e, debug)
    if failed is not None:
        _err.print(f"[bold red]error:[/] {failed} (the lines before it are annotated)", markup=True,
                   soft_wrap=True)
        _debug_traceback(failed, debug)
    from .annotate import annotate as annotate_forward

    # annotate reads the module tree only (names, classes): a fresh meta build is enough
    built = source.obj if source.is_instance else source.build("meta")
    blocks = annotate_forward(built, traced, submodules)
    if sys.stdout.isatty():
        from rich.syntax import Syntax

        console = Console()
        for block in blocks:
            console.print(f"# {block.title}", style="bold")
            console.print(Syntax(block.code, "python", theme="ansi_dark", word_wrap=False))
    else:
        sys.stdout.write("\n\n".join(f"# {b.title}\n{b.code}" for b in blocks) + "\n")
    if traced.error is not None:
        raise typer.Exit(1)


@app.command(cls=_Command, short_help="One layer on its own: output shape, arithmetic, parameters.")
def layer(
    expr: Annotated[str, typer.Argument(help='A torch.nn layer call, e.g. "nn.Conv2d(3, 10, 2, 2)".',
                                        metavar="EXPR", show_default=False)],
    inputs: InputOpt = None,  # type: ignore[assignment]
    fmt: FormatOpt = None,
    debug: DebugOpt = False,
) -> None:
    """One layer on its own: output shape, the arithmetic, the parameters, each argument named."""
    try:
        chosen = _format(fmt, None, (Format.table, Format.json))
        specs = [parse_input(i) for i in inputs or []]
        if not specs:
            from .errors import InputSpecError

            raise InputSpecError("layer needs --input SHAPE, e.g. --input 1x3x32x32")
        from .layer import run_layer

        report = run_layer(expr, *specs)
    except ConvshapeError as e:
        _fail(e, debug)
    from .render.json import to_json
    from .render.table import layer_text

    _emit(to_json(report) if chosen is Format.json else layer_text(report), chosen)
    if report.trace.error is not None:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry: run the app, then leave without interpreter teardown.

    Tearing down a process that imported torch takes about 0.4 s (measured: `import torch` alone is
    1.30 s, 0.86 s with os._exit). Output is flushed first, so nothing is lost.
    """
    # A short-lived process: the cyclic collector would only rescan torch's large heap (a gen-2
    # pass after `import torch` costs tens of ms, several times per run).
    gc.disable()
    code: int | str | None = 0
    try:
        app()
    except SystemExit as e:
        code = e.code
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                code = code or 1
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    os._exit(code or 0)
