"""Charts that the browser asks for one at a time, so that no main-thread task draws two.

Streamlit's frontend mounts every element that arrived while it was busy in one React commit,
and its Plotly wrapper draws all the charts of a commit in one task: a page of six charts whose
data arrives together froze the tab for one to two seconds (docs/dashboard.md). Here every
chart of a page starts as a *pace gate*, a small component (Streamlit components v2: no iframe,
a few lines of JavaScript) that holds the chart's place and asks for it (a trigger that reruns
only that chart's fragment) when it is its turn:

* it is the first gate on the page that has not asked yet, and no gate that asked still waits
  for its chart: one chart in flight, so each arrives, mounts and is drawn on its own;
* after the first request, at least one chart has been drawn: until then Streamlit is still
  loading its Plotly bundle, and charts that arrive meanwhile are revealed (and drawn) together.

So the browser sets the pace: a free main thread asks for the next chart at once, a busy one
when it is done. A chart once drawn is sent directly from then on (live refreshes and widget
changes redraw in place, keeping scroll and zoom). Without a browser (Streamlit's AppTest)
nobody could ask, so every chart is sent directly.

:func:`preload_plotly` puts a ``modulepreload`` link for Streamlit's Plotly bundle (4.7 MB) at
the top of a chart page, so it is fetched while the script queries the store instead of after
the first chart arrives (a second later).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

__all__ = ["GATE_JS", "paced_chart", "preload_plotly"]

# Why each condition: see the module docstring. ``stuckMs``: a chart that never draws (a Plotly
# error, a chart removed by a rerun) must not hold the rest of the page back.
GATE_JS = r"""
export default function ({ parentElement, setTriggerValue, data }) {
  const el = document.createElement('div');
  el.setAttribute('data-automl-gate', '');
  el.style.minHeight = ((data && data.height) || 450) + 'px';
  el.style.opacity = '0.6';
  el.style.fontSize = '0.85rem';
  el.textContent = 'Drawing chart...';
  parentElement.replaceChildren(el);
  const stuckMs = 3000;
  const pace = window.__automlPace = window.__automlPace || {asked: 0, at: 0};
  const mounted = performance.now();
  let stopped = false, frame = 0, timer = 0;
  const drawn = gd => !!(gd._fullLayout && gd._fullData && gd.querySelector('.main-svg')
    && !(gd._promises && gd._promises.length));
  const myTurn = () => {
    if (document.querySelector('[data-automl-gate][data-asked]')) return false;
    if (document.querySelector('[data-automl-gate]:not([data-asked])') !== el) return false;
    if (pace.asked === 0) return true;
    if (performance.now() - Math.max(mounted, pace.at) > stuckMs) return true;
    return [...document.querySelectorAll('.js-plotly-plot')].some(drawn);
  };
  const tick = () => {
    if (stopped) return;
    if (!myTurn()) { frame = requestAnimationFrame(tick); return; }
    // ask after a task boundary: a draw that the last frame started finishes first
    timer = setTimeout(() => {
      if (stopped) return;
      if (!myTurn()) { frame = requestAnimationFrame(tick); return; }
      el.setAttribute('data-asked', '');
      pace.asked += 1;
      pace.at = performance.now();
      setTriggerValue('ready', true);
    }, 0);
  };
  frame = requestAnimationFrame(tick);
  return () => { stopped = true; cancelAnimationFrame(frame); clearTimeout(timer); };
}
"""

_gate: Callable[..., Any] | None = None


def _gate_component() -> Callable[..., Any]:
    global _gate
    if _gate is None:
        _gate = st.components.v2.component("automl_pace_gate", js=GATE_JS, isolate_styles=False)
    return _gate


def _in_browser() -> bool:
    """Whether a browser draws this session (AppTest's sessions carry no HTTP headers)."""
    try:
        return bool(st.context.headers.get("Host"))
    except Exception:  # pragma: no cover - no script run context
        return False


@functools.cache
def _plotly_chunk() -> str | None:
    """The file name of Streamlit's Plotly bundle (hashed per release), if it has one."""
    js = Path(st.__file__).parent / "static" / "static" / "js"
    found = sorted(p.name for p in js.glob("PlotlyChart.*.js"))
    return found[0] if found else None


def preload_plotly() -> None:
    """Start loading Streamlit's Plotly bundle in the browser now (call early on a chart page)."""
    chunk = _plotly_chunk()
    if chunk is None or not _in_browser():
        return
    with st.sidebar:
        st.markdown(f'<link rel="modulepreload" href="static/js/{chunk}">', unsafe_allow_html=True)


def paced_chart(draw: Callable[[], None], key: str, height: int | None = None) -> None:
    """Send a chart now if this page drew it before (or no browser draws); else behind a gate.

    Args:
        draw: Sends the chart (``st.plotly_chart``); called in this run or in the chart's
            fragment rerun once the browser asks for it.
        key: The chart's element key, unique on the page.
        height: The chart's height in pixels: the gate holds its place.
    """
    page = ",".join(f"{k}={v}" for k, v in sorted(st.query_params.to_dict().items()))
    flag = f"_automl_drawn:{page}:{key}"
    if st.session_state.get(flag) or not _in_browser():
        st.session_state[flag] = True
        draw()
        return

    def _asked() -> None:
        st.session_state[flag] = True

    @st.fragment
    def slot() -> None:
        if st.session_state.get(flag):
            draw()
        else:
            _gate_component()(
                key=f"_automl_gate:{key}",
                data={"height": height or 450},
                on_ready_change=_asked,
            )

    slot()
