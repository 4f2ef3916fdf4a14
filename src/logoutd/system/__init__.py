"""The real implementations of the core's ports: cgroupfs, procfs, pidfds, state files."""
