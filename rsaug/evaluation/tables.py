"""The paper's Table I layout of ``rsaug evaluate`` results: the Markdown table, the HTML page, one-line summaries.

Input: the results dictionary written as ``evaluation.json`` by :func:`rsaug.evaluation.evaluate.evaluate`. Under
Table I, both render the radiometric figures (:mod:`rsaug.evaluation.radiometry`): per checkpoint and band the real
and generated mean / std in DN, the mean error, the std error and whether the band is within target, plus the
per-class target count; the HTML page also has the per-class figures.
"""

from __future__ import annotations

import html
from typing import Any

#: Table I columns: name and whether lower or higher is better.
COLUMNS = [
    ("FID", "↓"),
    ("FID−floor", "↓"),
    ("mIoU", "↑"),
    ("FWIoU", "↑"),
    ("Acc", "↑"),
    ("LPIPS", "↑"),
    ("mCSD", "↑"),
    ("mOCD", "↓"),
]


def _row_values(entry: dict[str, Any]) -> list[str]:
    """The formatted cells of one row (``–`` where a number was not measured)."""

    def num(v: Any, fmt: str) -> str:
        return "–" if v is None else format(v, fmt)

    seg = entry.get("segmentation") or {}
    div = entry.get("diversity") or {}
    cd = entry.get("class_diversity") or {}
    pct = lambda v: None if v is None else 100.0 * v
    return [
        num(entry.get("fid"), ".2f"),
        num(entry.get("fid_minus_floor"), ".2f"),
        num(pct(seg.get("miou")), ".2f"),
        num(pct(seg.get("fwiou")), ".2f"),
        num(pct(seg.get("accuracy")), ".2f"),
        num(div.get("lpips"), ".4f"),
        num(cd.get("mcsd"), ".4f"),
        num(cd.get("mocd"), ".4f"),
    ]


def summary_line(entry: dict[str, Any]) -> str:
    """One-line summary of a checkpoint's numbers (and its radiometry target counts, when measured)."""
    line = ", ".join(f"{name} {val}" for (name, _), val in zip(COLUMNS, _row_values(entry)))
    rad = entry.get("radiometry")
    if rad:
        line += f"; radiometry {rad['summary_line']}"
    return line


#: Columns of the radiometry table (after method and band).
RADIOMETRY_COLUMNS = [
    "real mean",
    "real std",
    "gen. mean",
    "gen. std",
    "Δ mean (DN)",
    "std error (%)",
    "within target",
]


def _split(results: dict[str, Any]) -> str:
    """The evaluated split's name (``test`` for results written before it was recorded)."""
    return str(results.get("split", "test"))


