"""Command-line tools: logoutctl."""
