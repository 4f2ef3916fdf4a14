"""Read logind.conf and its drop-ins exactly as logind v252 does, into one Config.

Files: ROOT/etc/systemd/logind.conf, then the `*.conf` drop-ins of
ROOT/{etc,run,usr/local/lib,usr/lib}/systemd/logind.conf.d/ (a basename seen in an earlier
directory hides the later ones; the survivors are read in basename order). The grammar is
systemd's conf-parser.c: config_parse(), parse_line(), next_assignment().
"""

from __future__ import annotations

import dataclasses
import difflib
import errno
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from logoutd.config import schema, values
from logoutd.config.model import Config, Source

MAIN_FILE = "etc/systemd/logind.conf"
DROPIN_DIRS = ("etc", "run", "usr/local/lib", "usr/lib")  # highest priority first
DROPIN_SUBDIR = "systemd/logind.conf.d"
LONG_LINE_MAX = 1 << 20  # systemd's LONG_LINE_MAX: a line this long aborts the parse
_BOM = b"\xef\xbb\xbf"
_EOL = re.compile(rb"[\n\r\0]")
_EOL_KIND = {0x00: 1, 0x0A: 2, 0x0D: 4}
_WS = values.WHITESPACE.encode()


@dataclass(frozen=True)
class ConfigWarning:
    """One complaint about a file, with the line it is about (0: the file as a whole).

    `message` is worded as logind's; `key`/`value` name the assignment it is about (value None:
    not an assignment), `accepted` what the key takes, `note` what happens instead. `ignored`:
    the line (or part of it) did not apply; False for advice such as file permissions.
    """

    file: str
    line: int
    message: str
    key: str = ""
    value: str | None = None
    accepted: str = ""
    note: str = ""
    ignored: bool = True

    @property
    def where(self) -> str:
        """FILE:LINE, or FILE for the file as a whole."""
        return self.file if self.line == 0 else f"{self.file}:{self.line}"

    @property
    def logind(self) -> str:
        """The line as logind would log it."""
        return f"{self.where}: {self.message}"

    def __str__(self) -> str:
        text = f"{self.where}: "
        if self.key and self.value is not None:
            text += f"{self.key}={self.value}: "
        text += self.message
        if self.accepted:  # logind's message may end in the bad value itself: no "." after it
            text += f" Accepted: {self.accepted}." if text.endswith(".") else f"; accepted: {self.accepted}."
        if self.note:
            text += f" {self.note}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """The warning for JSON: its parts and its text."""
        return {"file": self.file, "line": self.line, "key": self.key or None,
                "value": self.value, "message": self.message, "accepted": self.accepted or None,
                "note": self.note or None, "ignored": self.ignored, "text": str(self)}


@dataclass(frozen=True)
class ConfigResult:
    """What load_config() found. `fatal` (never also in `warnings`) stopped all later files."""

    config: Config
    warnings: tuple[ConfigWarning, ...]
    files: tuple[str, ...]  # the files opened and read, in order (masks included)
    fatal: ConfigWarning | None


class _Fatal(Exception):
    def __init__(self, warning: ConfigWarning) -> None:
        super().__init__(str(warning))
        self.warning = warning


def config_files(root: Path) -> list[Path]:
    """The main file (if present) then the surviving drop-ins, in the order they are read.

    conf_files_list_nulstr(flags=0): hidden files are skipped; masks (/dev/null symlinks,
    empty files) are listed, they simply contribute nothing.
    """
    files: list[Path] = []
    main = root / MAIN_FILE
    try:
        os.stat(main)
        files.append(main)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError:
        files.append(main)  # unreadable: load_config() reports it and stops there
    found: dict[str, Path] = {}
    for top in DROPIN_DIRS:
        directory = root / top / DROPIN_SUBDIR
        try:
            names = os.listdir(directory)
        except OSError:
            continue  # logind ignores missing and unreadable drop-in directories
        for name in names:
            if name.endswith(".conf") and not name.startswith("."):
                found.setdefault(name, directory / name)
    files.extend(found[name] for name in sorted(found, key=os.fsencode))
    return files


def load_config(root: Path = Path("/")) -> ConfigResult:
    """Parse every file of config_files(root) on top of the compiled-in defaults.

    Like logind at startup, a fatal error keeps whatever was parsed before it.
    """
    loader = _Loader()
    files: list[str] = []
    fatal: ConfigWarning | None = None
    for path in config_files(root):
        name = str(path)
        try:
            data, mode = _read(path)
        except _NotAFile as err:
            fatal = ConfigWarning(name, 0, f"Failed to open configuration file '{name}': {err}")
            break
        except FileNotFoundError:
            continue  # e.g. a dangling symlink: it still hid lower drop-ins of its name
        except IsADirectoryError as err:
            fatal = ConfigWarning(name, 0, f"Error while reading configuration file: {err.strerror}")
            break
        except OSError as err:
            fatal = ConfigWarning(name, 0, f"Failed to open configuration file '{name}': {err.strerror}")
            break
        files.append(name)
        loader.check_permissions(name, mode, len(data))
        try:
            loader.parse_file(name, data)
        except _Fatal as err:
            fatal = err.warning
            break
    return ConfigResult(loader.config(), tuple(loader.warnings), tuple(files), fatal)


class _NotAFile(Exception):
    pass


def _read(path: Path) -> tuple[bytes, int]:
    """The file's bytes and mode. Opened without blocking and read only when it is a regular
    file or /dev/null (a mask): a FIFO would block the daemon's loop for good, /dev/zero fill
    its memory (logind itself would block or grow on both)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(st.st_mode) and not _is_dev_null(st):
            raise _NotAFile(f"not a regular file ({_kind(st.st_mode)})")
        return f.read(), st.st_mode


