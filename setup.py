"""Setuptools shim; all metadata (including the ``cli/`` -> ``rsaug.cli`` mapping) lives in setup.cfg."""

from setuptools import setup

setup()
