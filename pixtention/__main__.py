import sys

from pixtention.cli import main

sys.exit(main())
