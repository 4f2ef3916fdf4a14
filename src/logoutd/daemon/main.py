"""`logoutd`: the daemon in the foreground (init systems supervise it)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from logoutd import __version__
from logoutd.config.parse import load_config
from logoutd.core.manager import Manager
from logoutd.daemon.lock import runtime_lock
from logoutd.daemon.logs import LOG_TARGETS, setup_logging
from logoutd.daemon.metricsserver import listen, parse_listen
from logoutd.daemon.runtime import Runtime
from logoutd.daemon.selfcheck import inside_managed_tree, own_cgroup, pam_hook_enabled
from logoutd.errors import LogoutdError
from logoutd.pam.install import pam_line
from logoutd.paths import DEFAULT_RUNTIME_DIR, Paths
from logoutd.system.cgroups import find_cgroup2_mount

if TYPE_CHECKING:
    from logoutd.daemon.metrics import DaemonMetrics

log = logging.getLogger("logoutd")
HOOK_PATH = Path("/usr/local/bin/logoutd-pam")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logoutd",
        description="Track every login session in its own cgroup; end it at logout.",
        epilog="Subcommands: `logoutd install-pam-hook [--dest PATH]` installs the PAM hook; "
               "`logoutd install-man-pages [--dest DIR]` the man pages; "
               "`logoutd install-logoutctl [--dest PATH]` a logoutctl every user can run.",
    )
    parser.add_argument("--version", action="version", version=f"logoutd {__version__}")
    parser.add_argument("--root", type=Path, default=Path("/"),
                        help="prefix for the logind.conf and /etc/pam.d lookups (default /)")
    parser.add_argument("--cgroup-root", type=Path,
                        help="cgroup2 directory to manage (default: the cgroup2 mount)")
    parser.add_argument("--runtime-dir", type=Path, default=Path("/run/logoutd"),
                        help="socket and live state (default /run/logoutd)")
    parser.add_argument("--state-dir", type=Path, default=Path("/var/lib/logoutd"),
                        help="linger flags and the session id counter (default /var/lib/logoutd)")
    parser.add_argument("--user-runtime-root", type=Path, default=Path("/run/user"),
                        help="where runtime dirs are made (default /run/user)")
    parser.add_argument("--socket", type=Path, help="API socket (default RUNTIME_DIR/api.sock)")
    parser.add_argument("--utmp", type=Path, default=Path("/run/utmp"),
                        help="utmp file whose entries give ssh logins their tty")
    parser.add_argument("--sd-login-dir", type=Path, default=Path("/run/systemd"),
                        help="where sd-login's sessions/ and users/ files go, as logind's "
                             "(default /run/systemd; see SdLoginFiles=)")
    parser.add_argument("--dbus", action="store_true",
                        help="also serve org.freedesktop.login1 on the system bus (stock "
                             "pam_systemd and loginctl); needs logoutd[dbus]")
    parser.add_argument("--no-user-bus", dest="user_bus", action="store_false",
                        help="do not serve systemd1 at $XDG_RUNTIME_DIR/systemd/private (stock "
                             "systemd-run --user and systemctl --user; served by default when "
                             "logoutd[dbus] is installed)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    parser.add_argument("--metrics-listen", metavar="HOST:PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics; HOST must be "
                             "loopback (127.0.0.1, [::1], localhost); needs logoutd[metrics]; "
                             "off by default")
    parser.add_argument("--log-target", default="auto", choices=LOG_TARGETS,
                        help="where log lines go: the journal (native protocol, with fields), "
                             "syslog (/dev/log), stderr (with timestamps); auto: the journal "
                             "if its socket exists, else syslog if /dev/log exists, else stderr "
                             "(default auto)")
    parser.add_argument("--check-config", action="store_true",
                        help="only check logind.conf and its drop-ins under --root: print each "
                             "warning and a summary, change nothing; exit 0 when every line "
                             "parsed, 16 when lines were ignored, 1 when a file could not be "
                             "parsed to its end")
    parser.add_argument("--json", action="store_true", help="with --check-config: one JSON document")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["install-pam-hook"]:
        from logoutd.pam.install import main as install_main

        return install_main(argv[1:])
    if argv[:1] == ["install-logoutctl"]:
        from logoutd.ctlwrapper import main as ctl_main

        return ctl_main(argv[1:])
    if argv[:1] == ["install-man-pages"]:
        from logoutd.manpages import main as man_main

        return man_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.json and not args.check_config:
        parser.error("--json goes with --check-config")
    if args.check_config:
        from logoutd.daemon.checkconfig import check, report

        return report(check(args.root), sys.stdout, args.json)
    try:
        log_limit = setup_logging(args.log_level, f"logoutd[{os.getpid()}]", args.log_target)
        cgroup_root = args.cgroup_root or _default_cgroup_root()
        paths = Paths(root=args.root, cgroup_root=cgroup_root, runtime_dir=args.runtime_dir,
                      state_dir=args.state_dir, user_runtime_root=args.user_runtime_root,
                      socket=args.socket, utmp=args.utmp, sd_login_dir=args.sd_login_dir)
        if not cgroup_root.exists():
            raise LogoutdError(f"--cgroup-root {cgroup_root} does not exist (create it with "
                               "mkdir inside the cgroup2 mount, or give another one).")
        if args.socket is not None and not args.socket.parent.is_dir():
            raise LogoutdError(f"--socket {args.socket}: directory {args.socket.parent} "
                               "does not exist.")
        metrics_class = None
        if args.metrics_listen is not None:
            parse_listen(args.metrics_listen)  # a bad value is refused before anything else
            metrics_class = _metrics_class()
        # Before anything touches the runtime dir: a second daemon must change nothing there.
        with runtime_lock(paths.runtime_dir):
            # Bound before anything changes: a port in use stops the start (one line, exit 1).
            metrics = metrics_class(listen(args.metrics_listen)) if metrics_class else None
            result = load_config(paths.root)
            for warning in result.warnings:
                log.warning("%s", warning)
            if result.fatal is not None:
                log.warning("Failed to parse config file, using what was read before: %s",
                            result.fatal)
            runtime = Runtime(paths, result, dbus=args.dbus, log_limit=log_limit, metrics=metrics,
                              user_bus=args.user_bus)
            return asyncio.run(runtime.run(ready=lambda m: _announce(paths, m)))
    except LogoutdError as e:
        print(f"logoutd: {e.message}", file=sys.stderr)
        return e.exit_status
    except PermissionError as e:
        print(f"logoutd: {e.filename}: permission denied (logoutd runs as root).", file=sys.stderr)
        return 4
    except KeyboardInterrupt:
        return 0


def _metrics_class() -> type[DaemonMetrics]:
    """--metrics-listen's exporter; the only path by which the daemon imports prometheus_client."""
    try:
        from logoutd.daemon.metrics import DaemonMetrics
    except ImportError as e:
        raise LogoutdError(f"--metrics-listen needs the prometheus_client package ({e}): "
                           "pip install 'logoutd[metrics]'") from None
    return DaemonMetrics


