"""The scripts' console: the package's records as plain messages, warnings and errors prefixed on stderr."""

import logging

import pytest

from modeling_au_mlt.console_logging import PACKAGE_LOGGER, configure_logging


@pytest.fixture
def package_logger():
    """The package logger, its handlers and level restored after the test."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_records_read_as_the_scripts_print_them(package_logger, capsys):
    configure_logging(info_to_stdout=True)
    configure_logging(info_to_stdout=True)  # a second call replaces the first: no line twice
    module_logger = logging.getLogger(f"{PACKAGE_LOGGER}.data.conversion")
    module_logger.debug("hidden")
    module_logger.info("table\nwrote out")
    module_logger.warning("partial video")
    module_logger.error("bad line")
    captured = capsys.readouterr()
    assert captured.out == "table\nwrote out\n"
    assert captured.err == "warning: partial video\nerror: bad line\n"


def test_level_and_stream_follow_the_arguments(package_logger, capsys):
    configure_logging(logging.WARNING)
    logger = logging.getLogger(f"{PACKAGE_LOGGER}.training.run")
    logger.info("quiet on other ranks")
    logger.warning("still shown")
    configure_logging()
    logger.info("summary")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "warning: still shown\nsummary\n"
