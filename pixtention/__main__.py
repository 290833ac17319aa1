"""``python -m pixtention``: the command line."""

import importlib.util
import os
import sys


def _use_this_package() -> None:
    """Run from the folder that holds the clone, ``pixtention`` names the clone folder itself
    (a namespace package without our ``__init__``): load the real package in its place."""
    package = sys.modules.get("pixtention")
    if package is None or getattr(package, "__file__", None):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "pixtention", os.path.join(here, "__init__.py"), submodule_search_locations=[here]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pixtention"] = module
    spec.loader.exec_module(module)


_use_this_package()

from pixtention.cli import main  # noqa: E402

sys.exit(main())
