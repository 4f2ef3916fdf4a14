# logoutd shell integration for sh, bash and zsh login shells (docs/admin-guide.md, "Shell
# integration"). Install it with `logoutd install-pam-hook --profile-script
# /etc/profile.d/logoutd.sh`, which writes the three paths below for this host.
#
# In a login shell inside a logoutd session, `tmux`, `screen` and `nohup` start in a scope of
# their own (`logoutctl run --scope`), so they survive logout — until the user's last session
# has ended for UserStopDelaySec=, or for good when the user lingers. Where policy does not
# allow it (KeepAllowUsers=, KeepAllowGroups=), or logoutd or logoutctl is missing or slow,
# one line on stderr says the program will be terminated at logout, and it runs as usual,
# with its usual exit status. An already running tmux server (on the same -L/-S socket) or
# screen session (for -R) is used as it is. In a background job (`nohup cmd &`) the function
# execs, so $! is the program itself. Set LOGOUTD_SHELL_INTEGRATION=0 to turn the functions
# off; LOGOUTCTL (a command, words split by the shell) overrides the client, for tests.
#
# Which of the three are kept is the administrator's choice: [Policy] KeepTmux= and KeepScreen=
# (default yes) and KeepNohup= (default no: nohup runs untouched), as the daemon last wrote them
# to RUNTIME_DIR/shell-keep. With KeepUserWhileUnits=yes a kept program also outlives the user's
# last session, until it ends.
#
# Also sets XDG_RUNTIME_DIR, as pam_systemd does, when it is unset and the user's runtime
# directory is a real directory (not a symlink) owned by the user, mode 0700.

_logoutd_ctl=/usr/local/bin/logoutctl
_logoutd_runtime_root=/run/user
_logoutd_runtime_dir=/run/logoutd

if [ -z "${XDG_RUNTIME_DIR-}" ]; then
    _logoutd_uid=$(id -u)
    # stat does not follow symlinks: 41c0 is "directory, mode 0700" and nothing else
    if [ "$(stat -c %u:%f -- "$_logoutd_runtime_root/$_logoutd_uid" 2>/dev/null)" = "$_logoutd_uid:41c0" ]
    then
        XDG_RUNTIME_DIR=$_logoutd_runtime_root/$_logoutd_uid
        export XDG_RUNTIME_DIR
    fi
    unset _logoutd_uid
fi

_logoutd_in_session() {
    [ "${LOGOUTD_SHELL_INTEGRATION:-1}" != 0 ] &&
        grep -q '/session-[A-Za-z0-9]*\.scope$' /proc/self/cgroup 2>/dev/null
}

# Whether the administrator wants this command kept (KeepTmux=, KeepScreen=, KeepNohup=): one line
# of words in a root-owned file, read by a builtin without asking the daemon (an empty line:
# none). Missing (the daemon never ran), unreadable or not a regular file (a FIFO would block):
# the defaults, tmux and screen.
_logoutd_wanted() {
    _logoutd_kept='tmux screen'
    if [ -f "$_logoutd_runtime_dir/shell-keep" ]; then
        read -r _logoutd_kept 2>/dev/null <"$_logoutd_runtime_dir/shell-keep" || :
    fi
    case " $_logoutd_kept " in
        *" $1 "*) return 0 ;;
    esac
    return 1
}

# A subshell that is not the terminal's foreground job (or has no terminal): a background job,
# whose $! must be the program. A foreground subshell such as `( tmux new -d; tmux ls )` may
# run more commands after this one, so it does not exec.
_logoutd_background() {
    read -r _logoutd_pid _logoutd_x _logoutd_x _logoutd_x _logoutd_pgrp _logoutd_x _logoutd_x \
        _logoutd_tpgid _logoutd_x 2>/dev/null </proc/self/stat || return 1
    [ "$_logoutd_pid" != "$$" ] && [ "$_logoutd_pgrp" != "$_logoutd_tpgid" ]
}

