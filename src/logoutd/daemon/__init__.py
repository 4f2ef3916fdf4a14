"""The daemon: command line, event loop, signals."""
