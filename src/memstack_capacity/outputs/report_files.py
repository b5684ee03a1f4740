"""report.html (self-contained) and the writer that puts the report beside a run's outputs.

:func:`render_html` draws every figure with plotly (zoom, hover, series toggled from the
legend; :mod:`~memstack_capacity.outputs.interactive`), embeds plotly.js once and inlines
its styles, so the file opens anywhere with no network. Text is rendered from the report's
Markdown by markdown-it (bold and code; any HTML in it is escaped). :func:`write_report` is what
:func:`memstack_capacity.outputs.files.write_run` calls with its staging directory: it
writes ``report.md``, ``report.html``, ``plots/*.png`` and ``manifests/*.yaml``, and adds
the alert episodes to ``summary.json``.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path

from markdown_it import MarkdownIt

from memstack_capacity.errors import ScenarioError
from memstack_capacity.outputs import interactive, plots
from memstack_capacity.outputs.json_text import summary_json
from memstack_capacity.outputs.report import as_list, build_blocks, render_markdown
from memstack_capacity.results.alert_series import attach_alerts

__all__ = ["render_html", "report_figures", "manifests_for", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}code{background:#f3f3f3;padding:0 .2em}img{max-width:100%;height:auto}
li{margin:.4em 0}figure{margin:1em 0}figcaption{color:#555;font-size:.9em}.plot{width:100%}
"""

#: The inline Markdown the report's text uses, **bold** and `code` (with emphasis and backslash
#: escapes, as report.md reads in any viewer); no raw HTML, links, images or entities, so text
#: from a scenario is shown as written.
_MD = MarkdownIt("zero").enable(["emphasis", "backticks", "escape"])


def _inline(text: str) -> str:
    return _MD.renderInline(text)


def render_html(results, figures: Mapping[str, object] | None = None, manifest_note: str | None = None) -> str:
    """report.html as text: one file, figures drawn by the plotly.js embedded in it, no external resources.

    ``figures`` maps a figure's name to its plotly figure (:func:`interactive.all_figures`).
    """
    figures = dict(figures or {})
    blocks = build_blocks(results, list(figures), manifest_note)
    title = html.escape(blocks[0][2])
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{_inline(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(str(h))}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "fig":
            body.append(f"<figure>{interactive.figure_div(figures[block[1]], f'fig-{block[1]}')}"
                        f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
    if figures:  # after the text, so it shows while plotly.js is parsed
        draw = "".join(interactive.figure_script(fig, f"fig-{name}") for name, fig in figures.items())
        body.append(f"<script>{interactive.plotly_js()}</script>\n<script>{draw}</script>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")  # fmt: skip


def report_figures(result) -> dict[str, bytes]:
    """PNG bytes of every figure the run has data for, by name (plots/*.png, report.md)."""
    out = {}
    for name, fig in plots.all_figures(result).items():
        out[name] = plots.figure_png(fig)
    return out


def manifests_for(scenario):
    """The manifest objects for a scenario, or ``(None, note)`` when it cannot be expressed as manifests."""
    from memstack_capacity.outputs.manifests.files import build_manifests
    from memstack_capacity.outputs.manifests.scenario import inputs_from_scenario

    try:
        return build_manifests(inputs_from_scenario(scenario)), None
    except ScenarioError as exc:
        reasons = "; ".join(f"{p.path}: {p.message}" for p in getattr(exc, "problems", [])) or str(exc)
        return None, f"Manifests were not written: {reasons}."


def write_report(results, out_dir: str | Path) -> list[Path]:
    """Write report.md, report.html, plots/*.png and manifests/*.yaml into ``out_dir``.

    Also fills ``summary["alerts"]`` and rewrites ``summary.json`` if ``out_dir`` has one.
    """
    from memstack_capacity.outputs.manifests.files import write_manifests

    results = as_list(results)
    out = Path(out_dir)
    written = []
    attach_alerts(results[0])
    if (out / "summary.json").exists() and len(results) == 1:
        (out / "summary.json").write_text(summary_json(results[0].summary), encoding="utf-8")
    objects, note = manifests_for(results[0].scenario)
    if objects is not None:
        written += write_manifests(objects, out / "manifests")
    else:
        note += " The report covers the simulation; write manifests for a supported layout with `manifests`."
    pngs = report_figures(results[0])
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for name, data in pngs.items():
        path = out / "plots" / f"{name}.png"
        path.write_bytes(data)
        written.append(path)
    md = render_markdown(results, list(pngs), note)
    page = render_html(results, interactive.all_figures(results[0]), note)
    for name, text in (("report.md", md), ("report.html", page)):
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written
