"""Sphinx configuration of the hmog_xp documentation.

Build (what ``python -m nox -s docs`` does)::

    python examples/toy_2d.py --out docs/_generated
    python examples/digits_clustering.py --out docs/_generated
    sphinx-build -W --keep-going -b html docs docs/_build/html

The example scripts draw the figures the example pages include; the API pages are generated
from the package's numpydoc docstrings. Nothing here needs the network at build time.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document the working tree, installed or not

import hmog_xp  # noqa: E402

project = "hmog_xp"
author = "hmog_xp developers"
copyright = "hmog_xp developers, MIT licence"
release = hmog_xp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # Bundles MathJax 3 into _static/mathjax, so formulas render offline (no CDN).
    "sphinx-mathjax-offline",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# -- API pages -------------------------------------------------------------------------------
# One generated page per object, into the gitignored docs/_generated/api/.
autosummary_generate = True
autosummary_imported_members = False
autodoc_member_order = "groupwise"
autodoc_typehints = "none"  # the numpydoc sections carry the types and shapes
autodoc_class_signature = "mixed"
autodoc_default_options = {"show-inheritance": True}
add_module_names = False

# Members are listed by autodoc (templates in _templates/autosummary), not by numpydoc.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- pages -----------------------------------------------------------------------------------
myst_heading_anchors = 3
# The theme of NumPy, SciPy and pandas: searchable, a navigation bar, dark mode, and its
# assets served from the site itself (nothing loads from the network).
html_theme = "pydata_sphinx_theme"
html_title = f"hmog_xp {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars: dict[str, list[str]] = {}

# The example pages include figures that the example scripts draw. Say how to make them
# before Sphinx reports each missing image on its own.
_FIGURES = DOCS / "_generated"
if not (_FIGURES / "toy_densities.png").exists():
    print(
        "hmog_xp docs: no figures in docs/_generated/; run `python -m nox -s docs`, or the "
        "example scripts with `--out docs/_generated`, before sphinx-build",
        file=sys.stderr,
    )


# -- docstring fixes on the Sphinx side ------------------------------------------------------
# Some shapes in the package's docstrings unpack a tuple, e.g. ``shape (..., *data_shape)``.
# numpydoc passes the type text through as reST, where a bare ``*`` opens emphasis; escape it.
_STARRED_SHAPE = re.compile(r"(?<=[(,\s])\*(?=[A-Za-z_][\w.]*\s*[,)])")


# Likewise a fitted attribute inside a type, ``shape (model_.dim,)``, reads as a reST reference
# ``model_``; escape a trailing underscore in the type part of ``name : type`` lines.
_SECTION_ENTRY = re.compile(r"^(\s*[\w*, ]+ : )([^`]*)$")
_TRAILING_UNDERSCORE = re.compile(r"(?<=\w)_(?=[^\w]|$)")


def _escape_types(app, what, name, obj, options, lines):
    for index, line in enumerate(lines):
        if "shape" in line and "*" in line:
            line = _STARRED_SHAPE.sub(r"\\*", line)
        entry = _SECTION_ENTRY.match(line)
        if entry and "_" in entry.group(2):
            line = entry.group(1) + _TRAILING_UNDERSCORE.sub(r"\\_", entry.group(2))
        lines[index] = line


def _public_bases(app, name, obj, options, bases):
    """Show public ancestors instead of hmog_xp's private mixins (``_SymmetricStructure``)."""
    public = {id(getattr(hmog_xp, export)) for export in hmog_xp.__all__}

    def resolve(base):
        if id(base) in public or not base.__module__.startswith("hmog_xp"):
            return [base]
        return [found for parent in base.__bases__ for found in resolve(parent)]

    shown = []
    for base in bases:
        for found in resolve(base) if isinstance(base, type) else [base]:
            if found not in shown and found is not object:
                shown.append(found)
    bases[:] = shown


def setup(app):
    # Before numpydoc (priority 500) turns the sections into reST.
    app.connect("autodoc-process-docstring", _escape_types, priority=400)
    app.connect("autodoc-process-bases", _public_bases)
