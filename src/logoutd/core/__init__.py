"""The pure core: sessions, users and the kill decision. Reaches the system only through ports."""
