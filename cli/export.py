"""``rsaug export-generator``: write a trained generator alone as a small, safe file with a data card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rsaug.cli.common import guarded
from rsaug.gan.checkpoint import export_generator


def _number(value: Any, fmt: str) -> str | None:
    return None if not isinstance(value, (int, float)) or isinstance(value, bool) else format(value, fmt)


def score_line(scores: dict[str, Any]) -> str:
    """One line of the scores in a data card's ``evaluation`` (FID, mIoU, LPIPS diversity, radiometry)."""
    parts = []
    if (fid := _number(scores.get("fid"), ".1f")) is not None:
        parts.append(f"FID {fid}")
    seg = scores.get("segmentation") or {}
    if (miou := _number(seg.get("miou"), ".3f")) is not None:
        real = _number(seg.get("real_miou"), ".3f")
        parts.append(f"mIoU {miou}" + (f" (real {real})" if real is not None else ""))
    if (lpips := _number((scores.get("diversity") or {}).get("lpips"), ".3f")) is not None:
        parts.append(f"LPIPS diversity {lpips}")
    if (mcsd := _number((scores.get("class_diversity") or {}).get("mcsd"), ".4f")) is not None:
        parts.append(f"mCSD {mcsd}")
    line = (scores.get("radiometry") or {}).get("summary_line")
    if line:
        parts.append(f"radiometry {line}")
    return "; ".join(parts) or "no scores recorded"


@click.command("export-generator", context_settings={"show_default": True})
@click.argument("src", type=click.Path(path_type=Path, readable=False))
@click.argument("dst", type=click.Path(path_type=Path, readable=False))
@click.option(
    "--evaluation",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="no scores",
    metavar="EVAL_JSON",
    help="An `rsaug evaluate` result (evaluation.json) that scored SRC: its FID, segmentation fidelity, "
    "diversity and radiometry go into the data card (the entry with SRC's SHA-256; refused if none matches).",
)
@click.option(
    "--float32",
    is_flag=True,
    default=False,
    help="Keep the weights in float32 (default: float16, half the size; outputs change by float16 rounding, "
    "well below one DN for 8-bit imagery).",
)
@click.option("--overwrite", is_flag=True, default=False, help="Replace an existing DST (and DST.json).")
@guarded
def command(src: Path, dst: Path, evaluation: Path | None, float32: bool, overwrite: bool) -> None:
    """Export the generator of the checkpoint SRC (a file or a run directory) as DST.

    DST holds only what generation needs: the EMA generator weights, the model config, class scheme,
    normalisation, the training tile set's description and a data card (source file and SHA-256, model,
    training data, training options, weights, scores). No discriminator, conductor, optimiser or RNG state,
    so it is a fraction of the checkpoint's size. It loads without executing code, like every rsaug model
    file, and `rsaug synthesize -c DST`, `rsaug evaluate` and `load_generator` accept it as they accept a
    checkpoint. The data card is also written as DST.json. DST must not exist (unless --overwrite) and
    nothing is written on an error.
    """
    card = export_generator(src, dst, evaluation=evaluation, half=not float32, overwrite=overwrite)
    model, weights, training = card["model"], card["weights"], card["training"]
    size = dst.stat().st_size / 1e6
    source = card["source"]
    click.echo(
        f"wrote {dst}: {size:.1f} MB ({weights['dtype']} {weights['source'].upper()} weights of "
        f"{model['family']}, {model['parameters'] / 1e6:.2f} M parameters, step {training['steps']}); "
        f"card {dst}.json"
    )
    click.echo(f"  from {source['file']} ({source['bytes'] / 1e6:.1f} MB), sha256 {source['sha256'][:16]}...")
    scores = card.get("evaluation")
    if scores:
        where = ", ".join(
            str(v) for v in (scores.get("label"), scores.get("split") and f"{scores['split']} split") if v
        )
        click.echo(f"  scores{f' ({where})' if where else ''}: {score_line(scores)}")
    for note in card.get("notes") or []:
        click.echo(f"  note: {note}")
