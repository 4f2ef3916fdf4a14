"""What every logoutctl verb module declares, and what its `run` gets."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logoutd.api.client import Client
from logoutd.cli.output import Output


@dataclass
class Invocation:
    """One run of a verb: its words, the parsed options, the daemon client, where output goes."""

    client: Client
    words: list[str]
    options: argparse.Namespace
    output: Output
    env: Mapping[str, str] | None = None  # main()'s environment; None: os.environ

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.client.call(method, **params)

    def cgroup_root(self) -> Path:
        return Path(self.client.call("status")["cgroup_root"])


@dataclass(frozen=True)
class Verb:
    name: str
    run: Callable[[Invocation], int]
    summary: str  # one line for --help
    usage: str = ""  # the words after the verb, e.g. "ID…"
    min_words: int = 0
    max_words: int | None = None  # None: any number
    group: str = "Session"  # the --help section
