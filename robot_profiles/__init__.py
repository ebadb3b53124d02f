"""Data package: robot, tool, controller and cell profiles (TOML), read by sculptor.profiles."""
