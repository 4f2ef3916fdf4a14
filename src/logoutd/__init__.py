"""logoutd: every login session in its own cgroup, ended at logout."""

__version__ = "0.1.0"
