"""Helpers for logoutd's integration tests: real cgroups, real PAM, real sshd on loopback.

Every resource a helper creates is registered with a `Cleanup`, which tears it down in a fixed
order (processes first, then the daemon, cgroups, users, files), even when the test failed.
"""
