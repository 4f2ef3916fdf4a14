"""`python3 -m logoutd.cli.ctl`: logoutctl without the console script (tests run it as other users)."""

import sys

from logoutd.cli.ctl import main

sys.exit(main())
