"""Offline analysis of sessions recorded by recorderd."""

from __future__ import annotations

from analysis.analyzer import SimulationAnalyzer
from analysis.info import SessionInfo, session_info
from analysis.reader import NotASessionError, SessionReader, UnsupportedFormatError

__all__ = [
    "NotASessionError",
    "SessionInfo",
    "SessionReader",
    "SimulationAnalyzer",
    "UnsupportedFormatError",
    "session_info",
]
