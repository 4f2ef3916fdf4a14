"""The man pages, generated from what `--help` prints and from config/schema.py, so that they
cannot drift from either: logoutd(8), logoutctl(1) and logoutd.conf(5).
`logoutd install-man-pages [--dest DIR]` writes them (default /usr/local/share/man)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from logoutd import __version__
from logoutd.config.schema import OPTIONS, SECTIONS, render_value

DEFAULT_DEST = Path("/usr/local/share/man")
SOURCE = f"logoutd {__version__}"


def roff(text: str) -> str:
    """Text as roff: backslashes and hyphens escaped, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line
                     for line in text.split("\n"))


def _head(name: str, section: int, summary: str) -> list[str]:
    return [f'.TH {name.upper()} {section} "" "{SOURCE}" "{SOURCE}"', ".SH NAME",
            f"{roff(name)} \\- {roff(summary)}"]


def _item(tag: str, text: str) -> list[str]:
    return [".TP", f"\\fB{roff(tag)}\\fR", roff(text)]


def daemon_options() -> list[tuple[str, str]]:
    """(the option as --help shows it, its help) for every option of logoutd's parser."""
    from logoutd.daemon.main import build_parser

    out = []
    for action in build_parser()._actions:
        if not action.option_strings:
            continue
        names = ", ".join(action.option_strings)
        if action.nargs != 0:
            if action.choices:
                names += " {" + ",".join(str(c) for c in action.choices) + "}"
            else:
                names += " " + (str(action.metavar) if action.metavar else action.dest.upper())
        out.append((names, action.help or ""))
    return out


def logoutd_page() -> str:
    from logoutd.daemon.main import build_parser

    parser = build_parser()
    lines = _head("logoutd", 8, parser.description or "")
    lines += [".SH SYNOPSIS", "\\fBlogoutd\\fR [\\fIOPTIONS\\fR]",
              ".br", "\\fBlogoutd install\\-pam\\-hook\\fR [\\fB\\-\\-dest\\fR \\fIPATH\\fR]",
              ".br", "\\fBlogoutd install\\-man\\-pages\\fR [\\fB\\-\\-dest\\fR \\fIDIR\\fR]",
              ".br", "\\fBlogoutd install\\-logoutctl\\fR [\\fB\\-\\-dest\\fR \\fIPATH\\fR]",
              ".SH DESCRIPTION",
              roff("logoutd puts every login into its own cgroup (cgroup2) and ends what the "
                   "session left at logout, as systemd-logind does with KillUserProcesses=yes. "
                   "It runs in the foreground; SIGHUP reloads the configuration, SIGTERM stops "
                   "the daemon and never a session."),
              ".SH OPTIONS"]
    for names, text in daemon_options():
        lines += _item(names, text)
    lines += [".SH ENVIRONMENT",
              *_item("LOGOUTD_JOURNAL_SOCKET, LOGOUTD_SYSLOG_SOCKET",
                     "Other sockets than /run/systemd/journal/socket and /dev/log for "
                     "\\-\\-log\\-target.".replace("\\-", "-")),
              ".SH FILES",
              *_item("/run/logoutd", "api.sock, root.sock, logoutd.lock and live state."),
              *_item("/var/lib/logoutd", "Linger flags and the session id counter."),
              *_item("/etc/systemd/logind.conf, /etc/systemd/logind.conf.d/*.conf",
                     "The configuration, see logoutd.conf(5)."),
              ".SH SEE ALSO", "\\fBlogoutctl\\fR(1), \\fBlogoutd.conf\\fR(5), "
              "\\fBpam_exec\\fR(8), \\fBlogind.conf\\fR(5)"]
    return "\n".join(lines) + "\n"


_OPTION_LINE = re.compile(r"^  (.{22}) (\S.*)$")


def ctl_options() -> list[tuple[str, str]]:
    """(option, help) parsed from the very text `logoutctl --help` prints."""
    from logoutd.cli.ctl import OPTIONS_HELP

    out: list[tuple[str, str]] = []
    for line in OPTIONS_HELP.splitlines()[1:]:
        match = _OPTION_LINE.match(line)
        if match and match.group(1).strip():
            out.append((match.group(1).strip(), match.group(2)))
        elif out:
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
    return out


def logoutctl_page() -> str:
    from logoutd.cli.ctl import VERBS

    lines = _head("logoutctl", 1, "control logoutd, the login session cleanup daemon")
    lines += [".SH SYNOPSIS", "\\fBlogoutctl\\fR [\\fIOPTIONS\\fR...] \\fICOMMAND\\fR ...",
              ".SH DESCRIPTION",
              roff("logoutctl asks logoutd about sessions, users and units and tells it what "
                   "to do, with the verbs and output of loginctl. Everyone may read; changing "
                   "what is not one's own needs root."),
              ".SH COMMANDS"]
    groups: dict[str, list[tuple[str, str]]] = {}
    for verb in VERBS.values():
        groups.setdefault(verb.group, []).append((f"{verb.name} {verb.usage}".strip(),
                                                  verb.summary))
    for group, verbs in groups.items():
        lines += [f".SS {roff(group)} Commands"]
        for tag, summary in verbs:
            lines += _item(tag, summary)
    lines += [".SH OPTIONS"]
    for names, text in ctl_options():
        lines += _item(names, text)
    lines += [".SH ENVIRONMENT", *_item("LOGOUTD_SOCKET", "The API socket, as --socket."),
              ".SH EXIT STATUS", roff("0 on success; 16 when reload or check-config ignored "
                                      "lines; other values name the error (docs/logoutctl.md)."),
              ".SH SEE ALSO", "\\fBlogoutd\\fR(8), \\fBlogoutd.conf\\fR(5), \\fBloginctl\\fR(1)"]
    return "\n".join(lines) + "\n"


def config_page() -> str:
    lines = _head("logoutd.conf", 5, "the logind.conf options logoutd reads")
    lines += [".SH SYNOPSIS", "/etc/systemd/logind.conf", ".br",
              "/etc/systemd/logind.conf.d/*.conf",
              ".SH DESCRIPTION",
              roff("logoutd reads logind.conf and its drop-ins with logind's rules: the "
                   "[Login] keys it shares with systemd-logind, and its own [Logoutd] and "
                   "[Policy] sections. Check a tree with logoutd --check-config; see "
                   "docs/configuration.md for each key at length.")]
    for section in SECTIONS:
        lines += [f".SH [{section}] SECTION"]
        for option in OPTIONS:
            if option.section != section:
                continue
            text = option.doc
            if option.field is not None:
                default = render_value(option.default())
                text += f" Default: {default if default else '(empty)'}."
            lines += _item(f"{option.key}=", text)
    lines += [".SH SEE ALSO", "\\fBlogoutd\\fR(8), \\fBlogoutctl\\fR(1), \\fBlogind.conf\\fR(5)"]
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """Relative path under a man directory -> the page's text."""
    return {"man8/logoutd.8": logoutd_page(), "man1/logoutctl.1": logoutctl_page(),
            "man5/logoutd.conf.5": config_page()}


def install(dest: Path) -> list[Path]:
    written = []
    for rel, text in pages().items():
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="logoutd install-man-pages")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help=f"the man directory (default {DEFAULT_DEST})")
    args = parser.parse_args(argv)
    for path in install(args.dest):
        print(path)
    return 0
