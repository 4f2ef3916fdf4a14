"""`logoutd --check-config`: read the configuration as the daemon would, change nothing, report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from logoutd.config import Config, ConfigResult, ConfigWarning, load_config
from logoutd.escape import cescape
from logoutd.system.audit import AUDIT_ACCEPTED, audit_path_problem

EXIT_CLEAN = 0
EXIT_FATAL = 1  # a file could not be read to its end: it and every later file were not used
EXIT_IGNORED = 16  # as logoutctl's ConfigIgnored: lines were ignored, the valid ones apply


def audit_warning(config: Config, problem: str) -> ConfigWarning:
    """AuditLog= names a path AuditFile cannot use: a warning at the line that set it."""
    source = config.source("audit_log")
    file, line = (source.file, source.line) if source else ("AuditLog=", 0)
    return ConfigWarning(file, line, f"AuditLog= path unusable: {problem}; auditing to syslog only.",
                         key="AuditLog", value=config.audit_log, accepted=AUDIT_ACCEPTED)


def checked_warnings(result: ConfigResult, audit_problem: str | None) -> list[ConfigWarning]:
    """The parser's warnings plus the AuditLog= one, if any."""
    warnings = list(result.warnings)
    if audit_problem is not None:
        warnings.append(audit_warning(result.config, audit_problem))
    return warnings


@dataclass(frozen=True)
class Check:
    """What --check-config found."""

    result: ConfigResult
    warnings: tuple[ConfigWarning, ...]

    @property
    def ignored(self) -> int:
        return sum(w.ignored for w in self.warnings)

    @property
    def exit_status(self) -> int:
        if self.result.fatal is not None:
            return EXIT_FATAL
        return EXIT_IGNORED if self.ignored else EXIT_CLEAN


def check(root: Path) -> Check:
    """Parse every file under root and look at AuditLog=; opens nothing for writing."""
    result = load_config(root)
    path = result.config.audit_log
    problem = audit_path_problem(path) if path is not None and result.fatal is None else None
    return Check(result, tuple(checked_warnings(result, problem)))


def ignored_warnings(count: int) -> str:
    """ "1 warning about ignored lines": a count of warnings, since an unknown section's lines
    are ignored under one warning."""
    return f"{count} warning{'s' if count != 1 else ''} about ignored lines"


def summary(found: Check) -> str:
    """One line: files read, warnings, lines ignored, and what that means."""
    files = len(found.result.files)
    head = f"{files} file{'s' if files != 1 else ''} read"
    if found.result.fatal is not None:
        return (f"{head}; a file could not be parsed to its end: it and every later file are not "
                f"used (a reload would keep the previous configuration).")
    if found.ignored:
        return f"{head}; {ignored_warnings(found.ignored)}, the valid lines apply."
    if found.warnings:
        return f"{head}; every line parsed, {len(found.warnings)} other warning(s)."
    if not files:
        return "No configuration file found; the compiled-in defaults apply."
    return f"{head}; every line parsed."


def as_document(found: Check) -> dict[str, Any]:
    """The JSON form of a check (docs/configuration.md, "Checking without changing anything")."""
    fatal = found.result.fatal
    return {
        "files": list(found.result.files),
        "warnings": [w.as_dict() for w in found.warnings],
        "fatal": fatal.as_dict() if fatal is not None else None,
        "ignored": found.ignored,
        "ok": found.exit_status == EXIT_CLEAN,
        "summary": summary(found),
    }


def text_lines(found: Check) -> list[str]:
    """Each warning on one line (control characters escaped), the fatal one, then the summary."""
    problems = [*found.warnings, *([found.result.fatal] if found.result.fatal else [])]
    return [cescape(str(w)) for w in problems] + [summary(found)]


def report(found: Check, out: TextIO, as_json: bool) -> int:
    """Print the lines (or one JSON document); the exit status."""
    if as_json:
        out.write(json.dumps(as_document(found), indent=2) + "\n")
    else:
        out.writelines(line + "\n" for line in text_lines(found))
    return found.exit_status

