"""`python -m logoutd` runs the daemon."""

from logoutd.daemon.main import main

raise SystemExit(main())
