"""End-to-end tests of HR input: every file kind and setting, synced into the emulator."""

from __future__ import annotations

import pytest

# The bench's checks are plain asserts: rewrite them so failures show both values.
pytest.register_assert_rewrite("tests.input.bench")
