"""tcc subcommands, one module each (see tools.cli)."""
