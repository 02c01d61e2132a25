"""The self-contained HTML report of a run (``RUN/report.html``).

One file that opens offline: plotly.js is embedded once, every figure is plotly JSON rendered in
the page, and nothing is fetched from the network. Sections: the baseline-versus-selected card,
the Pareto plot, lineage, a sortable table of every candidate, the search and tuning studies
(Optuna's own plotly figures), training curves, the environment and the recipe.
"""

from __future__ import annotations

import html
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from slimkit.core.atomic import write_with
from slimkit.core.runs import Candidate, Run
from slimkit.core.studies import default_url, open_storage
from slimkit.measure.format import (
    fmt_bytes,
    fmt_count,
    fmt_delta,
    fmt_metric,
    fmt_ms,
    fmt_rate,
    ratio,
)

REPORT = "report.html"

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1200px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem}td,th{padding:.3rem .6rem;
border-bottom:1px solid #eee;text-align:right}th{cursor:pointer;background:#f6f6f6}
td:first-child,th:first-child{text-align:left}.card{display:flex;gap:1rem;flex-wrap:wrap}
.metric{border:1px solid #ddd;border-radius:8px;padding:.6rem 1rem;min-width:9rem}
.metric b{display:block;font-size:1.2rem}.metric small{color:#666}.good{color:#17803d}
.bad{color:#b42318}pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:.8rem}
.muted{color:#777}
"""

SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function(th, col){
  th.addEventListener('click', function(){
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var asc = th.dataset.asc !== 'true'; th.dataset.asc = asc;
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      if (isNaN(nx) !== isNaN(ny)) return isNaN(nx) ? 1 : -1;  // missing values last
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny
                                         : x.localeCompare(y, undefined, {numeric: true});
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def _attr(value: Any) -> str:
    """``value`` made safe inside a quoted HTML attribute."""
    return html.escape(str(value), quote=True)


def _figure(fig: go.Figure, div_id: str) -> str:
    payload = fig.to_json().replace("</", "<\\/")  # never end the <script> early
    return (f'<div id="{div_id}" class="plot" style="height:460px"></div><script>'
            f'(function(){{var f={payload};Plotly.newPlot("{div_id}",f.data,f.layout,'
            f'{{displaylogo:false,responsive:true}});}})();</script>')


def _ratio(base: float | None, value: float | None, higher_is_better: bool) -> str:
    r = ratio(base, value, higher_is_better)
    if r is None:
        return ""
    return f'<small class="{"good" if r >= 1 else "bad"}">{r:.2f}x</small>'


def summary_card(run: Run) -> str:
    """Baseline versus selected: accuracy, latency, throughput, size, params."""
    base, chosen, metric = run.baseline, run.selected, run.metric_name
    if base is None:
        return "<p>No baseline yet.</p>"
    if chosen is None:
        return (f"<p class='bad'>No candidate meets every constraint "
                f"({html.escape(', '.join(f'{k} = {v}' for k, v in run.constraints.items()))})"
                f"; nothing is selected. Baseline <b>{html.escape(base.id)}</b>: "
                f"{html.escape('; '.join(base.violations) or 'see the table below')}.</p>")
    rows = []
    for split in ("val", "test"):
        b, c = base.metric(split, metric), chosen.metric(split, metric)
        delta = "" if b is None or c is None else fmt_delta(c, b, metric, space=" ")
        rows.append((f"{split} {metric}", fmt_metric(b, metric), fmt_metric(c, metric),
                     f"<small>{delta}</small>"))
    for q in ("p50", "p95"):
        b_lat, c_lat = base.latency_ms(quantile=q), chosen.latency_ms(quantile=q)
        rows.append((f"latency {q}, batch 1 (onnxruntime)", fmt_ms(b_lat), fmt_ms(c_lat),
                     _ratio(b_lat, c_lat, False)))
    b_thr, c_thr = base.throughput(), chosen.throughput()
    rows.append((f"throughput, batch {base.throughput_batch() or '?'}",
                 "-" if b_thr is None else f"{b_thr:,.0f}/s",
                 "-" if c_thr is None else f"{c_thr:,.0f}/s", _ratio(b_thr, c_thr, True)))
    for key, label, fmt in (("size_bytes", "size (ONNX file)", fmt_bytes),
                            ("params", "parameters", fmt_count)):
        b, c = base.stat(key), chosen.stat(key)
        rows.append((label, fmt(b), fmt(c), _ratio(b, c, False)))
    cells = "".join(f"<div class='metric'><small>{html.escape(name)}</small><b>{cv}</b>"
                    f"<small>baseline {bv}</small> {ratio}</div>" for name, bv, cv, ratio in rows)
    constraints = ", ".join(f"{k} = {v}" for k, v in run.constraints.items()) or "none"
    met = "all met" if chosen.feasible else "; ".join(chosen.violations)
    label = html.escape(str(chosen.params.get("chain") or chosen.technique))
    return (f"<p>Baseline <b>{html.escape(base.id)}</b> ({html.escape(base.technique)}) versus "
            f"selected <b>{html.escape(chosen.id)}</b> ({label}"
            f"). Constraints: {html.escape(constraints)} — {html.escape(met)}.</p>"
            f"<div class='card'>{cells}</div>")


def pareto_figure(run: Run) -> go.Figure:
    """Val metric against onnxruntime latency; marker area follows the file size."""
    metric = run.metric_name
    done = [c for c in run.candidates if c.status == "ok" and c.latency_ms() is not None]
    biggest = max((c.size_bytes or 1 for c in done), default=1)
    fig = go.Figure()
    marked = (run.baseline_id, run.selected_id)
    groups = (("infeasible", lambda c: not c.feasible and c.id not in marked, "#bbbbbb"),
              ("feasible", lambda c: c.feasible and c.id not in (run.baseline_id,
                                                                 run.selected_id), "#1f77b4"),
              ("baseline", lambda c: c.id == run.baseline_id, "#ff7f0e"),
              ("selected", lambda c: c.id == run.selected_id and c.id != run.baseline_id,
               "#2ca02c"))
    for name, keep, color in groups:
        chosen = [c for c in done if keep(c)]
        if not chosen:
            continue
        fig.add_trace(go.Scatter(
            x=[c.latency_ms() for c in chosen], y=[c.metric("val", metric) for c in chosen],
            mode="markers+text", name=name, text=[c.id for c in chosen],
            textposition="top center",
            marker={"color": color, "line": {"width": 1, "color": "#333"},
                    "size": [10 + 40 * ((c.size_bytes or 0) / biggest) ** 0.5
                             for c in chosen]},
            hovertext=[f"{c.id} {c.params.get('chain') or c.technique}<br>"
                       f"size {fmt_bytes(c.size_bytes)}" for c in chosen]))
    trials = [t for t in run.config.get("search", {}).get("trials", [])
              if t.get("values") and run.config.get("objective", "latency") == "latency"]
    if trials:
        fig.add_trace(go.Scatter(
            x=[t["values"][1] for t in trials], y=[t["values"][0] for t in trials],
            mode="markers", name="search trials", opacity=0.35,
            marker={"symbol": "x", "color": "#555", "size": 7},
            hovertext=[f"trial {t['number']}: {t['chain']}" for t in trials]))
    fig.update_layout(xaxis_title="onnxruntime latency p50, batch 1 (ms, log)",
                      yaxis_title=f"val {metric}", xaxis_type="log", template="plotly_white",
                      legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"})
    return fig  # the legend above the plot: below, it covers the axis title


def lineage(run: Run) -> str:
    """Which technique produced which candidate, as a nested list from the roots."""
    ids = {c.id for c in run.candidates}
    children: dict[str | None, list[Candidate]] = {}
    for c in run.candidates:  # a parent not in the run makes its child a root
        children.setdefault(c.parent if c.parent in ids else None, []).append(c)
    seen: set[str] = set()

    def branch(parent: str | None) -> str:
        items = []
        for c in children.get(parent, []):
            if c.id in seen:
                continue
            seen.add(c.id)
            chain = f" · {html.escape(str(c.params['chain']))}" if c.params.get("chain") else ""
            items.append(f"<li><b>{html.escape(c.id)}</b> {html.escape(c.technique)}{chain} "
                         f"<span class='muted'>{html.escape(c.status)}</span>"
                         f"{branch(c.id)}</li>")
        return f"<ul>{''.join(items)}</ul>" if items else ""

    return branch(None)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} MB"


def candidates_table(run: Run) -> str:
    """Every candidate with every headline measurement, formatted as in the terminal (units,
    thousands separators); each cell keeps its raw value in ``data-v``, so a click on a header
    sorts numerically."""
    metric = run.metric_name

    def score(value: float | None) -> str:
        return fmt_metric(value, metric)

    text = str
    columns: list[tuple[str, Callable[[Candidate], Any], Callable[[Any], str]]] = [
        ("id", lambda c: c.id, text), ("parent", lambda c: c.parent or "-", text),
        ("technique", lambda c: c.technique, text),
        ("status", lambda c: c.status if c.status != "ok" or c.feasible else "infeasible", text),
        (f"val {metric}", lambda c: c.metric("val", metric), score),
        (f"test {metric}", lambda c: c.metric("test", metric), score),
        ("ort p50", lambda c: c.latency_ms(), fmt_ms),
        ("ort p95", lambda c: c.latency_ms(quantile="p95"), fmt_ms),
        ("ort p99", lambda c: c.latency_ms(quantile="p99"), fmt_ms),
        ("ort throughput", lambda c: c.throughput(), fmt_rate),
        ("torch p50", lambda c: c.latency_ms("torch"), fmt_ms),
        ("size", lambda c: c.size_bytes, fmt_bytes),
        ("gzip size", lambda c: c.stat("gzip_size_bytes"), fmt_bytes),
        ("params", lambda c: c.stat("params"), fmt_count),
        ("non-zero", lambda c: c.stat("nonzero_params"), fmt_count),
        ("MACs", lambda c: c.stat("macs"), fmt_count),
        ("peak RSS", lambda c: c.stat("peak_rss_mb"), _mb)]
    rows = []
    for c in run.candidates:
        cells = []
        for _, get, show in columns:
            value = get(c)
            shown = "-" if value is None else show(value)
            raw = "" if value is None else value
            cells.append(f"<td data-v='{_attr(raw)}'>{html.escape(shown)}</td>")
        error = f" title='{_attr(c.error)}'" if c.error else ""
        rows.append(f"<tr{error}>{''.join(cells)}</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h, _, _ in columns)
    return (f"<table class='sortable'><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def training_figure(run: Run) -> go.Figure | None:
    """Loss and val metric per epoch of every trained candidate."""
    metric = run.metric_name
    fig = go.Figure()
    for c in run.candidates:
        history = c.training.get("history") or []
        if not history:
            continue
        epochs = [h["epoch"] for h in history]
        fig.add_trace(go.Scatter(x=epochs, y=[h.get("train_loss") for h in history],
                                 name=f"{c.id} train loss", mode="lines"))
        fig.add_trace(go.Scatter(x=epochs, y=[h.get(f"val_{metric}") for h in history],
                                 name=f"{c.id} val {metric}", mode="lines", yaxis="y2",
                                 line={"dash": "dot"}))
    if not fig.data:
        return None
    fig.update_layout(xaxis_title="epoch", yaxis_title="train loss",
                      yaxis2={"title": f"val {metric}", "overlaying": "y", "side": "right"},
                      template="plotly_white")
    return fig


def study_figures(run: Run) -> list[tuple[str, go.Figure]]:
    """Optuna's optimization history and parameter importances for each study of the run."""
    if run.path is None or not (run.path / "study.db").is_file():
        return []
    figures: list[tuple[str, go.Figure]] = []
    with warnings.catch_warnings():  # importance evaluators warn about small studies
        warnings.simplefilter("ignore")
        _add_study_figures(open_storage(default_url(run.path)), figures)  # corrupt: one line
    return figures


def _add_study_figures(storage: optuna.storages.BaseStorage,
                       figures: list[tuple[str, go.Figure]]) -> None:
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        complete = study.get_trials(deepcopy=False,
                                    states=(optuna.trial.TrialState.COMPLETE,))
        if not complete:
            continue
        target = None if len(study.directions) == 1 else (lambda t: t.values[0])
        name = "val metric" if target is not None else None
        try:
            figures.append((f"{summary.study_name}: optimization history",
                            optuna.visualization.plot_optimization_history(
                                study, target=target, target_name=name or "Objective Value")))
            if len(complete) >= 2:
                figures.append((f"{summary.study_name}: parameter importances",
                                optuna.visualization.plot_param_importances(
                                    study, target=target, target_name=name or "Objective Value")))
        except (ValueError, RuntimeError):  # a single parameter value, ...
            continue


def render(run: Run) -> str:
    """The report as one HTML string."""
    sections = [("Baseline versus selected", summary_card(run)),
                ("Trade-off (Pareto)", _figure(pareto_figure(run), "pareto")
                 + f"<p class='muted'>Pareto front: {html.escape(', '.join(run.pareto_ids)) or '-'}"
                   f"; marker "
                   f"area follows the ONNX file size; grey = infeasible.</p>"),
                ("Lineage", lineage(run)),
                ("All candidates", candidates_table(run))]
    for i, (title, fig) in enumerate(study_figures(run)):
        sections.append((html.escape(title), _figure(fig, f"study{i}")))
    curves = training_figure(run)
    if curves is not None:
        sections.append(("Training curves", _figure(curves, "training")))
    sections.append(("Environment", f"<pre>{html.escape(json.dumps(run.env, indent=2))}</pre>"))
    recipe = {k: v for k, v in run.config.items() if k in ("recipe", "optimize")}
    sections.append(("Recipe", f"<pre>{html.escape(json.dumps(recipe, indent=2))}</pre>"))
    body = "".join(f"<h2>{title}</h2>{content}" for title, content in sections)
    title = f"slimkit · {run.run} · {run.task}"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{STYLE}</style><script>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(title)} <small class='muted'>seed {html.escape(str(run.seed))} · "
            f"{html.escape(run.status)}"
            f"</small></h1>{body}<script>{SORT_JS}</script></body></html>")


def write_report(run: Run) -> Path:
    """Write ``RUN/report.html`` atomically and return its path."""
    if run.path is None:
        raise ValueError("the run has no folder")
    path = run.path / REPORT
    text = render(run)
    write_with(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
