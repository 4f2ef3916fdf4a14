"""The shell integration (logoutd.sh, for /etc/profile.d) and its installer."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from logoutd.config.model import Config

SCRIPT = Path(__file__).parent / "logoutd.sh"
DEFAULT_PROFILE = Path("/etc/profile.d/logoutd.sh")
DEFAULT_RUNTIME_ROOT = Path("/run/user")
DEFAULT_RUNTIME_DIR = Path("/run/logoutd")


def shell_keep(config: Config) -> str:
    """RUNTIME_DIR/shell-keep: the commands the script starts in a scope, one line of words."""
    wanted = (("tmux", config.keep_tmux), ("screen", config.keep_screen),
              ("nohup", config.keep_nohup))
    return " ".join(name for name, on in wanted if on) + "\n"


def default_logoutctl(wrapper: Path = Path("/usr/local/bin/logoutctl")) -> Path:
    """`logoutd install-logoutctl`'s wrapper when it is there (every user can run it), else the
    logoutctl installed beside the Python running this (a venv's bin/), unresolved."""
    if wrapper.is_file() and os.access(wrapper, os.X_OK):
        return wrapper
    return Path(sys.executable).parent / "logoutctl"


def render(logoutctl: Path, user_runtime_root: Path = DEFAULT_RUNTIME_ROOT,
           runtime_dir: Path = DEFAULT_RUNTIME_DIR) -> str:
    """The profile script with this host's logoutctl, runtime root and logoutd's runtime dir."""
    values = {"_logoutd_ctl": logoutctl, "_logoutd_runtime_root": user_runtime_root,
              "_logoutd_runtime_dir": runtime_dir}
    for value in values.values():
        if not value.is_absolute():
            raise ValueError(f"{value} is not an absolute path")
    lines = SCRIPT.read_text().splitlines(keepends=True)
    for index, line in enumerate(lines):
        name = line.partition("=")[0]
        if name in values:
            lines[index] = f"{name}={shlex.quote(str(values.pop(name)))}\n"
    assert not values, f"{SCRIPT} lacks {values}"
    return "".join(lines)


def install_profile(dest: Path = DEFAULT_PROFILE, logoutctl: Path | None = None,
                    user_runtime_root: Path = DEFAULT_RUNTIME_ROOT,
                    runtime_dir: Path = DEFAULT_RUNTIME_DIR) -> Path:
    """Write the profile script to dest (atomically, mode 0644); the logoutctl it uses."""
    logoutctl = logoutctl or default_logoutctl()
    text = render(logoutctl, user_runtime_root, runtime_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, dest)
    return logoutctl
