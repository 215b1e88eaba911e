"""Where videos come from: ``--source youtube | mirror | URL-TEMPLATE | DIR``.

* ``youtube``: ``https://www.youtube.com/watch?v=<id>`` through yt-dlp's YouTube extractor.
* ``mirror``: the dataset's own ``mirror/`` folder (the synthetic dataset has one),
  served over loopback HTTP by :class:`~ytfgvc.download.server.MirrorServer` for the
  duration of the run, so it takes exactly the path a remote mirror takes.
* a URL template (``http://host/videos/{id}.mp4``): a lab's copy; ``{id}`` is replaced by
  the (validated) video id. Any page yt-dlp understands works, not only plain files.
* a folder: bring your own files, ``DIR/<id>.mp4`` (or ``.webm``, ``.mkv``, ``.mov``,
  ``.m4v``, remuxed to MP4), copied without any network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ytfgvc.datasets import DatasetCard
from ytfgvc.errors import YtfgvcError
from ytfgvc.layout import DatasetLayout, check_video_id

YOUTUBE_TEMPLATE = "https://www.youtube.com/watch?v={id}"
DIR_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".m4v")


@dataclass(frozen=True)
class Source:
    """A parsed ``--source``: ``kind`` is youtube, mirror, url or dir."""

    kind: str
    spec: str
    template: str | None = None
    folder: Path | None = None

    @property
    def uses_network(self) -> bool:
        return self.kind != "dir"

    @property
    def ie_key(self) -> str | None:
        """The yt-dlp extractor to use directly (skips matching the URL against every extractor)."""
        return "Youtube" if self.kind == "youtube" else None

    def url(self, video_id: str) -> str:
        """The URL of ``video_id``; the id is validated before it goes anywhere near a URL."""
        if self.template is None:
            raise YtfgvcError(f"source {self.spec!r} has no URL (the mirror server is not running)")
        return self.template.replace("{id}", check_video_id(video_id))

    def find_file(self, video_id: str) -> Path | None:
        """For a folder source: the file of ``video_id``, if there is one."""
        assert self.folder is not None
        check_video_id(video_id)
        for ext in DIR_EXTENSIONS:
            p = self.folder / f"{video_id}{ext}"
            if p.is_file():
                return p
        return None

    def with_template(self, template: str) -> Source:
        """This source, reached at ``template`` (the mirror once its server runs)."""
        return Source(self.kind, self.spec, template, self.folder)

    def describe(self) -> str:
        if self.kind == "mirror":
            return f"mirror {self.folder} over {self.template or 'loopback HTTP'}"
        if self.kind == "dir":
            return f"folder {self.folder}"
        return self.template or self.spec


def parse_source(spec: str | None, card: DatasetCard, layout: DatasetLayout) -> Source:
    """Parse ``--source`` (None: the card's ``default_source``)."""
    spec = spec or card.default_source
    if spec == "youtube":
        return Source("youtube", spec, YOUTUBE_TEMPLATE)
    if spec == "mirror":
        if not layout.mirror_dir.is_dir():
            hint = "run `ytfgvc synth` first" if card.name == "synthetic" else "pass --source youtube, a URL or a DIR"
            raise YtfgvcError(f"{card.name}: no mirror at {layout.mirror_dir}", hint)
        return Source("mirror", spec, None, layout.mirror_dir)
    if spec.startswith(("http://", "https://")):
        if spec.count("{id}") != 1 or spec.replace("{id}", "").count("{") or spec.replace("{id}", "").count("}"):
            raise YtfgvcError(
                f"--source {spec!r}: a URL template needs exactly one {{id}} and no other braces",
                "e.g. --source 'http://mirror.example.org/birds/{id}.mp4'",
            )
        return Source("url", spec, spec)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return Source("dir", spec, None, folder.resolve())
    raise YtfgvcError(
        f"--source {spec!r} is not youtube, mirror, an http(s) URL template with {{id}}, or an existing folder",
        "e.g. --source youtube, --source 'http://host/{id}.mp4' or --source ~/my-videos",
    )
