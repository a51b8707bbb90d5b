"""dbus-next's duplicate ERROR+traceback for a refused request is dropped; other errors are kept."""
import logging

from hadaemon.bus.dbusnext import RefusedRequestsFilter


def _record(msg):
    return logging.LogRecord("root", logging.ERROR, __file__, 1, msg, None, None)


def test_refused_request_traceback_is_dropped_other_errors_kept():
    f = RefusedRequestsFilter()
    refused = ("got unexpected error processing a message: unknown property 'Nope'.\nTraceback (most recent call "
               "last):\n  ...\ndbus_next.errors.DBusError: unknown property 'Nope'\n")
    crash = "got unexpected error processing a message: boom.\nTraceback ...\nKeyError: 'x'\n"
    assert f.filter(_record(refused)) is False
    assert f.filter(_record(crash)) is True
    assert f.filter(_record("lost the D-Bus connection")) is True


def test_filter_is_installed_once_on_the_root_logger():
    import importlib

    import hadaemon.bus.dbusnext as mod

    importlib.reload(mod)
    assert sum(type(f).__name__ == "RefusedRequestsFilter" for f in logging.getLogger().filters) == 1
