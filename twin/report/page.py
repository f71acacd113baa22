"""HTML building blocks of the reports: one self-contained page (inline CSS, plots embedded as
base64 PNG, no script, no remote resource), tables whose cells may carry the exact value they
show (``data-value``), and the plots written beside the page as PNG and SVG."""

from __future__ import annotations

import base64
import html
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from twin.atomic import atomic_write_bytes, atomic_write_text
from twin.report.plots import png_and_svg
from twin.report.report_files import PLOTS_DIR, REPORT_FILE

__all__ = ["Cell", "Plots", "PLOTS_DIR", "esc", "table", "wide", "section", "paragraph", "document", "write_page"]


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 72em;
       padding: 0 1em; color: #1a1a1a; background: #ffffff; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
.verdict { font-size: 1.15em; background: #fff6d6; border-left: 6px solid #e0a800; padding: 0.8em 1em; }
.facts { color: #444; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #444; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; font-style: italic; }
nav a { margin-right: 1em; }
.wide { overflow-x: auto; max-width: 100%; }
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True)
class Cell:
    """A table cell: the text shown, and optionally the exact number behind it (``data-value``)
    and an id (tests and scripts find figures by id instead of scraping text)."""

    text: str
    value: float | int | None = None
    id: str | None = None
    text_align: bool = False  # left-aligned text instead of a right-aligned number

    def render(self) -> str:
        attrs = ""
        if self.id:
            attrs += f' id="{esc(self.id)}"'
        if self.value is not None:
            attrs += f' data-value="{esc(repr(self.value))}"'
        if self.text_align:
            attrs += ' class="text"'
        return f"<td{attrs}>{esc(self.text)}</td>"


def table(headers: list[str], rows: list[list[Cell | str]], table_id: str | None = None) -> str:
    """Headers carry the units ("energy (J)"); a plain string cell is left-aligned text."""
    head = "".join(f'<th class="text">{esc(h)}</th>' if i == 0 else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join((c if isinstance(c, Cell) else Cell(c, text_align=True)).render() for c in row)
                   + "</tr>\n" for row in rows)
    attrs = f' id="{esc(table_id)}"' if table_id else ""
    return wide(f"<table{attrs}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>")


def wide(html_table: str) -> str:
    """A table that scrolls sideways on its own when it is wider than the page."""
    return f'<div class="wide">{html_table}</div>\n'


def paragraph(text: str, css: str | None = None) -> str:
    return f'<p class="{css}">{esc(text)}</p>\n' if css else f"<p>{esc(text)}</p>\n"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{body}</section>\n'


def _png_size(png: bytes) -> tuple[int, int]:
    return struct.unpack(">II", png[16:24])  # the IHDR chunk: width, height


@dataclass
class Plots:
    """The figures of one report: each rendered once to PNG and SVG, embedded (PNG) and written
    beside the page (plots/NAME.png, plots/NAME.svg)."""

    files: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)

    def embed(self, name: str, fig, caption: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in self.files:
            raise ValueError(f"plot name {name!r}: letters, digits, '_', '.', '-' only, and once per report")
        png, svg = png_and_svg(fig)
        self.files[name] = (png, svg)
        width, height = _png_size(png)
        data = base64.b64encode(png).decode("ascii")
        return (f'<figure id="plot-{esc(name)}"><img src="data:image/png;base64,{data}" width="{width}" '
                f'height="{height}" alt="{esc(caption)}">\n<figcaption>{esc(caption)} (also as '
                f'<a href="{PLOTS_DIR}/{esc(name)}.svg">SVG</a> and <a href="{PLOTS_DIR}/{esc(name)}.png">PNG</a>)'
                "</figcaption></figure>\n")


def document(title: str, body: str) -> str:
    """The whole page. No date or host in it: the same folder gives the same bytes."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}"
            "<footer><p class=\"note\">Built by <code>twin report</code> from the files of this folder alone "
            "(docs/reports.md); the plots are also in plots/ as PNG and SVG.</p></footer>\n</body>\n</html>\n")


def _stale(name: str) -> bool:
    """A file in plots/ that an earlier report may have written (and this one did not)."""
    return name.endswith((".png", ".svg")) and not name.startswith(".")


def write_page(folder: Path, page: str, plots: Plots) -> Path:
    """Plots first, report.html last (atomically each), so a report never points at missing
    plots; plot files an earlier report left and this one does not make are removed."""
    out = Path(folder) / PLOTS_DIR
    out.mkdir(exist_ok=True)
    for name, (png, svg) in plots.files.items():
        atomic_write_bytes(out / f"{name}.png", png)
        atomic_write_bytes(out / f"{name}.svg", svg)
    keep = {f"{name}.{ext}" for name in plots.files for ext in ("png", "svg")}
    for path in sorted(out.iterdir()):
        if path.is_file() and _stale(path.name) and path.name not in keep:
            path.unlink()
    report = Path(folder) / REPORT_FILE
    atomic_write_text(report, page)
    return report
