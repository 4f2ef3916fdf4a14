"""Run a real `su -l` / `runuser -l` through the test PAM stack.

`unshare --mount --propagation private` gives the command a private mount namespace in which
the test copies of su/su-l/runuser/runuser-l are bind-mounted over the stock files; the
machine's own PAM configuration is never touched.  Without --fork, unshare execs sh which
execs su: the su process (the PAM process, the session leader) is the child's pid.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from .login import Login
from .pam import PamService


@dataclass
class SuRunner:
    pam: PamService
    register: Callable[[Login], None] = field(default=lambda login: None)

    def argv(self, user: str, command: str, tool: str = "su") -> list[str]:
        if tool not in ("su", "runuser"):
            raise ValueError(tool)
        inner = f'{self.pam.namespace_prefix()} && exec {tool} -l "$1" -c "$2"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner,
                "sh", user, command]

    def login(self, user: str, command: str, tool: str = "su") -> Login:
        """Start `su -l USER -c COMMAND` (or runuser) and return the running login."""
        login = Login(self.argv(user, command, tool), f"{tool} -l {user}")
        self.register(login)
        return login

    def run(self, user: str, command: str, tool: str = "su",
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run to completion; stdin is /dev/null."""
        return subprocess.run(self.argv(user, command, tool), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
