"""Command-line interface of rsaug (installed as ``rsaug.cli``)."""
