"""The local resource manager's pure core: result vocabulary, agent environments, result
interpretation and operation bookkeeping (recurring monitors, cancels, stop-implies-cancel)."""
