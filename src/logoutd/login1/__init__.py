"""org.freedesktop.login1 on the system bus: an adapter over the same Service as the socket API."""
