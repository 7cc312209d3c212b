"""Shared building blocks of the kd-transfer scripts, one concern a module."""
