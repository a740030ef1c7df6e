"""Tests of tools.codesign (spaces, strategies, store, executors, sweeps, CLI)."""
