"""report.html: its text (inline Markdown by markdown-it, HTML escaped)."""

from __future__ import annotations

from report_scenarios import scenario

from memstack_capacity import simulate
from memstack_capacity.outputs.report_files import _inline, render_html


def test_inline_markdown_bold_and_code_and_nothing_else():
    assert _inline("**Scale.** set `maxReplicas` to 30") == "<strong>Scale.</strong> set <code>maxReplicas</code> to 30"
    assert _inline("`a<b>` & <script>alert(1)</script> [x](javascript:alert(1))") == (
        "<code>a&lt;b&gt;</code> &amp; &lt;script&gt;alert(1)&lt;/script&gt; [x](javascript:alert(1))")
    assert _inline("pool_wait_p99 &amp; 2 * 3") == "pool_wait_p99 &amp;amp; 2 * 3"  # shown as written


def test_render_html_escapes_a_hostile_description():
    data = scenario()
    hostile = data.model_copy(update={"description": "Peak <script>alert(1)</script> & <b>bold</b>, p99 < 1 s"})
    page = render_html(simulate(hostile))
    assert "<script" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "p99 &lt; 1 s" in page
