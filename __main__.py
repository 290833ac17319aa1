"""``python -m pixtention`` run from the folder that holds the clone lands here.

There ``pixtention`` names the clone folder (a namespace package), not the package inside it:
put the clone first on the path, forget the namespace and run the real command line. (``python
PATH/TO/CLONE …`` runs this file too.)
"""

import os
import sys

_CLONE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _CLONE)
if getattr(sys.modules.get("pixtention"), "__file__", "") is None:
    del sys.modules["pixtention"]

from pixtention.cli import main  # noqa: E402

sys.exit(main())
