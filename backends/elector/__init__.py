"""backends/elector package."""
