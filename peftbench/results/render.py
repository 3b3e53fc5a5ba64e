"""A built table as text: Markdown, CSV, LaTeX (booktabs) and HTML, one function each in
``RENDERERS``. Every format shows the same things: per row the paper's numbers and ours (the
statistic over seeds ± standard deviation, the seed count, Δ = ours − paper, caveat marks), the
parameter counts, and the footnotes.
"""

from __future__ import annotations

import csv
import html
import io
from typing import Callable, Sequence

from peftbench.errors import UserError
from peftbench.results.table import MISSING, Cell, Table


def format_count(count: float) -> str:
    """A parameter count as papers print it: 294912 -> 294.9K, 125000000 -> 125.0M."""
    if count >= 1e6:
        return f"{count / 1e6:,.1f}M"
    if count >= 1e3:
        return f"{count / 1e3:.1f}K"
    return f"{count:g}"


def render_markdown(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub-flavoured Markdown table with padded columns (no trailing newline)."""
    lines = [[_markdown_cell(cell) for cell in headers]]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells for {len(headers)} headers: {row!r}")
        lines.append([_markdown_cell(cell) for cell in row])
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]

    def join(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"

    separator = "|" + "|".join("-" * (width + 2) for width in widths) + "|"
    return "\n".join([join(lines[0]), separator, *map(join, lines[1:])])


def _markdown_cell(value) -> str:
    text = MISSING if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _fixed(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


class _Parts:
    """The pieces of one row's texts, shared by every format: the paper's cells and ours as
    (value with marks, spread, n, Δ) or None where there is no number."""

    def __init__(self, table: Table):
        self.table = table

    def decimals(self, cell: Cell) -> int:
        return self.table.spec.decimals if cell.decimals is None else cell.decimals

    def paper(self, cell: Cell) -> str | None:
        """The paper's value as it prints it (its own ± beside it, where it prints one)."""
        if cell.paper is None:
            return None
        text = _fixed(cell.paper, self.decimals(cell))
        return text if cell.paper_spread is None else f"{text} ± {cell.paper_spread}"

    def ours(self, cell: Cell) -> tuple[str, str | None, int, str | None] | None:
        if cell.value is None:
            return None
        decimals = self.decimals(cell)
        spread = None if cell.spread is None else _fixed(cell.spread, decimals)
        difference = None if cell.difference is None else f"{cell.difference:+.{decimals}f}"
        return _fixed(cell.value, decimals) + self.table.marked(cell), spread, cell.n, difference

    def ours_label(self) -> str:
        return f"ours on {self.table.model}" if self.table.model else "ours"


def _ours_text(parts: tuple | None, pm: str = "±", delta: str = "Δ") -> str:
    """``86.1 ± 0.9 (n=3) Δ -0.5``."""
    if parts is None:
        return MISSING
    value, spread, n, difference = parts
    text = value
    if spread is not None:
        text += f" {pm} {spread} (n={n})"
    if difference is not None:
        text += f" {delta} {difference}"
    return text


def _preamble(table: Table) -> tuple[str, str]:
    """The lines under the title: where the paper's numbers come from, and how ours are made."""
    spec = table.spec
    paper = f"Paper: {spec.source.citation}"
    if spec.seeds:
        paper += f"; {spec.statistic} of {spec.seeds} seeds"
    if spec.data != "full":
        paper += f"; data: {spec.data}"
    own = ", ".join(f"{c.label} ×{c.scale:g}" for c in spec.columns if c.scale is not None and c.scale != spec.scale)
    ours = (
        f"Ours: {spec.statistic} over seeds ± standard deviation (n = seeds), {spec.checkpoint} "
        f"evaluation of each run, ×{spec.scale:g}{f' ({own})' if own else ''}; Δ = ours − paper."
    )
    return paper + ".", ours


def render_md(table: Table) -> str:
    """Two lines per row, the paper's numbers above ours, then the footnotes."""
    parts = _Parts(table)
    lines = []
    for row in table.rows:
        our_params = None if row.params is None else format_count(row.params)
        papers = [f"**{text}**" if cell.paper_bold and text else text for cell, text in zip(row.cells, map(parts.paper, row.cells))]
        lines.append([row.label, "paper", row.paper_params, *papers])
        lines.append([row.label, parts.ours_label(), our_params, *(_ours_text(parts.ours(c)) for c in row.cells)])
    body = render_markdown(["Row", "Numbers", "Params", *table.headers], lines)
    notes = [f"- {note}" for note in table.notes]
    return "\n".join([f"## {table.spec.title}", "", *_preamble(table), "", body, *([""] + notes if notes else [])]) + "\n"


CSV_FIELDS = (
    "row", "model", "method", "column", "task", "split", "metric", "ours", "std", "n", "paper",
    "difference", "caveats", "params", "paper_params", "paper_std", "paper_bold",
)  # fmt: skip


def render_csv(table: Table) -> str:
    """One line per row and column (the average's task, split and metric are empty); numbers
    unrounded but for float noise, empty where there is none; caveats joined by "; "."""
    columns = [(c.id, c.task, c.split, c.metric) for c in table.spec.columns]
    if table.spec.average:
        columns.append((table.spec.average.id, "", "", ""))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for row in table.rows:
        for (column_id, task, split, metric), cell in zip(columns, row.cells):
            writer.writerow(
                [
                    row.label, row.model, row.method, column_id, task, split, metric,
                    _csv_number(cell.value), _csv_number(cell.spread), cell.n, _csv_number(cell.paper),
                    _csv_number(cell.difference), "; ".join(cell.caveats), _csv_number(row.params),
                    row.paper_params or "", cell.paper_spread or "", "bold" if cell.paper_bold else "",
                ]
            )  # fmt: skip
    return buffer.getvalue()


def _csv_number(value: float | None) -> str:
    return "" if value is None else str(round(value, 6))


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "†": r"\textsuperscript{\dag}", "‡": r"\textsuperscript{\ddag}", "§": r"\textsuperscript{\S}",
    "¶": r"\textsuperscript{\P}", "‖": r"\textsuperscript{\textbardbl}", "–": "--", "×": r"$\times$",
    "±": r"$\pm$", "Δ": r"$\Delta$", "−": "$-$", "≤": r"$\leq$", "≥": r"$\geq$",
}  # fmt: skip


