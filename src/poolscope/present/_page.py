"""The report's HTML page: its text, and its bokeh charts drawn first-things-first.

Opening the page costs the browser BokehJS's start-up plus about 0.1-0.2 s per chart, so only
the first chart (the timelines, at the top) is drawn while the page loads. The charts below it
wait in the page as JSON and are drawn one by one once the first is, each as its own bokeh
document: the first view of the page is ready sooner, and the rest follows without a scroll.
``window.poolscopeDrawn`` becomes true once every chart is drawn.

A ``Choices`` section holds charts that only one reader in ten wants (the timelines of a
sweep's other configurations): a select box, and each chart as JSON, drawn when chosen.

Small reports carry their arrays uncompressed: BokehJS inflates gzipped arrays in JavaScript,
which costs more than reading a slightly bigger file; big reports stay compressed, to stay small.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bokeh.core.json_encoder import serialize_json
from bokeh.embed import file_html, json_item
from bokeh.models import Plot
from bokeh.resources import INLINE
from bokeh.settings import SettingProvenance, settings

if TYPE_CHECKING:
    from bokeh.models import Model

__all__ = ["UNCOMPRESSED_UP_TO", "Choices", "render_page"]

UNCOMPRESSED_UP_TO = 100_000  # items; beyond, the arrays are gzipped (as bokeh does by default)

_STYLE = """<style>
main.ps { display: block; padding: 4px 18px 24px; max-width: 1500px; }
.ps { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; }
.ps h1 { font-size: 22px; margin: 4px 0; } .ps h2 { font-size: 17px; margin: 18px 0 4px; }
.ps table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
/* Values keep their units on their line and a range breaks only after its dash; headings
   wrap at their words. Tables then fit 900 px without scrolling. */
