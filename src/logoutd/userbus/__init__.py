"""org.freedesktop.systemd1's user manager, the part stock systemd-run and systemctl --user call,
served peer to peer at $XDG_RUNTIME_DIR/systemd/private over logoutd's own units."""
