"""Sphinx configuration for the flask-status manual."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document the flask_status.py of this clone

import flask_status  # noqa: E402

project = "flask-status"
author = "flask-status maintainers"
copyright = "flask-status maintainers"
release = version = flask_status.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "furo"
html_title = f"flask-status {release}"
html_static_path = ["_static"]
