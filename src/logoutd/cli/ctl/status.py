"""Show the daemon's version, uptime, cgroup root, configuration files and counts."""

from __future__ import annotations

import argparse

from logoutd.api.client import Client
from logoutd.cli.output import Output, format_ago


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(client: Client, args: argparse.Namespace, output: Output) -> int:
    status = client.call("status")
    if output.json:
        output.emit_json("status", status)
        return 0
    output.print(f"logoutd {status['version']} (pid {status['pid']}), "
                 f"up {format_ago(status['uptime'])}")
    output.print(f"  cgroup root: {status['cgroup_root']}")
    output.print(f"     sessions: {status['sessions']}")
    output.print(f"        users: {status['users']}")
    files = status["config_files"] or ["(none: built-in defaults)"]
    output.print(f" config files: {files[0]}")
    for name in files[1:]:
        output.print(f"               {name}")
    return 0
