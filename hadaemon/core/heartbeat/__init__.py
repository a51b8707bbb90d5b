"""Membership and messaging: ha.cf, authkeys, the wire format, membership and reliable messaging (pure)."""
