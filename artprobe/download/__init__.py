"""Download stage: the hub file list at a pinned revision, then one job per file.

``listing`` (the ``remote_files`` checkpoint), ``fetch`` (one ``download`` job), ``cache``
(the hub cache: commit of a revision, stored file list, the offline check at parse time).
"""

from artprobe.download.cache import DownloadError, check_offline_cache
from artprobe.download.fetch import download_file
from artprobe.download.listing import remote_files

__all__ = ["DownloadError", "check_offline_cache", "download_file", "remote_files"]
