"""The PAM hook (stdlib only) and its installer."""
