"""One module per daemon, wiring pure cores to I/O shells."""
