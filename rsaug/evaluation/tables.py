"""The paper's Table I layout of ``rsaug evaluate`` results: the Markdown table, the HTML page, one-line summaries.

Input: the results dictionary written as ``evaluation.json`` by :func:`rsaug.evaluation.evaluate.evaluate`.
"""

from __future__ import annotations

import html
from typing import Any

#: Table I columns: name and whether lower or higher is better.
COLUMNS = [
    ("FID", "↓"),
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
        num(pct(seg.get("miou")), ".2f"),
        num(pct(seg.get("fwiou")), ".2f"),
        num(pct(seg.get("accuracy")), ".2f"),
        num(div.get("lpips"), ".4f"),
        num(cd.get("mcsd"), ".4f"),
        num(cd.get("mocd"), ".4f"),
    ]


def summary_line(entry: dict[str, Any]) -> str:
    """One-line summary of a checkpoint's numbers."""
    return ", ".join(f"{name} {val}" for (name, _), val in zip(COLUMNS, _row_values(entry)))


def _table_rows(results: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """``(method, cells)`` of every checkpoint, then the real-data reference row (when measured)."""
    rows = []
    for e in results["checkpoints"]:
        rows.append((f"{e['label']} ({e['model']}, step {e['step']})", _row_values(e)))
    ref = results.get("reference", {}).get("segmentation")
    if ref:
        rows.append(("real test tiles (reference)", _row_values({"segmentation": ref})))
    return rows


def _notes(results: dict[str, Any]) -> list[str]:
    """How the numbers were measured, one sentence per item, plus every checkpoint's notes."""
    cfg = results["config"]
    seg = results.get("segmenter") or {}
    lines = [
        f"Tile set `{results['tileset']}` (scheme {results['scheme']}), split `{results['split']}`: "
        f"{results['tiles']} tiles; one generated image per test mask (seed {cfg['seed']}).",
        "FID: standard FID Inception (offline TF weights), TF-style bilinear resize to 299, real test tiles vs "
        "generated images of their masks. Small sets give large, biased FID values: compare rows of one table only.",
    ]
    if not cfg.get("segmentation", True):
        lines.append("mIoU / FWIoU / Acc: not measured in this run (--no-segmentation).")
    if seg:
        lines.append(
            f"mIoU / FWIoU / Acc (%): U-Net ({seg.get('backbone')}, {seg.get('iterations')} steps, "
            f"{'trained here' if seg.get('source') == 'trained' else 'from ' + str(seg.get('file'))}) "
            "trained on real tiles, applied to the generated images; unknown pixels ignored. The "
            "reference row applies it to the real test tiles."
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
    return f"# rsaug evaluate\n\n{head}\n{sep}\n" + "\n".join(body) + f"\n\n{notes}\n"


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
    entries.append(("real test tiles", results.get("reference", {}).get("segmentation")))
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
<h2>How these numbers were measured</h2><ul>{notes}</ul>
<p>rsaug {esc(str(results.get("rsaug_version")))}; {results.get("seconds")} s.</p>
</body></html>
"""