# Run the command as the shell would without these functions.
_logoutd_exec() {
    if _logoutd_background; then
        if [ -n "${ZSH_VERSION-}" ]; then
            exec command "$@"  # zsh's exec alone would call the function again
        fi
        exec "$@"
    fi
    command "$@"
}

# logoutctl exists and so does the interpreter its #! line names (a venv's python can vanish).
_logoutd_runnable() {
    case $1 in
        */*) [ -f "$1" ] && [ -x "$1" ] || return 1 ;;
        *) command -v "$1" >/dev/null 2>&1; return ;;
    esac
    _logoutd_line=
    read -r _logoutd_line 2>/dev/null <"$1" || [ -n "$_logoutd_line" ] || return 1
    case $_logoutd_line in
        '#!'*)
            _logoutd_line=${_logoutd_line#??}
            _logoutd_line=${_logoutd_line#"${_logoutd_line%%[![:space:]]*}"}
            [ -x "${_logoutd_line%%[[:space:]]*}" ] ;;
    esac
}

# Run the command in a scope of its own (logoutctl execs it: same pid, terminal, exit status);
# whatever fails on the way, it runs all the same, after one line on stderr.
_logoutd_keep() {
    if [ -n "${LOGOUTCTL-}" ]; then
        _logoutd_prog=${LOGOUTCTL%%[[:space:]]*}
    else
        _logoutd_prog=$_logoutd_ctl
    fi
    if ! _logoutd_runnable "$_logoutd_prog"; then
        printf 'logoutd: %s will be terminated at logout: cannot run %s.\n' "$1" "$_logoutd_prog" >&2
        _logoutd_exec "$@"
        return
    fi
    if [ -n "${LOGOUTCTL-}" ]; then
        eval "set -- $LOGOUTCTL"' run --scope --or-warn -- "$@"'
    else
        set -- "$_logoutd_ctl" run --scope --or-warn -- "$@"
    fi
    _logoutd_exec "$@"
}

tmux() {
    # tmux's own options come first; the server is the one they name (-L NAME, -S PATH)
    _logoutd_n=0 _logoutd_opts= _logoutd_value=0 _logoutd_plain=0
    for _logoutd_w in "$@"; do
        if [ "$_logoutd_value" = 1 ]; then
            _logoutd_value=0
        else
            case $_logoutd_w in
                --) ;;
                -?*)
                    _logoutd_f=${_logoutd_w#-}
                    while [ -n "$_logoutd_f" ]; do
                        _logoutd_c=${_logoutd_f%"${_logoutd_f#?}"}
                        _logoutd_f=${_logoutd_f#?}
                        case $_logoutd_c in
                            [cV]) _logoutd_plain=1 ;;  # a shell command, or the version: no server
                        esac
                        case $_logoutd_c in
                            [cfLST]) [ -n "$_logoutd_f" ] || _logoutd_value=1; break ;;
                        esac
                    done ;;
                *) break ;;
            esac
        fi
        _logoutd_n=$((_logoutd_n + 1))
        _logoutd_opts="$_logoutd_opts \"\${$_logoutd_n}\""
        [ "$_logoutd_w" = -- ] && break
    done
    if [ "$_logoutd_plain" = 0 ] && _logoutd_in_session && _logoutd_wanted tmux &&
        ! eval "command tmux$_logoutd_opts has-session" >/dev/null 2>&1; then
        _logoutd_keep tmux "$@"  # no server on that socket yet: the one this starts is kept
    else
        _logoutd_exec tmux "$@"
    fi
}

screen() {
    # new: a new session (kept); resume: -R, a new one only if none matches; plain: the rest
    _logoutd_mode=new _logoutd_name= _logoutd_value= _logoutd_detach=0 _logoutd_m=0
    for _logoutd_w in "$@"; do
        if [ -n "$_logoutd_value" ]; then
            [ "$_logoutd_value" = S ] && _logoutd_name=$_logoutd_w
            _logoutd_value=
            continue
        fi
        case $_logoutd_w in
            -ls*|-list*|-wipe*|-version*) _logoutd_mode=plain; break ;;
            -Logfile) _logoutd_value=L; continue ;;
            -?*) ;;
            *)  # the first word that is not an option: a session to resume, or the command
                if [ "$_logoutd_mode" != new ] && [ -z "$_logoutd_name" ]; then
                    _logoutd_name=$_logoutd_w
                fi
                break ;;
        esac
        _logoutd_f=${_logoutd_w#-}
        while [ -n "$_logoutd_f" ]; do
            _logoutd_c=${_logoutd_f%"${_logoutd_f#?}"}
            _logoutd_f=${_logoutd_f#?}
            case $_logoutd_c in
                [vXQ]) _logoutd_mode=plain ;;
                [rx]) [ "$_logoutd_mode" = new ] && _logoutd_mode=attach ;;
                R) [ "$_logoutd_mode" = plain ] || _logoutd_mode=resume ;;
                [dD]) _logoutd_detach=1 ;;
                m) _logoutd_m=1 ;;
                [ceEhpsStT])
                    if [ -n "$_logoutd_f" ]; then
                        [ "$_logoutd_c" = S ] && _logoutd_name=$_logoutd_f
                    else
                        _logoutd_value=$_logoutd_c
                    fi
                    break ;;
            esac
        done
    done
    case $_logoutd_mode in
        resume)  # -R resumes a detached session (with -d/-D: any) named so, if there is one
            _logoutd_pattern='^[[:space:]][0-9][0-9]*\..*(Detached)'
            [ "$_logoutd_detach" = 1 ] && _logoutd_pattern='^[[:space:]][0-9][0-9]*\.'
            if command screen -ls ${_logoutd_name:+"$_logoutd_name"} 2>/dev/null |
                grep -q "$_logoutd_pattern"; then
                _logoutd_mode=plain
            fi ;;
        new)  # -d/-D alone detaches a session elsewhere; inside screen, a new window
            if [ "$_logoutd_m" = 0 ] && { [ "$_logoutd_detach" = 1 ] || [ -n "${STY-}" ]; }; then
                _logoutd_mode=plain
            fi ;;
    esac
    if [ "$_logoutd_mode" != plain ] && [ "$_logoutd_mode" != attach ] && _logoutd_in_session &&
        _logoutd_wanted screen; then
        _logoutd_keep screen "$@"
    else
        _logoutd_exec screen "$@"
    fi
}

nohup() {  # opt-in: keeping nohup jobs reverses "logout ends what the session started"
    if _logoutd_in_session && _logoutd_wanted nohup; then
        _logoutd_keep nohup "$@"
    else
        _logoutd_exec nohup "$@"
    fi
}

# At an interactive login, once: what logoutd ended when this user's previous session ended,
# and how to keep such a program (docs/why-killed.md). Never in `ssh host cmd`, scp or rsync
# (not interactive); silent when logoutd or logoutctl is missing or slow (2 s at most).
# `logoutctl login-notice off` turns it off for the user; LOGOUTD_LOGIN_NOTICE=0 for everyone.
# logoutctl (a Python start) only runs while the daemon flags a notice not shown yet.
case $- in
    *i*)
        if [ "${LOGOUTD_LOGIN_NOTICE:-1}" != 0 ] &&
            [ -e "$_logoutd_runtime_dir/notice/${UID:-$(id -u)}.json" ] &&
            _logoutd_in_session; then
            if [ -n "${LOGOUTCTL-}" ]; then
                _logoutd_prog=${LOGOUTCTL%%[[:space:]]*}
                ! _logoutd_runnable "$_logoutd_prog" ||
                    eval "$LOGOUTCTL kill-history --notice" </dev/null 2>/dev/null
            elif _logoutd_runnable "$_logoutd_ctl"; then
                "$_logoutd_ctl" kill-history --notice </dev/null 2>/dev/null
            fi
        fi ;;
esac
