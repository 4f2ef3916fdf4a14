"""The API: declared once (service), framed once (protocol), served on a Unix socket (server)."""
