"""Talking to Staffbase's User API: authentication, retries, pacing, errors and the user model."""

from __future__ import annotations
