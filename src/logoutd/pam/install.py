"""Install the PAM hook as a stand-alone script that starts with `python3 -IS`."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
from pathlib import Path

from logoutd.shell import (
    DEFAULT_RUNTIME_DIR,
    DEFAULT_RUNTIME_ROOT,
    default_logoutctl,
    install_profile,
)

DEFAULT_DEST = Path("/usr/local/bin/logoutd-pam")
FAIL_SAFE = "failsafe.py"  # hook.py's FAIL_SAFE in the source tree
SYSTEM_PYTHON = "/usr/bin/python3"


def fail_safe_path(dest: Path) -> Path:
    """Where the hook's fail-safe part goes: beside it, <hook>-failsafe.py."""
    return dest.with_name(f"{dest.name}-failsafe.py")


def code_path(dest: Path) -> Path:
    """Where the hook's compiled code goes: beside it, <hook>.code (magic, stamp, marshal)."""
    return dest.with_name(f"{dest.name}.code")


# The installed hook: a stub that runs the code compiled at install time (a script is compiled
# at every start: ~1 ms per login for the hook's source), or, if that file is missing, stale or
# from another Python, compiles the copy of the source it carries (a string literal parses fast).
STUB = """\
#!{python} -IS
\"\"\"logoutd's PAM hook, as installed: runs {code}, else compiles the source below.\"\"\"
import marshal
from _frozen_importlib_external import MAGIC_NUMBER
STAMP = {stamp!r}  # the source's: a code file from another install is not used
code = None
try:
    with open(__file__ + ".code", "rb") as f:
        data = f.read()
    if data[:16] == MAGIC_NUMBER + STAMP:
        code = marshal.loads(data[16:])
except (OSError, ValueError, EOFError, TypeError):
    pass
if code is None:
    code = compile({source!r}, __file__, "exec")
exec(code, {{"__name__": "__main__", "__file__": __file__}})
"""
# Run by the hook's own interpreter: its magic number and marshal format are what counts.
COMPILE = """\
import marshal, sys
from importlib.util import MAGIC_NUMBER
dest, stamp, out = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
code = compile(sys.stdin.read(), dest, "exec")
with open(out, "wb") as f:
    f.write(MAGIC_NUMBER + stamp + marshal.dumps(code))
"""


def install_hook(dest: Path = DEFAULT_DEST, python: str = SYSTEM_PYTHON) -> None:
    """Write the hook to dest, with a shebang that skips site and user paths, its fail-safe
    part and its compiled code beside it (each atomically; the parts first, so a hook never
    names a missing one)."""
    here = Path(__file__).parent
    source = (here / "hook.py").read_text()
    body = source.split("\n", 1)[1] if source.startswith("#!") else source
    line = f'FAIL_SAFE = "{FAIL_SAFE}"'
    if line not in body:
        raise RuntimeError(f"hook.py lacks the line {line!r}")
    body = body.replace(line, f'FAIL_SAFE = "{fail_safe_path(dest).name}"', 1)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _write(fail_safe_path(dest), (here / FAIL_SAFE).read_text(), 0o644)
    stamp = hashlib.sha256(body.encode()).digest()[:12]
    _compile(body, dest, stamp, python)
    # One shebang argument: -IS.
    _write(dest, STUB.format(python=python, code=code_path(dest).name, stamp=stamp,
                             source=body), 0o755)


def _compile(body: str, dest: Path, stamp: bytes, python: str) -> None:
    """<hook>.code by the hook's interpreter; without it (no such Python) the stub compiles."""
    out = code_path(dest)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        done = subprocess.run([python, "-IS", "-c", COMPILE, str(dest), stamp.hex(), str(tmp)],
                              input=body, text=True, capture_output=True, timeout=60)
    except OSError:
        done = None
    if done is not None and done.returncode == 0:
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    else:
        tmp.unlink(missing_ok=True)
        out.unlink(missing_ok=True)


def pam_line(hook: Path | str, close: bool = False) -> str:
    """The PAM line that runs the hook: at session open only unless close (then at both)."""
    when = "" if close else "type=open_session "
    return f"session optional pam_exec.so quiet seteuid {when}{hook}"


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


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
    parser.add_argument("--runtime-dir", type=Path, default=DEFAULT_RUNTIME_DIR,
                        help="the daemon's --runtime-dir, where the shell integration reads "
                             "KeepTmux=/KeepScreen=/KeepNohup= (default /run/logoutd)")
    parser.add_argument("--close", action="store_true",
                        help="print the PAM line that also runs the hook at session close "
                             "(the session is closing from then on, and stops "
                             "ReleaseTimeoutSec= later if its leader lives); the default line "
                             "runs it at open only: the leader's exit ends the session")
    args = parser.parse_args(argv)
    if args.profile_script is None and args.logoutctl is not None:
        parser.error("--logoutctl goes with --profile-script")
    logoutctl = args.logoutctl or default_logoutctl()
    for path in (logoutctl, args.user_runtime_root, args.runtime_dir):
        if not path.is_absolute():
            parser.error(f"{path} is not an absolute path")
    if args.profile_script is not None and not (logoutctl.is_file()
                                                and os.access(logoutctl, os.X_OK)):
        parser.error(f"{logoutctl} is not an executable file; name it with --logoutctl")
    install_hook(args.dest, args.python)
    print(f"Installed {args.dest}, {fail_safe_path(args.dest)} and {code_path(args.dest)}. "
          f"Enable it with:")
    print(f"  {pam_line(args.dest, close=args.close)}")
    if args.profile_script is not None:
        install_profile(args.profile_script, logoutctl, args.user_runtime_root, args.runtime_dir)
        print(f"Installed {args.profile_script} (shell integration, runs {logoutctl}).")
        print(f"zsh does not read /etc/profile.d: add to /etc/zsh/zprofile:\n"
              f"  [ -r {args.profile_script} ] && . {args.profile_script}")
    return 0
