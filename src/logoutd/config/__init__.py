"""logind.conf as logoutd reads it: same files, same rules, plus [Logoutd] and [Policy]."""

from logoutd.config.model import Config, KillMode, Source, TmpfsSize
from logoutd.config.parse import ConfigResult, ConfigWarning, config_files, load_config
from logoutd.config.schema import OPTIONS, Option, render_value

__all__ = [
    "OPTIONS",
    "Config",
    "ConfigResult",
    "ConfigWarning",
    "KillMode",
    "Option",
    "Source",
    "TmpfsSize",
    "config_files",
    "load_config",
    "render_value",
]
