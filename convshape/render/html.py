"""HTML: one self-contained report (no network, no external files) or a notebook fragment.

A collapsible module tree with shapes, parameters and MACs, a search box, a bar per row for its share
of the parameters and of the MACs, folded repeated blocks, and the failure with its fix. The rows are
rendered here, as HTML; the script only collapses, expands and filters, so the report reads without
JavaScript too. ``report.html#q=conv`` opens with the search filled in.
"""

from __future__ import annotations

from html import escape

from ..records import Trace
from ..text import failure_parts, megabytes, shape_text, si_bytes, si_count
from .columns import short_count
from .view import ViewRow, visible_rows

OPEN_DEPTH = 2  # rows deeper than this start collapsed under their parent

_CSS = """
.convshape{font:13px/1.45 ui-sans-serif,system-ui,-apple-system,"Segoe UI",sans-serif;color:#1b1f24}
.convshape h1{font-size:18px;margin:0 0 4px}
.convshape .meta{color:#57606a;margin:0 0 10px}
.convshape .failure{border:1px solid #cf222e;background:#ffebe9;border-radius:6px;padding:8px 12px;margin:0 0 12px}
.convshape .failure b{color:#a40e26}
.convshape .failure code{background:#fff;padding:1px 4px;border-radius:3px}
.convshape .tools{display:flex;gap:8px;align-items:center;margin:0 0 8px}
.convshape .tools input{flex:0 1 320px;padding:4px 8px;border:1px solid #d0d7de;border-radius:6px}
.convshape .tools button{padding:3px 8px;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa;cursor:pointer}
.convshape table{border-collapse:collapse;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
 font-size:12px}
.convshape th{text-align:left;border-bottom:1px solid #d0d7de;padding:3px 10px 3px 0;white-space:nowrap}
.convshape td{padding:1px 10px 1px 0;white-space:nowrap;vertical-align:middle}
.convshape td.num,.convshape th.num{text-align:right}
.convshape tr.function td{color:#6e7781}
.convshape tr.group td.name,.convshape tr.group td.type{font-weight:600}
.convshape tr.failed td{color:#cf222e;font-weight:600}
.convshape tr.match td.name{background:#fff8c5}
.convshape .tog{display:inline-block;width:1.2em;cursor:pointer;color:#57606a;user-select:none}
.convshape .bar{width:70px;height:8px;background:#eaeef2;border-radius:2px;overflow:hidden}
.convshape .bar i{display:block;height:100%;background:#0969da}
.convshape .bar.macs i{background:#bf8700}
.convshape .totals{margin:10px 0 0;color:#1b1f24}
.convshape .notes{color:#9a6700}
"""

_JS = """
(function(root){
  var rows=[].slice.call(root.querySelectorAll('tbody tr'));
  var byId={};rows.forEach(function(r){byId[r.dataset.id]=r;});
  function kids(r){return rows.filter(function(x){return x.dataset.parent===r.dataset.id;});}
  function ancestorsOpen(r){var p=byId[r.dataset.parent];while(p){if(p.dataset.open!=='1')return false;
    p=byId[p.dataset.parent];}return true;}
  function refresh(){var q=root.querySelector('input.q').value.trim().toLowerCase();
    rows.forEach(function(r){r.classList.remove('match');});
    if(q){var keep={};rows.forEach(function(r){if(r.dataset.text.indexOf(q)>=0){r.classList.add('match');
        var x=r;while(x){keep[x.dataset.id]=1;x=byId[x.dataset.parent];}}});
      rows.forEach(function(r){r.hidden=!keep[r.dataset.id];});
      root.querySelector('.count').textContent=rows.filter(function(r){return r.classList.contains('match');})
        .length+' matching';}
    else{rows.forEach(function(r){r.hidden=!ancestorsOpen(r);});root.querySelector('.count').textContent='';}
    rows.forEach(function(r){var t=r.querySelector('.tog.kids');
      if(t)t.textContent=r.dataset.open==='1'?'\\u25be':'\\u25b8';});}
  rows.forEach(function(r){var t=r.querySelector('.tog.kids');if(t)t.addEventListener('click',function(){
    r.dataset.open=r.dataset.open==='1'?'0':'1';refresh();});});
  root.querySelector('input.q').addEventListener('input',refresh);
  root.querySelector('button.all').addEventListener('click',function(){rows.forEach(function(r){
    r.dataset.open='1';});refresh();});
  root.querySelector('button.none').addEventListener('click',function(){rows.forEach(function(r){
    r.dataset.open=r.dataset.depth==='0'?'1':'0';});refresh();});
  var m=/[#&]q=([^&]*)/.exec(location.hash||'');if(m)root.querySelector('input.q').value=decodeURIComponent(m[1]);
  if(/[#&]expand/.test(location.hash||''))rows.forEach(function(r){r.dataset.open='1';});
  refresh();
})(document.currentScript.parentNode);
"""