def _is_dev_null(st: os.stat_result) -> bool:
    try:
        null = os.stat("/dev/null")
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a file")


def _split_lines(data: bytes) -> Iterator[bytes]:
    """read_line(): a line ends at \\n, \\r, \\0, or a run of distinct ones (\\r\\n, …)."""
    pos, n = 0, len(data)
    while pos < n:
        match = _EOL.search(data, pos)
        if match is None:
            yield data[pos:]
            return
        end = match.start()
        seen = 0
        j = end
        while j < n:
            kind = _EOL_KIND.get(data[j], 0)
            if seen & 1 or not kind or seen & kind:
                break
            seen |= kind
            j += 1
        yield data[pos:end]
        pos = j


def _ends_escaped(line: bytes) -> bool:
    """An odd run of trailing backslashes continues the line."""
    return (len(line) - len(line.rstrip(b"\\"))) % 2 == 1


def _string_is_safe(text: str) -> bool:
    return not any(ord(c) < 0x20 or c in "\"'\\\x7f" for c in text)


class _Loader:
    """The values being built, field by field, and what was said about them."""

    def __init__(self) -> None:
        defaults = Config()
        self.values: dict[str, Any] = {
            f.name: getattr(defaults, f.name) for f in dataclasses.fields(Config) if f.name != "sources"
        }
        self.sources: dict[str, Source] = {}
        self.warnings: list[ConfigWarning] = []

    def config(self) -> Config:
        sources = MappingProxyType(dict(self.sources))
        return dataclasses.replace(Config(), **self.values, sources=sources)

    def check_permissions(self, file: str, mode: int, size: int) -> None:
        """stat_warn_permissions(): complain about executable or world-writable regular files."""
        if not stat.S_ISREG(mode) or size == 0:
            return
        if mode & 0o111:
            self.warnings.append(
                ConfigWarning(
                    file,
                    0,
                    (
                        f"Configuration file {file} is marked executable. "
                        "Please remove executable permission bits. Proceeding anyway."
                    ),
                    ignored=False,
                )
            )
        if mode & 0o002:
            self.warnings.append(
                ConfigWarning(
                    file,
                    0,
                    (
                        f"Configuration file {file} is marked world-writable. "
                        "Please remove world writability permission bits. Proceeding anyway."
                    ),
                    ignored=False,
                )
            )

    def parse_file(self, file: str, data: bytes) -> None:
        """config_parse(): physical lines to logical lines; raises _Fatal."""
        state = _FileState(file)
        lineno = 0
        continuation: bytes | None = None
        for raw in _split_lines(data):
            lineno += 1
            if len(raw) >= LONG_LINE_MAX:
                raise _Fatal(ConfigWarning(file, lineno, "Line too long"))
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if raw.lstrip(_WS)[:1] in (b"#", b";"):
                continue  # a comment, even in the middle of a continued line
            if continuation is not None:
                if len(continuation) + len(raw) > LONG_LINE_MAX:
                    raise _Fatal(ConfigWarning(file, lineno, "Continuation line too long"))
                raw = continuation + raw
            if _ends_escaped(raw):
                continuation = raw[:-1] + b" "
                continue
            continuation = None
            self._parse_line(state, lineno, raw)
        if continuation is not None:
            self._parse_line(state, lineno, continuation)

    def _parse_line(self, state: _FileState, lineno: int, raw: bytes) -> None:
        """parse_line(): a section header or an assignment."""
        file = state.file
        stripped = raw.strip(_WS)
        if not stripped:
            return
        try:
            line = stripped.decode("utf-8")
        except UnicodeDecodeError:
            shown = stripped.decode("utf-8", "replace")
            raise _Fatal(
                ConfigWarning(file, lineno, f"String is not UTF-8 clean, ignoring assignment: {shown}")
            ) from None
        if line.startswith("["):
            if not line.endswith("]"):
                raise _Fatal(ConfigWarning(file, lineno, f"Invalid section header '{line}'"))
            name = line[1:-1]
            if not _string_is_safe(name):
                raise _Fatal(ConfigWarning(file, lineno, f"Bad characters in section header '{line}'"))
            if name in schema.SECTIONS:
                state.section, state.section_ignored = name, False
            else:
                if not name.startswith("X-"):
                    known = ", ".join(f"[{s}]" for s in schema.SECTIONS)
                    self._warn(file, lineno, f"Unknown section '{name}'. Ignoring.",
                               accepted=f"{known}, or [X-...] for sections other programs read",
                               note="Its lines are ignored up to the next section."
                                    + _did_you_mean(name, schema.SECTIONS, "[{}]"))
                state.section, state.section_ignored = None, True
            return
        if state.section is None:
            if not state.section_ignored:
                self._warn(file, lineno, "Assignment outside of section. Ignoring.",
                           accepted="Key=value lines after a section header such as [Login]")
            return
        key, eq, value = line.partition("=")
        if not eq:
            self._warn(file, lineno, "Missing '=', ignoring line.",
                       accepted="Key=value, a [Section] header, or a comment starting with # or ;")
            return
        if not key:
            self._warn(file, lineno, "Missing key name before '=', ignoring line.",
                       accepted="Key=value")
            return
        key, value = key.strip(values.WHITESPACE), value.strip(values.WHITESPACE)
        option = schema.lookup(state.section, key)
        if option is None:
            if not key.startswith("X-"):
                keys = [o.key for o in schema.OPTIONS if o.section == state.section]
                self._warn(file, lineno,
                           f"Unknown key name '{key}' in section '{state.section}', ignoring.",
                           key=key, value=value,
                           accepted=f"the keys of [{state.section}] (docs/configuration.md), "
                                    "or X-... for keys other programs read",
                           note=_did_you_mean(key, keys, "{}=").lstrip())
            return
        where = Source(file, lineno)
        if option.is_list:
            self._assign_list(option, value, where)
        else:
            self._assign(option, value, where)

    def _assign(self, option: schema.Option, text: str, where: Source) -> None:
        try:
            value = option.parse(text)
        except ValueError as err:
            note = ""
            if option.field is not None:  # the previous value stays, as in logind
                kept = schema.render_value(self.values[option.field])
                source = self.sources.get(option.field)
                origin = f"set at {source.file}:{source.line}" if source else "the default"
                note = f"{option.key}={kept} ({origin}) stays in effect."
            self._refused(where, option, text, err, note)
            return
        if option.field is not None:
            self.values[option.field] = value
            self.sources[option.field] = where

    def _assign_list(self, option: schema.Option, text: str, where: Source) -> None:
        """config_parse_strv(): empty resets; otherwise each word is appended."""
        if not text:
            if option.field is not None:
                self.values[option.field] = option.default()
                self.sources[option.field] = where
            return
        words, unbalanced = values.split_words(text)
        accepted: list[object] = []
        for word in words:
            try:
                accepted.append(option.parse(word))
            except ValueError as err:
                self._refused(where, option, text, err, "The other words of the line apply.")
        # Any word, even a refused one, makes the list set: KillExcludeUsers=bad/name must
        # drop root's implicit exclusion as logind's ["bad/name"] does. A line whose every
        # word was refused and that changed nothing is not named as the value's source.
        if words and option.field is not None:
            current = self.values[option.field]
            assert current is None or isinstance(current, tuple)
            if accepted or current is None:
                self.values[option.field] = (*(current or ()), *accepted)
                self.sources[option.field] = where
        if unbalanced:
            self._warn(where.file, where.line, f"Invalid syntax, ignoring: {text}",
                       key=option.key, value=text,
                       accepted="words separated by spaces, quoted with matching ' or \"",
                       note="The words before the unbalanced quote apply.")

    def _refused(self, where: Source, option: schema.Option, text: str, err: ValueError,
                 note: str) -> None:
        accepted = err.accepted if isinstance(err, values.BadValue) else ""
        self._warn(where.file, where.line, str(err), key=option.key, value=text,
                   accepted=accepted, note=note)

    def _warn(self, file: str, line: int, message: str, *, key: str = "",
              value: str | None = None, accepted: str = "", note: str = "") -> None:
        self.warnings.append(ConfigWarning(file, line, message, key, value, accepted, note))


def _did_you_mean(name: str, known: list[str] | tuple[str, ...], form: str) -> str:
    """" Did you mean X?" for a near miss (case or a typo), else ""."""
    folded = {k.lower(): k for k in known}
    match = folded.get(name.lower())
    if match is None:
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
        match = close[0] if close else None
    return f" Did you mean {form.format(match)}?" if match else ""


@dataclass
class _FileState:
    """Per-file parser state: the current section (None before any or after an unknown one)."""

    file: str
    section: str | None = None
    section_ignored: bool = False
