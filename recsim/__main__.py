import sys

from recsim.cli import main

sys.exit(main())
