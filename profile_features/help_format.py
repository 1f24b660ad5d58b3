"""How every command line of the project renders its help: descriptions as written, each option's default."""

from __future__ import annotations

import argparse

__all__ = ["HelpFormatter"]


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions as written (wrap them yourself); every option's help ends with its default: as its help
    text says it, else "(default: X)", "(default: none)" for None or an empty list; flags and required
    options have none."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if action.nargs == 0 or action.required or any(word in help_text for word in ("default", "required")):
            return help_text
        if action.default is None or action.default == []:
            return f"{help_text} (default: none)"
        return super()._get_help_string(action)
