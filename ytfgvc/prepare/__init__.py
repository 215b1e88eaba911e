"""Frame extraction, optical flow backends and rawframe lists (the `ytfgvc prepare` stage)."""
