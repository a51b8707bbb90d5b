"""The cluster resource manager's decisions: DC election, join, CIB versions, quorum, transitions, status."""
