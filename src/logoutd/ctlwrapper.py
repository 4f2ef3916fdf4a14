"""`logoutd install-logoutctl`: a `logoutctl` on PATH that every user can run. A venv's console
script names the venv's Python, which may be unreadable to users (a pyenv build under
/root); this wrapper runs the system Python instead, isolated, on the installed package."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import logoutd

DEFAULT_DEST = Path("/usr/local/bin/logoutctl")
SYSTEM_PYTHON = "/usr/bin/python3"
MARK = "# logoutd install-logoutctl"  # what uninstall looks for: a file of ours, not a user's


def wrapper(package_parent: Path, python: str = SYSTEM_PYTHON) -> str:
    return (f"#!{python} -IS\n{MARK}: logoutctl with the package in {package_parent}\n"
            "import sys\n"
            f"sys.path.insert(0, {str(package_parent)!r})\n"
            "from logoutd.cli.ctl import main\n"
            "sys.exit(main())\n")


def problems(package_parent: Path) -> list[str]:
    """Why a user could not import the package from there (a directory not world-readable)."""
    found = []
    path = package_parent / "logoutd"
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & 0o001:
            found.append(f"{directory} is not searchable by other users (mode {mode & 0o777:o})")
    return found


def install(dest: Path = DEFAULT_DEST, python: str = SYSTEM_PYTHON) -> Path:
    parent = Path(logoutd.__file__).resolve().parent.parent
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or (dest.exists() and MARK not in dest.read_text(errors="replace")):
        # a venv's symlink or console script: replaced, it is what this command is for
        dest.unlink()
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(wrapper(parent, python))
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
    return parent


def link_daemon(dest: Path, script: Path) -> str:
    """`logoutd` beside the wrapper, for root (service files name /usr/local/bin/logoutd): a
    symlink to this install's console script, unless a `logoutd` of another install is there."""
    if dest.exists() and not dest.is_symlink():
        return f"{dest} exists (another install): left as it is"
    if not script.is_file():
        return f"no {script} to link {dest} to"
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(script)
    os.replace(tmp, dest)
    return f"{dest} -> {script} (for root: --check-config, the service files)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="logoutd install-logoutctl")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help=f"where (default {DEFAULT_DEST})")
    parser.add_argument("--python", default=SYSTEM_PYTHON,
                        help=f"interpreter for the shebang (default {SYSTEM_PYTHON})")
    args = parser.parse_args(argv)
    parent = install(args.dest, args.python)
    print(f"{args.dest}: logoutctl for every user ({args.python} -IS, package in {parent})")
    print(link_daemon(args.dest.with_name("logoutd"), Path(sys.executable).parent / "logoutd"))
    for problem in problems(parent):
        print(f"logoutd install-logoutctl: warning: {problem}: only root can run {args.dest}.")
    return 0
