"""reload: make the daemon re-read logind.conf and its drop-ins (root only)."""

from __future__ import annotations

from logoutd.cli.verb import Invocation, Verb
from logoutd.daemon.checkconfig import ignored_warnings
from logoutd.errors import ConfigIgnored, LogoutdError


def run(inv: Invocation) -> int:
    answer = inv.call("reload")
    reloaded = bool(answer.get("reloaded"))
    warnings = [str(w) for w in answer.get("warnings", [])]
    ignored = int(answer.get("ignored", 0))
    if inv.output.json:
        inv.output.emit_json("reload", {
            "reloaded": reloaded,
            "error": answer.get("error"),
            "files": list(answer.get("files", [])),
            "warnings": warnings,
            "ignored": ignored,
        })
    for warning in warnings:
        inv.output.warn(warning)
    if not reloaded:
        raise LogoutdError(f"Reload failed, logoutd keeps its previous configuration: "
                           f"{answer.get('error')}")
    if ignored:
        raise ConfigIgnored(f"Reloaded, but with {ignored_warnings(ignored)} (see above); the valid "
                            f"lines apply, and each warning says which value stays in effect.")
    return 0


VERB = Verb("reload", run, "Reload the configuration", max_words=0, group="Daemon")