def _num(v: Any, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _band_cells(b: dict[str, Any]) -> list[str]:
    """Formatted cells of one band of a radiometry comparison."""
    return [
        _num(b["real_mean"], ".2f"),
        _num(b["real_std"], ".2f"),
        _num(b["generated_mean"], ".2f"),
        _num(b["generated_std"], ".2f"),
        _num(b["mean_error_dn"], "+.2f"),
        _num(b["std_error_pct"], "+.1f"),
        "yes" if b["within_target"] else "no",
    ]


def _radiometries(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(label, radiometry report)`` of every checkpoint that has one, then of the radiometry floor (when
    measured: the floor's real tiles in the place of generated ones)."""
    pairs = [(str(e["label"]), e["radiometry"]) for e in results["checkpoints"] if e.get("radiometry")]
    floor = results.get("reference", {}).get("radiometry_floor")
    if floor and pairs:
        pairs.append((f"floor: {floor['tiles']} real {floor['split']} tiles", floor))
    return pairs


def _radiometry_rows(results: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """``(method, band, cells)`` of every checkpoint's (and the floor's) overall radiometry, band by band."""
    return [
        (label, str(b["band"]), _band_cells(b)) for label, rad in _radiometries(results) for b in rad["overall"] or []
    ]


def _radiometry_lines(results: dict[str, Any]) -> list[str]:
    """Per checkpoint (and for the floor): its radiometry summary line."""
    return [f"{label}: {rad['summary_line']}" for label, rad in _radiometries(results)]


def _table_rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """``(method, cells)`` of every checkpoint, then the real-data reference row (when measured)."""
    rows = []
    for e in results["checkpoints"]:
        rows.append((f"{e['label']} ({e['model']}, step {e['step']})", _row_values(e)))
    ref = results.get("reference", {}).get("segmentation")
    floor = results.get("reference", {}).get("fid_floor")
    if ref or floor:
        name = f"real {_split(results)} tiles (reference" + ("; FID = the floor)" if floor else ")")
        rows.append((name, _row_values({"segmentation": ref, "fid": floor["fid"] if floor else None})))
    return rows


def _notes(results: dict[str, Any]) -> list[str]:
    """How the numbers were measured, one sentence per item, plus every checkpoint's notes."""
    cfg = results["config"]
    seg = results.get("segmenter") or {}
    lines = [
        f"Tile set `{results['tileset']}` (scheme {results['scheme']}), split `{results['split']}`: "
        f"{results['tiles']} tiles; one generated image per test mask (seed {cfg['seed']}).",
        "FID: standard FID Inception (offline TF weights), TF-style bilinear resize to 299, real "
        f"{_split(results)} tiles vs "
        "generated images of their masks. Small sets give large, biased FID values: compare rows of one table only.",
    ]
    floor = results.get("reference", {}).get("fid_floor")
    if floor:
        lines.append(
            f"FID floor: FID between the {floor['evaluated_tiles']} evaluated real tiles and {floor['tiles']} other "
            f"real tiles of the `{floor['split']}` split (seeded choice): {floor['fid']:.2f}, what a perfect "
            "generator would score on sets of this size; FID−floor = FID minus it."
        )
    if not cfg.get("segmentation", True):
        lines.append("mIoU / FWIoU / Acc: not measured in this run (--no-segmentation).")
    if seg:
        lines.append(
            f"mIoU / FWIoU / Acc (%): U-Net ({seg.get('backbone')}, {seg.get('iterations')} steps, "
            f"{'trained here' if seg.get('source') == 'trained' else 'from ' + str(seg.get('file'))}) "
            "trained on real tiles, applied to the generated images; unknown pixels ignored. The "
            f"reference row applies it to the real {_split(results)} tiles."
        )
    lines.append(
        f"LPIPS: {cfg['lpips_net']} LPIPS diversity, {cfg['diversity_samples']} samples and "
        f"{cfg['diversity_pairs']} random pairs per mask, {min(cfg['diversity_masks'], results['tiles'])} "
        "masks."
    )
    lines.append(
        f"mCSD / mOCD: one class's embedding resampled at a time; LPIPS of the two images restricted "
        f"({cfg['region']}) to the class region / the rest; mean over masks per class, then over classes; "
        f"{min(cfg['csd_masks'], results['tiles'])} masks, classes with >= {cfg['csd_min_pixels']} px."
    )
    rad = next((e["radiometry"] for e in results["checkpoints"] if e.get("radiometry")), None)
    if rad:
        tgt = rad["target"]
        lines.append(
            f"Radiometry, in {rad['units']}: per-band mean and std (ddof 0) of the generated images (after "
            f"Generator.to_raster, as synthesis writes them) against the real {_split(results)} tiles, over all "
            "pixels (unknown "
            "ones included) and per class (pixels where the mask is class k; the unknown pixels are a row of their "
            "own, outside the per-class count). Δ mean = generated - real; std error = 100 (std_gen / std_real - 1). "
            f"Target: |Δ mean| <= {tgt['mean_dn']:g} DN and |std error| <= {tgt['std_pct']:g} % per band, overall "
            f"and per class (classes present in the {_split(results)} tiles); mean |error|: per class the mean over "
            "bands of |Δ mean| and |std error|, weighted by the class's real pixels."
        )
    rfloor = results.get("reference", {}).get("radiometry_floor")
    if rad and rfloor:
        lines.append(
            f"Radiometry floor: the same figures for {rfloor['tiles']} other real tiles of the `{rfloor['split']}` "
            f"split (the FID floor's draw) in the place of generated images: how far two real sets of this size "
            "differ; a generator's error at or below the floor's cannot be told from the difference between real "
            "sets."
        )
    for e in results["checkpoints"]:
        for n in e.get("notes", []):
            lines.append(f"{e['label']}: {n}")
    return lines


def markdown_table(results: dict[str, Any]) -> str:
    """The Table I layout as Markdown, with the definitions underneath."""
    head = "| Method | " + " | ".join(f"{n} {a}" for n, a in COLUMNS) + " |"
    sep = "|---|" + "---:|" * len(COLUMNS)
    body = [f"| {name} | " + " | ".join(vals) + " |" for name, vals in _table_rows(results)]
    notes = "\n".join(f"- {n}" for n in _notes(results))
    rad = ""
    rad_rows = _radiometry_rows(results)
    if rad_rows:
        units = next(e["radiometry"]["units"] for e in results["checkpoints"] if e.get("radiometry"))
        rhead = "| Method | Band | " + " | ".join(RADIOMETRY_COLUMNS) + " |"
        rsep = "|---|---:|" + "---:|" * len(RADIOMETRY_COLUMNS)
        rbody = "\n".join(f"| {m} | {b} | " + " | ".join(c) + " |" for m, b, c in rad_rows)
        counts = "\n".join(f"- {line}" for line in _radiometry_lines(results))
        rad = f"\n## Radiometry, {units}, {_split(results)} tiles\n\n{rhead}\n{rsep}\n{rbody}\n\n{counts}\n"
    return f"# rsaug evaluate\n\n{head}\n{sep}\n" + "\n".join(body) + f"\n{rad}\n{notes}\n"


def html_report(results: dict[str, Any]) -> str:
    """A self-contained HTML page: the table, per-class IoU of each checkpoint, the definitions."""
    esc = html.escape
    head = "".join(f"<th>{esc(n)} {a}</th>" for n, a in COLUMNS)
    rows = "".join(
        f"<tr><td>{esc(name)}</td>" + "".join(f"<td>{esc(v)}</td>" for v in vals) + "</tr>"
        for name, vals in _table_rows(results)
    )
    names = results["class_names"]
    seg_rows = ""
    entries = [(e["label"], e.get("segmentation")) for e in results["checkpoints"]]
    entries.append((f"real {_split(results)} tiles", results.get("reference", {}).get("segmentation")))
    entries = [(lab, s) for lab, s in entries if s]
    if entries:
        cols = "".join(f"<th>{esc(lab)}</th>" for lab, _ in entries)
        for ci, cname in enumerate(names):
            vals = []
            for _, s in entries:
                v = s["per_class_iou"][ci]
                vals.append("–" if v is None else f"{100 * v:.1f}")
            seg_rows += f"<tr><td>{esc(cname)}</td>" + "".join(f"<td>{v}</td>" for v in vals) + "</tr>"
        seg_table = (
            f"<h2>Per-class IoU (%) of the real-data U-Net</h2><table><tr><th>class</th>{cols}</tr>{seg_rows}</table>"
        )
    else:
        seg_table = ""
    notes = "".join(f"<li>{esc(n)}</li>" for n in _notes(results))
    rad_table = _radiometry_html(results)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rsaug evaluate</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #bbb; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #eee; }}
</style></head><body>
<h1>Generator quality (Table I layout)</h1>
<table><tr><th>Method</th>{head}</tr>{rows}</table>
{seg_table}
{rad_table}
<h2>How these numbers were measured</h2><ul>{notes}</ul>
<p>rsaug {esc(str(results.get("rsaug_version")))}; {results.get("seconds")} s.</p>
</body></html>
"""


def _radiometry_html(results: dict[str, Any]) -> str:
    """The radiometry sections of the HTML page: overall per band, then each checkpoint's per-class figures."""
    esc = html.escape
    rows = _radiometry_rows(results)
    if not rows:
        return ""
    units = next(e["radiometry"]["units"] for e in results["checkpoints"] if e.get("radiometry"))
    head = "".join(f"<th>{esc(c)}</th>" for c in ["Method", "Band", *RADIOMETRY_COLUMNS])
    body = "".join(
        f"<tr><td>{esc(m)}</td><td>{esc(b)}</td>" + "".join(f"<td>{esc(v)}</td>" for v in c) + "</tr>"
        for m, b, c in rows
    )
    counts = "".join(f"<li>{esc(line)}</li>" for line in _radiometry_lines(results))
    parts = [
        f"<h2>Radiometry in {esc(units)}, generated vs real {esc(_split(results))} tiles</h2><table><tr>{head}</tr>"
        f"{body}</table>"
        f"<ul>{counts}</ul>"
    ]
    for label, rad in _radiometries(results):
        nb = len(rad["overall"] or [])
        bhead = "".join(f"<th>band {b}: Δ mean (DN) / std error (%)</th>" for b in range(nb))
        trs = ""
        for c in [*rad["classes"], rad["unknown"]]:
            if c["bands"] is None:
                cells = "".join("<td>–</td>" for _ in range(nb))
            else:
                cells = "".join(
                    f"<td>{_num(b['mean_error_dn'], '+.2f')} / {_num(b['std_error_pct'], '+.1f')}"
                    f"{' ✓' if b['within_target'] else ' ✗'}</td>"
                    for b in c["bands"]
                )
            trs += f"<tr><td>{esc(c['class'])}</td><td>{c['real_pixels']}</td>{cells}</tr>"
        parts.append(
            f"<h3>{esc(label)}: radiometry per class (✓ within target; unknown pixels not counted)</h3>"
            f"<table><tr><th>class</th><th>pixels</th>{bhead}</tr>{trs}</table>"
        )
    return "\n".join(parts)
