"""run: a verb a later logoutd release fills in; until then a clear error (exit 3)."""

from __future__ import annotations

from logoutd.cli.verb import Invocation, Verb
from logoutd.errors import NotAvailable


def run_command(inv: Invocation) -> int:
    raise NotAvailable("logoutctl run is not available yet: this logoutd cannot start "
                       "scopes or units for users.")


RUN = Verb("run", run_command, "Run a command in its own scope or unit (not available yet)",
           "COMMAND…", min_words=1, group="Process")
