"""The ``rsaug`` click group; each subcommand lives in its own module."""

from __future__ import annotations

import click

from rsaug import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="rsaug")
def cli() -> None:
    """rsaug: tile georeferenced scenes, train CSEBGAN, synthesize class-balanced data, benchmark it."""


def _register() -> None:
    import importlib

    for name in ("tile", "train", "synthesize", "filter", "evaluate", "benchmark", "demo", "convert", "export", "stac"):
        try:
            mod = importlib.import_module(f"rsaug.cli.{name}")
        except ModuleNotFoundError as exc:  # subcommand not written yet
            if exc.name == f"rsaug.cli.{name}":
                continue
            raise
        cli.add_command(mod.command)


_register()