.ps th, .ps td { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }
.ps td { white-space: nowrap; } .ps td.range span { white-space: nowrap; }
.ps td.range { white-space: normal; }
.ps td.words, .ps th.words { white-space: normal; text-align: left; }
.ps th { vertical-align: bottom; }
.ps th:first-child, .ps td:first-child { text-align: left; }
.ps tr.best td { font-weight: 600; background: #e8f4ea; }
.ps .note { color: #555; font-size: 12.5px; } .ps .warn { color: #8a4b00; }
.ps ul { margin: 4px 0 4px 18px; padding: 0; }
.ps details > summary { cursor: pointer; color: #555; font-size: 12.5px; }
.ps table.environment td { text-align: left; vertical-align: top; white-space: normal; }
.ps table.environment td:last-child { overflow-wrap: anywhere; max-width: 70em; }
.ps .scale { font-size: 13px; margin: 8px 0 0 60px; }
.ps .scale span { display: inline-block; width: 240px; max-width: 30vw; height: 10px;
  vertical-align: middle; }
.ps select { font: inherit; margin-left: 6px; }
@media (max-width: 1100px) {
  .ps table.summary, .ps table.costs { font-size: 12px; hyphens: manual; }
  .ps table.summary th, .ps table.summary td, .ps table.costs th, .ps table.costs td {
    padding: 2px 4px; }
  .ps .scale { margin-left: 8px; }
}
</style>"""

# Draws the charts that wait as JSON, in page order, each once every chart before it is drawn;
# then says that all are.
_LATER_JS = """<script>
(() => {
  const later = Array.from(document.querySelectorAll("script.ps-later"))
  const idle = () => window.Bokeh !== undefined && Bokeh.documents.length > 0 &&
    Bokeh.documents.every((doc) => doc.is_idle)
  const next = () => {
    if (!idle()) { setTimeout(next, 20); return }
    const script = later.shift()
    if (script === undefined) { window.poolscopeDrawn = true; return }
    Bokeh.embed.embed_item(JSON.parse(script.textContent))
      .catch((error) => console.error(error)).finally(() => setTimeout(next, 0))
  }
  next()
})()
</script>"""

_NO_CHARTS = "<script>window.poolscopeDrawn = true</script>"

# Shows the chosen chart of a Choices section, drawing it the first time (into a visible box:
# a chart drawn while hidden would be laid out at zero width).
_CHOICE_JS = """<script>
document.querySelectorAll("select.ps-choice").forEach((select) => {
  select.addEventListener("change", () => {
    for (const option of select.options) {
      const box = document.getElementById(option.value + "-box")
      if (box !== null) box.hidden = option.value !== select.value
    }
    const script = document.querySelector(`script.ps-choice-json[data-for="${select.value}"]`)
    if (script === null || script.dataset.drawn) return
    script.dataset.drawn = "yes"
    Bokeh.embed.embed_item(JSON.parse(script.textContent)).catch((e) => console.error(e))
  })
})
</script>"""


@dataclass(frozen=True)
class Choices:
    """Charts of which the reader picks one to see: ``label`` before a select box of ``charts``'
    names; none is drawn until chosen."""

    key: str  # unique in the page
    label: str
    charts: Mapping[str, Model]

# The text is plain HTML in the page, not bokeh widgets: the page then needs no widget bundle
# (0.4 MB of JavaScript to start) and the text shows before the charts are drawn.
_PAGE = """
{% from macros import embed %}
{% block preamble %}""" + _STYLE + """{% endblock %}
{% block js_resources %}{{ super() }}{{ later_bundles }}{% endblock %}
{% block contents %}
<main class="ps">
{% for kind, value in sections %}
{% if kind == "chart" %}{{ embed(roots[value]) }}{% else %}{{ value | safe }}{% endif %}
{% endfor %}
</main>
{{ later_js }}
{% endblock %}
"""


def render_page(sections: Sequence[str | Model | Choices], title: str, items: int) -> str:
    """The page of ``sections`` (HTML text, bokeh charts or ``Choices``, in order) for a report
    of ``items``."""
    charts = [value for value in sections if not isinstance(value, str | Choices)]
    chosen = [chart for value in sections if isinstance(value, Choices)
              for chart in value.charts.values()]
    first, later = charts[:1], charts[1:]
    with _compression(items):
        parts = [("html", value) if isinstance(value, str) else
                 ("html", _choices(value)) if isinstance(value, Choices) else
                 ("chart", 0) if value is first[0] else ("html", _later_chart(value))
                 for value in sections]
        later_js = (_LATER_JS if first else _NO_CHARTS) + (_CHOICE_JS if chosen else "")
        return file_html(first, resources=INLINE, template=_PAGE, title=title,
                         template_variables={"sections": parts, "later_js": later_js,
                                             "later_bundles": _later_bundles(
                                                 first, [*later, *chosen])})


def _choices(section: Choices) -> str:
    options = ["<option value='' selected>choose…</option>"]
    boxes = []
    for number, (name, chart) in enumerate(section.charts.items()):
        target = f"ps-{section.key}-{number}"
        options.append(f"<option value='{target}'>{html.escape(name)}</option>")
        data = _chart_json(chart, target)
        boxes.append(f"<div id='{target}-box' hidden><div id='{target}'></div>"
                     f"<script type='application/json' class='ps-choice-json' "
                     f"data-for='{target}'>{data}</script></div>")
    return (f"<p class='choose'><label>{html.escape(section.label)}<select class='ps-choice' "
            f"name='{section.key}'>{''.join(options)}</select></label></p>" + "".join(boxes))


def _later_chart(chart: Model) -> str:
    """A chart's place in the page, kept at its height, and its JSON to draw it later."""
    target = f"ps-{chart.id}"
    data = _chart_json(chart, target)
    height = getattr(chart, "height", None) or 0
    return (f"<div id='{target}' style='min-height: {height}px'></div>"
            f"<script type='application/json' class='ps-later'>{data}</script>")


def _chart_json(chart: Model, target: str) -> str:
    """A chart as the JSON that ``Bokeh.embed.embed_item`` draws into the element ``target``.
    JSON allows "<" only inside strings, where \\u003c means the same and cannot end the
    script that holds it."""
    return serialize_json(json_item(chart, target)).replace("<", "\\u003c")


def _later_bundles(first: Sequence[Model], later: Sequence[Model]) -> str:
    """BokehJS's WebGL bundle where only a later chart needs it (file_html packs the first's)."""
    if _uses_webgl(later) and not _uses_webgl(first):
        return INLINE.clone(components=["bokeh-gl"]).render_js()
    return ""


def _uses_webgl(charts: Sequence[Model]) -> bool:
    return any(plot.output_backend == "webgl" for chart in charts
               for plot in chart.select({"type": Plot}))


@contextmanager
def _compression(items: int) -> Iterator[None]:
    """Arrays uncompressed for reports of up to ``UNCOMPRESSED_UP_TO`` items, unless a level
    was set on purpose (``BOKEH_COMPRESSION_LEVEL`` or bokeh's settings)."""
    setting = settings.compression_level
    _, provenance = setting.get_value_with_provenance()
    if items > UNCOMPRESSED_UP_TO or provenance not in (SettingProvenance.DEFAULT,
                                                        SettingProvenance.GLOBAL_DEFAULT):
        yield
        return
    setting.set_value(0)
    try:
        yield
    finally:
        setting.unset_value()
