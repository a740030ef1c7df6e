"""Tests of the DynaProp runtime, calibration, ListOps task, study and profile commands."""
