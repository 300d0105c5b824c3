//! The configuration file (TOML): every command-line option, the command line winning.
