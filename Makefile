# logoutd — `make run` (the daemon, built-in defaults) and `make test` (the whole suite),
# on a fresh Debian machine as root. Both install what they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
APT_PACKAGES := python3 python3-venv openssh-server openssh-client tmux screen dbus-daemon \
                util-linux passwd procps libpam-modules systemd libpam-systemd polkitd zsh dash \
                prometheus logrotate runit s6 man-db groff-base
HOOK   := /usr/local/bin/logoutd-pam

.PHONY: run test demo deps venv lint typecheck bench clean install-hook install-ctl

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dbus,metrics]'
	touch $@

venv: $(VENV)/.installed

# Debian packages the tests drive for real: sshd, su/runuser, tmux, screen, zsh and dash (login
# shells for the shell integration), dbus-daemon, and
# systemd's stock loginctl and pam_systemd.so (run against logoutd's org.freedesktop.login1),
# polkitd (SetUserLinger is decided by polkit when it is on the bus), prometheus (the real server
# and promtool scrape and check /metrics), logrotate, runit and s6 (contrib/ files run by their
# real tools), man-db (the man pages).
# policy-rc.d keeps apt from starting a system sshd on port 22 (servers here are loopback only).
deps:
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
	  created=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; created=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  status=$$?; [ -n "$$created" ] && rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

install-hook: venv
	$(PY) -m logoutd install-pam-hook --dest $(HOOK)

# logoutctl for every user (the venv's Python may be unreadable to them) and the man pages.
install-ctl: venv
	$(PY) -m logoutd install-logoutctl --dest /usr/local/bin/logoutctl
	$(PY) -m logoutd install-man-pages --dest /usr/local/share/man

run: deps venv install-hook install-ctl
	$(PY) -m logoutd

test: deps venv
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/mypy --strict src
	$(VENV)/bin/pytest -q -p no:cacheprovider tests

demo: deps venv
	$(PY) demo/demo.py

bench: deps venv
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
