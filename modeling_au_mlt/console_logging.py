"""How the command-line scripts show the package's log records.

Library modules log through `logging.getLogger(__name__)`, under the `modeling_au_mlt` logger, and never print;
each script in `scripts/` calls `configure_logging` once. Records then read as the scripts' output always did:
the message alone for information, `warning: ...` and `error: ...` on stderr for the rest.
"""

import logging
import sys

PACKAGE_LOGGER = "modeling_au_mlt"


class _ConsoleFormatter(logging.Formatter):
    """The message alone below `WARNING`; `<level>: message` (lower case) from `WARNING` up."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


class _ConsoleHandler(logging.Handler):
    """Writes records below `WARNING` to stdout or stderr (`info_to_stdout`), the others to stderr.

    The stream is looked up when a record is written, so a script run in-process under a replaced
    `sys.stdout` / `sys.stderr` (as in tests) writes where they point at that moment.
    """

    def __init__(self, info_to_stdout: bool):
        super().__init__()
        self.info_to_stdout = info_to_stdout
        self.setFormatter(_ConsoleFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stdout if self.info_to_stdout and record.levelno < logging.WARNING else sys.stderr
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # logging must never stop the program; `handleError` reports the failure
            self.handleError(record)


def configure_logging(level: int = logging.INFO, *, info_to_stdout: bool = False) -> None:
    """Show the package's records from `level` up on the console (see the module docstring); calling it again
    replaces the earlier setting."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in [handler for handler in logger.handlers if isinstance(handler, _ConsoleHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(_ConsoleHandler(info_to_stdout))
    logger.setLevel(level)