def _default_cgroup_root() -> Path:
    """The cgroup2 mount itself, unless systemd (PID 1) owns it: then a subtree must be given."""
    if Path("/run/systemd/system").is_dir():
        raise LogoutdError(
            "systemd is PID 1 here and owns the cgroup tree: pass --cgroup-root pointing into "
            "logoutd's delegated subtree (see docs/install.md), or use systemd-logind itself."
        )
    return find_cgroup2_mount()


def _announce(paths: Paths, manager: Manager) -> None:
    config = manager.config
    log.info("logoutd %s managing %s/user.slice; API socket %s.", __version__,
             paths.cgroup_root, paths.socket_path)
    log.info("KillUserProcesses=%s, SessionStopTimeoutSec=%gs, UserStopDelaySec=%gs; "
             "%d sessions and %d users restored.", config.kill_user_processes,
             config.session_stop_timeout_sec, config.user_stop_delay_sec,
             len(manager.sessions), len(manager.users))
    inside = inside_managed_tree(paths.cgroup_root, own_cgroup())
    if inside is not None:
        log.warning("%s", inside)
    found = pam_hook_enabled(paths.root / "etc/pam.d", HOOK_PATH)
    if found is not None:
        log.debug("The PAM hook is enabled in %s.", found)
        return
    # The hook talks to RUNTIME_DIR/root.sock and keeps its fail-safe records there too.
    runtime_arg = "" if paths.runtime_dir == DEFAULT_RUNTIME_DIR else \
        f" --runtime-dir {paths.runtime_dir}"
    log.info("No PAM line runs %s in %s/etc/pam.d; enable it with this line (e.g. in "
             "/etc/pam.d/common-session):", HOOK_PATH, str(paths.root).rstrip("/"))
    log.info("  %s%s", pam_line(HOOK_PATH), runtime_arg)