def _bar(share: float, kind: str) -> str:
    pct = max(0.0, min(100.0, 100 * share))
    return (f'<div class="bar {kind}" title="{pct:.1f}% of the model\'s {kind}">'
            f'<i style="width:{pct:.1f}%"></i></div>')


def _shapes_td(shapes: tuple[tuple[int, ...], ...]) -> str:
    """A shapes cell: up to two shapes, then ``+N`` with every shape in the tooltip."""
    if not shapes:
        return "<td>-</td>"
    every = ", ".join(shape_text(s) for s in shapes)
    if len(shapes) <= 2:
        return f"<td>{escape(every)}</td>"
    shown = ", ".join(shape_text(s) for s in shapes[:2])
    return f'<td title="{escape(every)}">{escape(shown)} +{len(shapes) - 2}</td>'


def _row_html(vr: ViewRow, trace: Trace, ident: str, parent: str, has_children: bool) -> str:
    row = vr.row
    total_params = trace.totals.params
    total_macs = trace.macs if trace.costs_counted else None
    classes = [vr.kind] + (["failed"] if vr.failed else [])
    name = ("✗ " if vr.failed else "") + vr.name
    tog = '<span class="tog kids">▾</span>' if has_children else '<span class="tog"></span>'
    params = f"(call {row.call + 1})" if vr.kind == "module" and row.call > 0 else (f"{vr.params:,}" if vr.params
                                                                                     else "--")
    param_share = vr.params / total_params if total_params and not (vr.kind == "module" and row.call > 0) else 0.0
    text = " ".join((vr.full_name, vr.name, vr.op, *(shape_text(s) for s in vr.input_shapes),
                     *(shape_text(s) for s in vr.output_shapes), row.source or "")).lower()
    cells = [
        f'<td class="name" style="padding-left:{1.2 * vr.depth:.1f}em" title="{escape(vr.full_name)}">'
        f"{tog}{escape(name)}</td>",
        f'<td class="type">{escape(vr.op)}</td>',
        _shapes_td(vr.input_shapes),
        "<td>(failed)</td>" if vr.failed else _shapes_td(vr.output_shapes),
        f'<td class="num">{params}</td>', f"<td>{_bar(param_share, 'params')}</td>",
    ]
    if trace.costs_counted:
        macs = "--" if vr.macs == 0 else si_count(vr.macs)
        cells += [f'<td class="num">{escape(macs)}</td>',
                  f"<td>{_bar((vr.macs or 0) / total_macs if total_macs else 0.0, 'macs')}</td>",
                  f'<td class="num">{si_bytes(vr.output_bytes)}</td>']
    cells.append(f"<td>{escape(row.source or '')}</td>")
    is_open = "1" if vr.depth < OPEN_DEPTH else "0"
    return (f'<tr class="{" ".join(classes)}" data-id="{ident}" data-parent="{parent}" data-depth="{vr.depth}" '
            f'data-open="{is_open}" data-text="{escape(text)}">' + "".join(cells) + "</tr>")


