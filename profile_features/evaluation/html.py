"""The evaluation report as one self-contained HTML page (plots inlined as data URIs).

The page is rendered from the same Markdown lines as report.md, so the two never disagree; only the
subset `write_report` emits is understood: headings, bullets, pipe tables, images, paragraphs,
**bold** and `code`. A provenance table comes first. A short inline script records, once the page
has loaded, how many images decoded and how many tables it holds (`data-images-decoded`,
`data-tables` on `<body>`), so a headless browser can check the page renders without a person.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["render_html"]

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f5f5f5; padding: 0 3px; }
.provenance td:first-child { font-weight: 600; white-space: nowrap; }
"""
_CHECK = """
window.addEventListener("load", function () {
  var decoded = Array.prototype.filter.call(document.images, function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images-decoded", String(decoded.length));
  document.body.setAttribute("data-tables", String(document.getElementsByTagName("table").length));
});
"""


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(rows: Sequence[str]) -> str:
    head, body = _cells(rows[0]), [_cells(r) for r in rows[2:]]
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body]
    return "\n".join(out + ["</table>"])


def _image(alt: str, path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def _body(lines: Sequence[str], folder: Path) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            block = []
            while i < len(lines) and lines[i].startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
            continue
        if line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        heading = re.match(r"^(#{1,4}) (.*)$", line)
        image = _IMAGE.match(line.strip())
        if heading:
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif image:
            if (folder / image.group("src")).exists():  # a plot that was not drawn is left out
                out.append(_image(image.group("alt"), folder / image.group("src")))
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return out


def render_html(lines: Sequence[str], folder: Path, provenance: dict, plots: Sequence[tuple[str, str]] = ()) -> str:
    """The page for report.md's `lines`; images are read from `folder`. `plots` (alt, file name) are
    shown after the provenance, before the report's own sections."""
    title = lines[0].lstrip("# ") if lines else "evaluation report"
    rows = "".join(f"<tr><td>{_inline(str(k))}</td><td>{_inline(str(v))}</td></tr>" for k, v in provenance.items())
    body = [f"<h1>{_inline(title)}</h1>", "<h2>Provenance</h2>", f'<table class="provenance">{rows}</table>']
    body += [_image(alt, folder / name) for alt, name in plots if (folder / name).exists()]
    body += _body(list(lines[1:]), folder)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style><script>{_CHECK}</script></head>\n"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
