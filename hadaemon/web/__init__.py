"""ha-web: the cluster console in a browser (successor of hb_gui). See docs/web.md."""
