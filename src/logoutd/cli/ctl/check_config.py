"""check-config: read the configuration files as the daemon would; changes nothing, needs no daemon."""

from __future__ import annotations

from pathlib import Path

from logoutd.cli.verb import Invocation, Verb
from logoutd.daemon.checkconfig import as_document, check, text_lines


def run(inv: Invocation) -> int:
    found = check(Path(inv.words[0]) if inv.words else Path("/"))
    if inv.output.json:
        inv.output.emit_json("check_config", as_document(found))
    else:
        inv.output.out.writelines(line + "\n" for line in text_lines(found))
    return found.exit_status


VERB = Verb("check-config", run, "Check logind.conf and its drop-ins under ROOT (default /)",
            usage="[ROOT]", max_words=1, group="Daemon")
