"""The benchmark report page: ``report.html`` is self-contained (no scripts, no external resources; plots and
gallery images embedded as base64 PNG data URIs)."""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np

from rsaug.benchmark.statistics import METRIC_LABELS, METRICS, protocol_reductions


def _to_rgb(img: np.ndarray) -> np.ndarray:
    """(C, H, W) any dtype -> (H, W, 3) uint8 for display (first three bands, 2-98 % stretch unless uint8)."""
    img = np.asarray(img)
    x = img[:3] if img.shape[0] >= 3 else np.repeat(img[:1], 3, axis=0)
    if x.dtype == np.uint8:
        return np.moveaxis(x, 0, -1)
    x = x.astype(np.float64)
    lo, hi = np.percentile(x, 2), np.percentile(x, 98)
    return np.moveaxis((np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8), 0, -1)


def png_data_uri(rgb: np.ndarray) -> str:
    """Encode an (H, W, 3) uint8 array as a ``data:image/png;base64,...`` URI."""
    import matplotlib.image as mpimg

    buf = io.BytesIO()
    mpimg.imsave(buf, np.ascontiguousarray(rgb), format="png")
    return png_bytes_uri(buf.getvalue())


def png_bytes_uri(png: bytes) -> str:
    """Encode PNG file bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def gallery_html(gallery: list[dict[str, Any]], palette: np.ndarray | None) -> str:
    """The mask / real / synthetic table of the report (masks coloured with ``palette``)."""
    if not gallery:
        return "<p>No synthetic samples to show (no synthetic tile set in this benchmark).</p>"
    pal = palette if palette is not None else np.zeros((256, 3), np.uint8)
    rows = []
    for g in gallery:
        cells = [f"<td><img alt='mask' src='{png_data_uri(pal[np.asarray(g['mask'])])}'></td>"]
        cells.append(
            f"<td><img alt='real' src='{png_data_uri(_to_rgb(g['real']))}'></td>"
            if g.get("real") is not None
            else "<td>(source tile not in the real set)</td>"
        )
        for s in g.get("synthetic", []):
            cells.append(f"<td><img alt='synthetic' src='{png_data_uri(_to_rgb(s))}'></td>")
        rows.append(
            f"<tr><th>{html.escape(str(g.get('tile_id', '')))}<br><small>{html.escape(str(g.get('source', '')))}"
            f"</small></th>{''.join(cells)}</tr>"
        )
    ncols = max(len(g.get("synthetic", [])) for g in gallery)
    head = (
        "<tr><th>tile</th><th>mask</th><th>real</th>"
        + "".join(f"<th>synthetic {i + 1}</th>" for i in range(ncols))
        + "</tr>"
    )
    return f"<table class='gallery'>{head}{''.join(rows)}</table>"


def _fmt(v: Any, digits: int = 4) -> str:
    """A table cell: ``–`` for None / NaN, floats with ``digits`` decimals, anything else escaped."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def render_html(report: dict[str, Any], plots: dict[str, bytes | None], gallery_html: str) -> str:
    """The self-contained report page (no scripts; images as data URIs)."""
    s = report["summary"]
    arms = report["arms"]
    e = html.escape
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(report['title'])}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#eee}"
        "td:first-child,th:first-child{text-align:left}.ok{color:#070}.no{color:#a00}"
        "table.gallery img{width:160px;image-rendering:pixelated}img.plot{max-width:100%}</style></head><body>",
        f"<h1>{e(report['title'])}</h1>",
    ]
    cfg = report.get("config", {})
    seg = cfg.get("segmenter", {})
    if cfg:
        parts.append(
            "<h2>Protocol</h2><p>TorchGeo <code>SemanticSegmentationTask</code> U-Net, backbone "
            f"<code>{e(str(seg.get('backbone')))}</code>, random initialisation; "
            f"{_fmt(seg.get('iterations'))} steps, batch {_fmt(seg.get('batch_size'))}, "
            f"{_fmt(seg.get('crop'))}-px crops, AdamW lr {_fmt(seg.get('lr'))} with {e(str(seg.get('schedule')))}"
            " schedule, identical for every arm. Seed <i>s</i> = the same initialisation and the same "
            "real-tile draw sequence in every arm; comparisons are paired by seed. Evaluation: every pixel "
            "of every tile of the real test split, unknown pixels ignored. "
            + (
                f"Validation mIoU on the real {e(str(cfg.get('val_split')))} split every "
                f"{_fmt(seg.get('val_every'))} steps; weights evaluated: {e(str(seg.get('select')))}. "
                if seg.get("val_every")
                else ""
            )
            + (f"Test tiles: <code>{e(str(cfg.get('test_set')))}</code>. " if cfg.get("test_set") else "")
            + f"Preset: {e(str(cfg.get('preset')))}. Real tiles: <code>{e(str(cfg.get('real')))}</code>; "
            f"synthetic sets: {e(', '.join(f'{k} = {v}' for k, v in cfg.get('synthetic', {}).items()) or 'none')}.</p>"
        )
        reduced = protocol_reductions(cfg)
        if reduced:
            parts.append(
                f"<p><b>Reduced protocol</b> compared with preset {e(str(cfg.get('preset')))}: "
                + e("; ".join(reduced))
                + ". Its numbers are noisier and less converged than those of a "
                "full preset run.</p>"
            )
    parts.append(
        "<h2>Scores per arm</h2><table><tr><th>arm</th><th>seeds</th>"
        + "".join(f"<th>{METRIC_LABELS[m]} mean ± std</th>" for m in METRICS)
        + "</tr>"
    )
    for a in arms:
        st = s["arms"][a]
        parts.append(
            f"<tr><td>{e(a)}</td><td>{st['n']}</td>"
            + "".join(f"<td>{_fmt(st[m]['mean'])} ± {_fmt(st[m]['std'])}</td>" for m in METRICS)
            + "</tr>"
        )
    parts.append("</table>")
    parts.append(
        "<h2>Paired comparisons (d-metrics)</h2><p>Relative change = change of the mean relative to the "
        "reference arm (the paper's d-mIoU / d-FWIoU / d-acc, %); absolute change in percentage points; "
        "per-seed differences with mean ± std, paired t-test and sign count.</p>"
        "<table><tr><th>arm vs reference</th><th>metric</th><th>seeds</th><th>relative change (%)</th>"
        "<th>absolute change (points)</th><th>paired diff. mean ± std (points)</th><th>t-test p</th>"
        "<th>seeds +/−</th><th>resolved?</th></tr>"
    )
    for c in s["comparisons"]:
        for m in METRICS:
            x = c[m]
            cls = "ok" if x["resolved"] else "no"
            parts.append(
                f"<tr><td>{e(c['arm'])} vs {e(c['reference'])}</td><td>{METRIC_LABELS[m]}</td><td>{x['n']}</td>"
                f"<td>{_fmt(x['relative_pct'], 2)}</td><td>{_fmt(x['points'], 2)}</td>"
                f"<td>{_fmt(x['mean_diff'] * 100, 2)} ± {_fmt(x['std_diff'] * 100, 2)}</td>"
                f"<td>{_fmt(x['p_ttest'], 3)}</td><td>{x['n_pos']}/{x['n_neg']}</td>"
                f"<td class='{cls}'>{'yes' if x['resolved'] else 'no'}</td></tr>"
            )
    parts.append("</table>")
    nz = s["noise"]
    parts.append(
        f"<h2>Noise vs effect</h2><p>Seed-to-seed standard deviation of the baseline mIoU: "
        f"{_fmt(nz['baseline_std_points'], 2)} points. An effect is called resolved when |mean paired "
        "difference| &gt; 2 standard errors of the paired differences (and paired t-test p &lt; 0.05 with "
        "3 or more seeds).</p><ul>" + "".join(f"<li>{e(i['text'])}</li>" for i in nz["comparisons"]) + "</ul>"
    )
    for key, cap in (
        ("metrics_by_arm", "Scores per arm"),
        ("paired_differences", "Paired differences"),
        ("per_class_iou", "Per-class IoU (Fig. 9 style)"),
        ("class_shares", "Class pixel shares (Fig. 8 style)"),
    ):
        if plots.get(key):
            uri = png_bytes_uri(plots[key])  # type: ignore[arg-type]
            parts.append(f"<h2>{e(cap)}</h2><img class='plot' alt='{e(cap)}' src='{uri}'>")
    parts.append(_sweep_html(report.get("sweep", {}), plots))
    parts.append(_validation_html(report.get("validation", {}), plots))
    names = report["class_names"]
    parts.append(
        "<h2>Per-class IoU (mean over seeds)</h2><table><tr><th>class</th>"
        + "".join(f"<th>{e(a)}</th>" for a in arms)
        + "".join(f"<th>share {e(k)} (%)</th>" for k in report["class_shares"])
        + "</tr>"
    )
    for k, n in enumerate(names):
        parts.append(
            f"<tr><td>{e(n)}</td>"
            + "".join(f"<td>{_fmt(s['arms'][a]['iou_mean'][k])}</td>" for a in arms)
            + "".join(f"<td>{_fmt(v[k] * 100, 2)}</td>" for v in report["class_shares"].values())
            + "</tr>"
        )
    parts.append("</table><h2>Samples: mask / real / synthetic</h2>" + gallery_html)
    parts.append(
        "<h2>Runs</h2><table><tr><th>arm</th><th>seed</th><th>mIoU</th><th>FWIoU</th><th>acc</th>"
        "<th>steps</th><th>samples</th><th>draws per source</th><th>train s</th></tr>"
    )
    for r in sorted(report["runs"], key=lambda r: (arms.index(r["arm"]) if r["arm"] in arms else 99, r["seed"])):
        t = r.get("train", {})
        parts.append(
            f"<tr><td>{e(r['arm'])}</td><td>{r['seed']}</td>"
            + "".join(f"<td>{_fmt(r['scores'][m])}</td>" for m in METRICS)
            + f"<td>{_fmt(t.get('steps'))}</td>"
            f"<td>{_fmt(t.get('samples'))}</td>"
            f"<td>{e(', '.join(f'{k}: {v}' for k, v in t.get('draws', {}).items()))}</td>"
            f"<td>{_fmt(t.get('seconds'), 0)}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "\n".join(parts)


def _sweep_html(sw: dict[str, Any], plots: dict[str, bytes | None]) -> str:
    """The size-sweep and replace-curve sections (tables and their plots)."""
    e = html.escape
    parts = []
    for curve, title, what in (
        ("size", "Training-set-size sweep (Table III)", "real tiles kept"),
        ("replace", "Replacing real tiles with synthetic ones (companion study, Fig. 3)", "share replaced"),
    ):
        rows = [r for r in sw.get("rows", []) if r["curve"] == curve]
        if not rows:
            continue
        parts.append(
            f"<h2>{e(title)}</h2><table><tr><th>arm vs reference</th><th>{e(what)}</th><th>seeds</th>"
            "<th>mIoU arm</th><th>mIoU reference</th>"
            + "".join(f"<th>d-{METRIC_LABELS[m]} % (points, p)</th>" for m in METRICS)
            + "<th>resolved?</th></tr>"
        )
        for r in rows:
            c = r["comparison"]
            parts.append(
                f"<tr><td>{e(r['arm'])} vs {e(r['reference'])}</td><td>{r['fraction']:g}</td><td>{c['miou']['n']}</td>"
                f"<td>{_fmt(r['arm_stats']['miou']['mean'])} ± {_fmt(r['arm_stats']['miou']['std'])}</td>"
                f"<td>{_fmt(r['reference_stats']['miou']['mean'])} ± {_fmt(r['reference_stats']['miou']['std'])}</td>"
                + "".join(
                    f"<td>{_fmt(c[m]['relative_pct'], 2)} ({_fmt(c[m]['points'], 2)}, {_fmt(c[m]['p_ttest'], 3)})</td>"
                    for m in METRICS
                )
                + f"<td class='{'ok' if c['miou']['resolved'] else 'no'}'>{'yes' if c['miou']['resolved'] else 'no'}"
                "</td></tr>"
            )
        parts.append("</table>")
        key = "size_sweep" if curve == "size" else "replace_curve"
        if plots.get(key):
            uri = png_bytes_uri(plots[key])  # type: ignore[arg-type]
            parts.append(f"<img class='plot' alt='{e(title)}' src='{uri}'>")
    return "".join(parts)


def _validation_html(val: dict[str, Any], plots: dict[str, bytes | None]) -> str:
    """The "Validation curves and convergence" section: the convergence table per arm and the curves plot."""
    e = html.escape
    arms = val.get("arms", {})
    if not arms:
        return ""
    parts = [
        "<h2>Validation curves and convergence</h2>",
        f"<p>Rule: {e(str(val.get('rule', '')))}. Model selection (best-val) uses the validation split only.</p>"
        "<table><tr><th>arm</th><th>runs</th><th>with val curve</th><th>converged?</th>"
        "<th>best step mean ± std</th><th>best val mIoU mean ± std</th></tr>",
    ]
    for arm, st in arms.items():
        if not st["recorded"]:
            verdict, cls = "not recorded", ""
        elif st["all_converged"]:
            verdict, cls = f"yes (all {st['recorded']})", "ok"
        else:
            verdict, cls = f"no ({st['converged']} of {st['recorded']})", "no"
        parts.append(
            f"<tr><td>{e(arm)}</td><td>{st['runs']}</td><td>{st['recorded']}</td>"
            f"<td class='{cls}'>{e(verdict)}</td>"
            f"<td>{_fmt(st['best_step']['mean'], 0)} ± {_fmt(st['best_step']['std'], 0)}</td>"
            f"<td>{_fmt(st['best_val_miou']['mean'])} ± {_fmt(st['best_val_miou']['std'])}</td></tr>"
        )
    parts.append("</table>")
    if plots.get("val_curves"):
        uri = png_bytes_uri(plots["val_curves"])  # type: ignore[arg-type]
        parts.append(f"<img class='plot' alt='Validation curves' src='{uri}'>")
    return "".join(parts)
