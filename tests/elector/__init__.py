"""Tests of the ELECTOR backend."""
