import sys

from hl_analytics.cli import main

sys.exit(main())