def trace_html_fragment(trace: Trace, depth: int | None = None, functions: bool = True, fold: bool = True) -> str:
    """The report as one ``<div class="convshape">`` with its own style and script (for notebooks)."""
    view = visible_rows(trace, depth, functions, fold=fold)
    # each visible row's parent among the visible rows: the nearest one above it with a smaller depth
    stack: list[tuple[int, str]] = []
    parents: list[str] = []
    for i, vr in enumerate(view):
        while stack and stack[-1][0] >= vr.depth:
            stack.pop()
        parents.append(stack[-1][1] if stack else "")
        stack.append((vr.depth, f"r{i}"))
    has_children = {p for p in parents if p}
    inputs = ", ".join(f"{shape_text(i.shape)} {i.dtype}" for i in trace.inputs) or "none"
    totals = trace.totals
    summary = f"{totals.params:,} parameters ({short_count(totals.params)})"
    if trace.costs_counted:
        summary += f", {si_count(trace.macs)} MACs"
    head = ["<th>Layer</th>", "<th>Type</th>", "<th>Input shape</th>", "<th>Output shape</th>",
            '<th class="num">Params</th>', "<th>share</th>"]
    if trace.costs_counted:
        head += ['<th class="num">MACs</th>', "<th>share</th>", '<th class="num">Output mem</th>']
    head.append("<th>Source</th>")
    parts = [f'<div class="convshape"><style>{_CSS}</style>',
             f"<h1>{escape(trace.model)}</h1>",
             f'<p class="meta">input {escape(inputs)} on {escape(trace.device)} · {summary}</p>']
    if trace.error is not None:
        e = trace.error
        shown = {"summary": "<b>✗ {}</b>", "fix": "<div>fix: <code>{}</code></div>", "at": "<div>at {}</div>",
                 "torch": "<div>{}</div>"}
        parts.append('<div class="failure" role="alert">' + "".join(
            shown[kind].format(escape(text))
            for kind, text in failure_parts(e.summary, e.fix, e.source, e.error_type, e.message)) + "</div>")
    parts.append('<div class="tools"><input class="q" type="search" placeholder="Search names, types, shapes"'
                 ' aria-label="Search"><button class="all" type="button">Expand all</button>'
                 '<button class="none" type="button">Collapse all</button><span class="count"></span></div>')
    parts.append("<table><thead><tr>" + "".join(head) + "</tr></thead><tbody>")
    parts += [_row_html(vr, trace, f"r{i}", parents[i], f"r{i}" in has_children) for i, vr in enumerate(view)]
    parts.append("</tbody></table>")
    lines = [f"Total params: {totals.params:,}", f"Trainable params: {totals.trainable:,}",
             f"Non-trainable params: {totals.non_trainable:,}", f"Params size (MB): {megabytes(totals.bytes)}"]
    if trace.costs_counted:
        lines += [f"Total MACs: {si_count(trace.macs)}",
                  f"Activations, one forward: {si_bytes(trace.activation_bytes)}"]
    parts.append('<p class="totals">' + "<br>".join(escape(x) for x in lines) + "</p>")
    if trace.notes:
        parts.append('<p class="notes">' + "<br>".join(f"note: {escape(n)}" for n in trace.notes) + "</p>")
    parts.append(f"<script>{_JS}</script></div>")
    return "\n".join(parts)


def trace_html(trace: Trace, depth: int | None = None, functions: bool = True, fold: bool = True) -> str:
    """A complete, self-contained HTML document: open it in any browser, offline. Pure ASCII (other
    characters as references), so any terminal, file system or mail client carries it unchanged."""
    return _ascii("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>convshape: {escape(trace.model)}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n<body>\n'
            + trace_html_fragment(trace, depth, functions, fold) + "\n</body></html>\n")


def _ascii(document: str) -> str:
    # the script and style are ASCII already (escapes in JS), so references only replace text and attributes
    return document.encode("ascii", "xmlcharrefreplace").decode("ascii")