def _latex(text: str | None) -> str:
    """``text`` with LaTeX's special characters escaped (and the table's symbols typeset)."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in (MISSING if text is None else text))


def render_latex(table: Table) -> str:
    """A ``table`` float with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``): per row
    the paper's line and ours, the footnotes in the caption's small print below."""
    parts = _Parts(table)
    headers = ["Row", "Numbers", "Params", *table.headers]
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\caption{" + _latex(table.spec.title) + "}",
        r"\label{tab:" + table.spec.name + "}",
        r"\begin{tabular}{ll" + "r" * (len(headers) - 2) + "}",
        r"\toprule",
        " & ".join(_latex(h) for h in headers) + r" \\",
        r"\midrule",
    ]
    for index, row in enumerate(table.rows):
        our_params = None if row.params is None else format_count(row.params)
        paper = [_latex(text) for text in (row.label, "paper", row.paper_params)]
        paper += [r"\textbf{" + _latex(text) + "}" if cell.paper_bold and text else _latex(text)
                  for cell, text in zip(row.cells, map(parts.paper, row.cells))]  # fmt: skip
        ours = ["", parts.ours_label(), our_params, *(_ours_text(parts.ours(c)) for c in row.cells)]
        lines.append(" & ".join(paper) + r" \\")
        lines.append(" & ".join(_latex(cell) for cell in ours) + r" \\")
        if index < len(table.rows) - 1:
            lines.append(r"\addlinespace")
    lines += [r"\bottomrule", r"\end{tabular}"]
    small = [*_preamble(table), *table.notes]
    lines += [r"\par\smallskip", r"\parbox{\linewidth}{\footnotesize"]
    lines += [_latex(text) + r"\\" for text in small]
    lines += ["}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def render_html(table: Table) -> str:
    """A ``<section>`` with a caption, a ``<table>`` (the paper's line and ours per row, our
    numbers in ``<td class="ours">``) and the footnotes as a list; everything escaped."""
    parts = _Parts(table)
    e = html.escape
    out = [f'<section class="peftbench-table" id="{e(table.spec.name)}">', f"<h2>{e(table.spec.title)}</h2>"]
    out += [f"<p>{e(line)}</p>" for line in _preamble(table)]
    out += ["<table>", "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in ("Row", "Numbers", "Params", *table.headers)) + "</tr></thead>", "<tbody>"]
    for row in table.rows:
        our_params = None if row.params is None else format_count(row.params)
        paper = [e(MISSING if row.paper_params is None else row.paper_params)]
        paper += [f"<b>{e(text)}</b>" if cell.paper_bold and text else e(MISSING if text is None else text)
                  for cell, text in zip(row.cells, map(parts.paper, row.cells))]  # fmt: skip
        out.append(
            f'<tr class="paper"><th rowspan="2">{e(row.label)}</th><td>paper</td>'
            + "".join(f"<td>{c}</td>" for c in paper)
            + "</tr>"
        )
        ours = [MISSING if our_params is None else our_params, *(_ours_text(parts.ours(c)) for c in row.cells)]
        out.append(f'<tr class="ours"><td>{e(parts.ours_label())}</td>' + "".join(f'<td class="ours">{e(c)}</td>' for c in ours) + "</tr>")
    out += ["</tbody>", "</table>"]
    if table.notes:
        out += ["<ul>", *(f"<li>{e(note)}</li>" for note in table.notes), "</ul>"]
    out.append("</section>")
    return "\n".join(out) + "\n"


RENDERERS: dict[str, Callable[[Table], str]] = {"md": render_md, "csv": render_csv, "latex": render_latex, "html": render_html}


def render(table: Table, fmt: str) -> str:
    """The table as text in format ``fmt`` (a key of ``RENDERERS``), ending with a newline."""
    if fmt not in RENDERERS:
        raise UserError(f"unknown table format {fmt!r}; choose one of: {', '.join(RENDERERS)}")
    return RENDERERS[fmt](table)
