"""Pure decision logic: no sockets, files or clocks inside; state and time in, state and effects out."""
