"""``ytfgvc download``: every listed video fetched once, filtered, verified and accounted for.

Modules: :mod:`~ytfgvc.download.runner` (the run), :mod:`~ytfgvc.download.ytdlp` (yt-dlp
embedded), :mod:`~ytfgvc.download.sources`, :mod:`~ytfgvc.download.probe`,
:mod:`~ytfgvc.download.classify` (errors to statuses), :mod:`~ytfgvc.download.ledger`,
:mod:`~ytfgvc.download.manifest`, :mod:`~ytfgvc.download.report` (``--status``),
:mod:`~ytfgvc.download.merge` (``--merge``), :mod:`~ytfgvc.download.server` (loopback mirror),
:mod:`~ytfgvc.download.passthrough` (yt-dlp's own options, proxies), :mod:`~ytfgvc.download.census`
(``--recheck``) and :mod:`~ytfgvc.download.health` (``health.json``), :mod:`~ytfgvc.download.fingerprint`
and :mod:`~ytfgvc.download.recover` (``--verify-fingerprints``), :mod:`~ytfgvc.download.intersect`
(``snapshot intersect``).

Example:
    >>> from ytfgvc.download import DownloadConfig, download
    >>> result = download(Path("ytfgvc-data"), DownloadConfig(dataset="synthetic"))
    >>> result.totals
    {'ok': 150, 'filtered_duration': 5, 'filtered_resolution': 5}
"""

from ytfgvc.download.config import DownloadConfig
from ytfgvc.download.runner import DownloadResult, Interrupted, download

__all__ = ["DownloadConfig", "DownloadResult", "Interrupted", "download"]
