"""Serve plotly.js from the installed plotly package as static/vendor/plotly.min.js.

The file ships inside the pinned `plotly` wheel, so the browser gets exactly the version
requirements.txt names, from our own static files (no CDN), without a 4.6 MiB copy in git.
"""

from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PLOTLY_JS = "plotly.min.js"
PREFIX = "vendor"


def _package_data() -> Path:
    return Path(plotly.__file__).resolve().parent / "package_data"


class PlotlyFinder(BaseFinder):
    def check(self, **kwargs):
        return []

    def find(self, path: str, find_all: bool = False, **kwargs):
        if path != f"{PREFIX}/{PLOTLY_JS}":
            return [] if find_all else None
        match = str(_package_data() / PLOTLY_JS)
        return [match] if find_all else match

    def list(self, ignore_patterns):
        storage = FileSystemStorage(location=str(_package_data()))
        storage.prefix = PREFIX
        yield PLOTLY_JS, storage
