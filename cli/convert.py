"""``rsaug convert-checkpoint``: rewrite a trusted checkpoint that does not load safely in the current format."""

from __future__ import annotations

from pathlib import Path

import click

from rsaug.cli.common import guarded
from rsaug.gan.checkpoint import CHECKPOINT_VERSION, convert_checkpoint


@click.command("convert-checkpoint", context_settings={"show_default": True})
@click.argument("src", type=click.Path(path_type=Path, readable=False))
@click.argument("dst", type=click.Path(path_type=Path, readable=False))
@click.option(
    "--trust",
    is_flag=True,
    default=False,
    help="Required: you vouch for SRC. Converting unpickles it without restrictions, so it can run code from "
    "the file; never pass --trust for a file from a source you do not trust.",
)
@guarded
def command(src: Path, dst: Path, trust: bool) -> None:
    """Convert the trusted checkpoint SRC to DST in the current, safe format (version {version}).

    rsaug loads checkpoints with PyTorch's restricted unpickler, which refuses any file that holds Python
    objects other than tensors and plain values (such objects can run code while loading). Checkpoints
    written by rsaug itself always load; use this command only for a file that is refused and that you trust
    (e.g. written by a modified rsaug). DST must not exist; it is checked to load safely before this command
    succeeds.
    """
    out = convert_checkpoint(src, dst, trust=trust)
    click.echo(f"wrote {out} (checkpoint format {CHECKPOINT_VERSION}; loads without executing code)")


command.help = (command.help or "").replace("{version}", str(CHECKPOINT_VERSION))
