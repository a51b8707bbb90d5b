"""D-Bus interfaces, one ServiceInterface per object; dbus-next is imported only in hadaemon.bus.dbusnext."""
