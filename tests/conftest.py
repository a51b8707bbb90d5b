"""Shared pytest configuration: privilege checks for root-only tests."""
import os
import shutil

import pytest


def pytest_collection_modifyitems(config, items):
    is_root = os.geteuid() == 0
    for item in items:
        if "root" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="needs root"))
        if "crm_simulate" in item.keywords and not shutil.which("crm_simulate"):
            item.add_marker(pytest.mark.skip(reason="crm_simulate not installed (scripts/setup installs it)"))
