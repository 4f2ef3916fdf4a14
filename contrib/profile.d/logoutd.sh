# logoutd shell integration — install as /etc/profile.d/logoutd.sh (see docs/admin-guide.md).
#
# In a login shell inside a logoutd session, `tmux`, `screen` and `nohup` start in a scope of
# their own (`logoutctl run --scope`), so they survive logout — until the user's last session
# has ended for UserStopDelaySec=, or for good when the user lingers. Where policy does not
# allow it (KeepAllowUsers=, KeepAllowGroups=) or logoutd is not running, one warning says the
# program will be terminated at logout, and it runs as usual. An already running tmux server is
# used as it is. Set LOGOUTD_SHELL_INTEGRATION=0 to turn it off; LOGOUTCTL names the client.

_logoutd_in_session() {
    [ "${LOGOUTD_SHELL_INTEGRATION:-1}" != 0 ] &&
        grep -q '/session-[A-Za-z0-9]*\.scope$' /proc/self/cgroup 2>/dev/null
}

_logoutd_keep() {
    # shellcheck disable=SC2086  # LOGOUTCTL may be a command with arguments
    ${LOGOUTCTL:-logoutctl} run --scope --or-warn -- "$@"
}

tmux() {
    if _logoutd_in_session && ! command tmux has-session >/dev/null 2>&1; then
        _logoutd_keep tmux "$@"   # no server yet: the one this starts is kept
    else
        command tmux "$@"
    fi
}

screen() {
    case " $* " in
        *" -r"*|*" -R"*|*" -x"*|*" -ls"*|*" -list"*|*" -wipe"*|*" -X"*|*" -Q"*|*" -v"*|*" -h"*)
            command screen "$@" ;;  # attach, list or control: no new server
        *)
            if _logoutd_in_session; then _logoutd_keep screen "$@"; else command screen "$@"; fi ;;
    esac
}

nohup() {
    if _logoutd_in_session; then _logoutd_keep nohup "$@"; else command nohup "$@"; fi
}
