"""Open generated reports in a real headless Chromium (Debian's), driven by Playwright.

The browser tests need Debian's ``chromium`` (``apt-get install chromium``); ``.ci/run`` installs
it and sets ``POOLSCOPE_REQUIRE_BROWSER=1`` so that a missing browser fails CI instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

LOAD_TIMEOUT_MS = 60_000

# Finds the view of a bokeh model by walking the views from the roots down, and a model by name
# in any of the page's bokeh documents (the charts below the timelines are documents of their own).
FIND_VIEW = """
window.__psModel = (name) => {
  for (const doc of Bokeh.documents) {
    const model = doc.get_model_by_name(name)
    if (model !== null) return model
  }
  return null
}
window.__psView = (model) => {
  const stack = [...Bokeh.index.roots]
  while (stack.length) {
    const view = stack.pop()
    if (view.model === model) return view
    stack.push(...(view.child_views ?? []))
  }
  return null
}
"""


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def launch_browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("POOLSCOPE_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message + "; .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"],
                                             timeout=LOAD_TIMEOUT_MS)
        # Chromium starts its GPU and utility processes with the first page and keeps them:
        # started here, they are not taken for processes that a test left behind.
        browser.new_page().close()
        try:
            yield browser
        finally:
            browser.close()


class OpenReport:
    """A report loaded in a page, every chart drawn, with the console errors seen meanwhile."""

    def __init__(self, browser: Any, path: Path, width: int = 1300, drawn: bool = True) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(path.resolve().as_uri(), timeout=LOAD_TIMEOUT_MS)
        if drawn:
            self.wait_drawn()
        self.page.evaluate(FIND_VIEW)

    def wait_drawn(self) -> None:
        """Until the page says that every chart is drawn (the first at once, the rest after)."""
        self.page.wait_for_function(
            "() => window.poolscopeDrawn === true && Bokeh.documents.every((d) => d.is_idle)",
            timeout=LOAD_TIMEOUT_MS, polling=50)

    def js(self, code: str, arg: Any = None) -> Any:
        return self.page.evaluate(code, arg)

    def close(self) -> None:
        self.page.close()

    def tooltip_text(self) -> str:
        """The text of the visible hover tooltips (they live in shadow roots)."""
        return self.js("""() => {
          const out = []
          const walk = (root) => {
            for (const el of root.querySelectorAll("*")) {
              if (el.classList && el.classList.contains("bk-Tooltip")) {
                const style = getComputedStyle(el)
                if (style.display !== "none" && style.visibility !== "hidden")
                  out.push((el.shadowRoot ?? el).textContent)
              }
              if (el.shadowRoot) walk(el.shadowRoot)
            }
          }
          walk(document)
          return out.join(" | ")
        }""")

    def hover_item(self, renderer: str, index: int) -> dict[str, Any]:
        """Move the mouse over bar ``index`` of the named hbar renderer; returns its data."""
        point = self.js("""([name, i]) => {
          const doc = Bokeh.documents[0]
          const renderer = doc.get_model_by_name(name)
          const fig = doc.get_model_by_name("timeline")
          const view = __psView(fig)
          view.el.scrollIntoView({block: "center"})
          const data = renderer.data_source.data
          const x = (data.start[i] + data.end[i]) / 2, y = data.y[i]
          const box = view.canvas_view.el.getBoundingClientRect()
          return {x: box.left + view.frame.x_scale.compute(x),
                  y: box.top + view.frame.y_scale.compute(y),
                  item: data.item[i], pid: data.pid[i], core: data.core[i]}
        }""", [renderer, index])
        self.page.mouse.move(point["x"], point["y"])
        self.page.wait_for_timeout(300)
        return point
