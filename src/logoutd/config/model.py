"""The effective configuration: one frozen dataclass, with upstream logind v252's defaults."""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class KillMode(enum.StrEnum):
    """KillUserProcesses=: logind's boolean, plus logoutd's record-only mode."""

    YES = "yes"  # kill every process of the session's scope when the session stops
    NO = "no"  # abandon the scope; its processes may stay (the session stays "closing")
    PERMISSIVE = "permissive"  # where logind would kill, kill nothing and record the leftovers


class SdLoginFiles(enum.StrEnum):
    """SdLoginFiles=: whether to write sd-login's /run/systemd/{sessions,users}/ files."""

    AUTO = "auto"  # yes, unless systemd-logind or elogind runs on this machine
    YES = "yes"
    NO = "no"


@dataclass(frozen=True)
class TmpfsSize:
    """RuntimeDirectorySize=: a share of physical memory, or a number of bytes."""

    permyriad: int = 0  # 1..10000: a share of RAM; 0: `size` holds bytes
    size: int = 0

    def bytes(self, physical_memory: int | None = None, page_size: int | None = None) -> int:
        """What logind mounts: page-aligned bytes, of this machine's memory unless given."""
        # The kernel's size= takes neither "1.5G", "10.5%", "‰" nor "1G 512M"; this it takes.
        page = os.sysconf("SC_PAGE_SIZE") if page_size is None else page_size
        memory = page * os.sysconf("SC_PHYS_PAGES") if physical_memory is None else physical_memory
        if self.permyriad == 10000:
            return memory
        if self.permyriad:  # physical_memory_scale(): whole pages, rounded down
            return memory // page * self.permyriad // 10000 * page
        return -(-self.size // page) * page  # PAGE_ALIGN()


@dataclass(frozen=True)
class Source:
    """Where an effective value was assigned: a file and its (logical) line number."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def _no_sources() -> Mapping[str, Source]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Config:
    """Parsed once from logind.conf and its drop-ins; nothing downstream sees a string.

    Time spans are seconds (float, `math.inf` for "infinity"). Defaults are upstream's
    compiled-in ones (`-Ddefault-kill-user-processes=true`), not Debian's.
    """

    # [Login], logind's own keys
    kill_user_processes: KillMode = KillMode.YES
    kill_only_users: tuple[str, ...] = ()
    kill_exclude_users: tuple[str, ...] | None = None  # None: unset, root implicitly excluded
    user_stop_delay_sec: float = 10.0
    stop_idle_session_sec: float = math.inf  # 0 in the file means infinity
    idle_action_sec: float = 1800.0
    remove_ipc: bool = True
    sessions_max: int = 8192
    runtime_directory_size: TmpfsSize = TmpfsSize(permyriad=1000)  # 10% of RAM
    # [Logoutd]
    session_stop_timeout_sec: float = 90.0
    user_stop_timeout_sec: float = 120.0
    release_timeout_sec: float = 20.0  # logind's RELEASE_USEC
    audit_log: str | None = None
    sd_login_files: SdLoginFiles = SdLoginFiles.AUTO  # read at start only
    # [Policy]; in user lists "@name" is a group
    keep_allow_users: tuple[str, ...] | None = None  # None: everyone
    keep_allow_groups: tuple[str, ...] = ()  # bare group names
    linger_self_allow: tuple[str, ...] | None = None  # None: everyone
    auto_keep: tuple[str, ...] = ()  # absolute executable paths
    keep_tmux: bool = True  # the shell integration starts a new tmux server in a scope
    keep_screen: bool = True  # ... a new screen session
    keep_nohup: bool = False  # ... `nohup CMD` (opt-in: it reverses "logout ends it all")
    keep_user_while_units: bool = False  # a user with units is not stopped for lack of sessions
    keep_user_max_sec: float = math.inf  # ... for longer than this after the last session
    # Field name -> where its effective value was assigned; absent: compiled-in default.
    sources: Mapping[str, Source] = field(default_factory=_no_sources, compare=False, repr=False)

    def source(self, name: str) -> Source | None:
        """Where the field `name` got its value, or None for the compiled-in default."""
        return self.sources.get(name)
