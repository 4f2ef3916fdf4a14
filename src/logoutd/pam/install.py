"""Install the PAM hook as a stand-alone script that starts with `python3 -IS`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from logoutd.shell import DEFAULT_RUNTIME_ROOT, default_logoutctl, install_profile

DEFAULT_DEST = Path("/usr/local/bin/logoutd-pam")
SYSTEM_PYTHON = "/usr/bin/python3"


def install_hook(dest: Path = DEFAULT_DEST, python: str = SYSTEM_PYTHON) -> None:
    """Write the hook to dest (atomically), with a shebang that skips site and user paths."""
    source = (Path(__file__).parent / "hook.py").read_text()
    body = source.split("\n", 1)[1] if source.startswith("#!") else source
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(f"#!{python} -IS\n{body}")  # one shebang argument: -IS
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="logoutd install-pam-hook")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    parser.add_argument("--python", default=SYSTEM_PYTHON,
                        help="interpreter for the shebang (default /usr/bin/python3)")
    parser.add_argument("--profile-script", type=Path, metavar="PATH",
                        help="also install the shell integration there, e.g. "
                             "/etc/profile.d/logoutd.sh")
    parser.add_argument("--logoutctl", type=Path, metavar="PATH",
                        help="the logoutctl the shell integration runs (default: the one "
                             "beside this Python)")
    parser.add_argument("--user-runtime-root", type=Path, default=DEFAULT_RUNTIME_ROOT,
                        help="as given to the daemon, for XDG_RUNTIME_DIR (default /run/user)")
    args = parser.parse_args(argv)
    if args.profile_script is None and args.logoutctl is not None:
        parser.error("--logoutctl goes with --profile-script")
    logoutctl = args.logoutctl or default_logoutctl()
    for path in (logoutctl, args.user_runtime_root):
        if not path.is_absolute():
            parser.error(f"{path} is not an absolute path")
    if args.profile_script is not None and not (logoutctl.is_file()
                                                and os.access(logoutctl, os.X_OK)):
        parser.error(f"{logoutctl} is not an executable file; name it with --logoutctl")
    install_hook(args.dest, args.python)
    print(f"Installed {args.dest}. Enable it with:")
    print(f"  session optional pam_exec.so quiet seteuid {args.dest}")
    if args.profile_script is not None:
        install_profile(args.profile_script, logoutctl, args.user_runtime_root)
        print(f"Installed {args.profile_script} (shell integration, runs {logoutctl}).")
        print(f"zsh does not read /etc/profile.d: add to /etc/zsh/zprofile:\n"
              f"  [ -r {args.profile_script} ] && . {args.profile_script}")
    return 0
