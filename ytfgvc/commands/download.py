"""Download commands: ``download`` (with ``--status`` and ``--merge``), ``serve-mirror``, ``doctor``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ytfgvc.cli import cluster_options, emit, json_option, root_option
from ytfgvc.errors import YtfgvcError

# Exit status of a run that the circuit breaker stopped (finished work is kept).
EXIT_BREAKER = 3


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing"


@click.command()
@click.argument("dataset")
@click.argument("ledgers", nargs=-1, type=click.Path(path_type=Path))
@click.option("--source", help="youtube, mirror, a URL template with {id}, or a folder (default: the card's).")
@click.option(
    "--split",
    type=click.Choice(["train", "test", "all"]),
    default="all",
    show_default=True,
    help="Which official list's videos to fetch.",
)
@click.option("--limit", type=int, help="Only the first N selected videos.")
@click.option("--shard", metavar="i/N", help="Only shard i of N (0-based; by id hash), e.g. $SLURM_ARRAY_TASK_ID/8.")
@click.option("--jobs", type=int, help="Parallel downloads (default: 2 for YouTube, 4 for mirrors and folders).")
@click.option("--sleep", metavar="S|A-B", help="Seconds between requests (default: 5-10 for YouTube, 0 otherwise).")
@click.option("--retries", type=int, default=2, show_default=True, help="Retries of a transient failure in one run.")
@click.option("--backoff", "backoff_s", type=float, help="First retry wait (s), doubled each time (default: 30/1).")
@click.option(
    "--breaker",
    type=int,
    default=5,
    show_default=True,
    help="Stop after K rate-limited answers (or 2K network errors) in a row.",
)
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Network timeout (s).")
@click.option("--retry-failed", is_flag=True, help="Ask again for videos that failed permanently before.")
@click.option("--cookies", type=click.Path(path_type=Path), help="cookies.txt (Netscape format) passed to yt-dlp.")
@click.option("--proxy", help="Proxy URL passed to yt-dlp, e.g. socks5://127.0.0.1:1080.")
@click.option("--status", "show_status", is_flag=True, help="Print the ledger summary instead of downloading.")
@click.option("--merge", "do_merge", is_flag=True, help="Merge the LEDGERS (shard ledgers or roots) into --root.")
@cluster_options
@root_option
@json_option
def download(
    dataset: str, ledgers: tuple[Path, ...], show_status: bool, do_merge: bool, root: Path, as_json: bool, **opts
) -> None:
    """Fetch the listed videos of DATASET: filtered, verified, and accounted for in a ledger.

    Every video ends with one status in videos/../ledger.sqlite: ok, unavailable, blocked,
    filtered_duration, filtered_resolution, rate_limited, network_error, corrupt or error.
    Running it again resumes: finished videos are never fetched twice, permanent failures
    are not asked for again unless --retry-failed. Exit status 3: the circuit breaker
    stopped the run (it prints the command that resumes it).

    \b
    Example:
      ytfgvc download birds --jobs 2 --sleep 5-10
      ytfgvc download synthetic                      # its mirror, over loopback HTTP
      ytfgvc download cars --source 'http://mirror.lab/cars/{id}.mp4' --shard 0/4
      ytfgvc download birds --executor ray --ray-address auto --root /shared/ytfgvc
      ytfgvc download birds --status
      ytfgvc download birds --merge shard0/ shard1/ shard2/ shard3/
    """
    if ledgers and not do_merge:
        raise YtfgvcError(f"unexpected arguments {' '.join(map(str, ledgers))}", "did you mean --merge LEDGERS...?")
    if show_status and do_merge:
        raise YtfgvcError("--status and --merge do not go together", "run one, then the other")
    if show_status:
        from ytfgvc.download.report import status_report

        report = status_report(root, dataset)
        emit(report.to_dict(), as_json, report.text())
        return
    if do_merge:
        from ytfgvc.download.merge import merge

        r = merge(root, dataset, list(ledgers))
        text = (
            f"{dataset}: merged {len(r.inputs)} ledger(s) into {root}: {r.records} videos ({_counts(r.counts)}); "
            f"{r.copied} video files copied in\nmanifest {r.manifest_hash}"
        )
        if r.missing_files:
            text += (
                f"\nwarning: {r.missing_files} ok videos have no file here nor beside their ledger; copy the shards' "
                f"videos/ folders into {root}/{dataset}/videos/ and merge again"
            )
        if r.rejected:
            text += f"\nwarning: {len(r.rejected)} files did not match their recorded sha256 and were not copied"
        emit(r.to_dict(), as_json, text)
        return

    from ytfgvc.download import DownloadConfig
    from ytfgvc.download import download as run_download

    cfg = DownloadConfig(dataset=dataset, **opts)
    r = run_download(root, cfg, progress=not as_json, log=lambda m: click.echo(m, err=True))
    settled = sum(r.settled.values())
    lines = [
        f"{dataset}: {r.selected} selected from {r.source}",
        f"  this run:  {_counts(r.this_run)} ({r.attempted} videos, {r.bytes / 1e6:.1f} MB in {r.seconds:.1f} s)",
        f"  skipped:   {r.done_before} already ok"
        + (f", {settled} settled before ({_counts(r.settled)}; --retry-failed asks again)" if settled else ""),
        f"  in total:  {_counts(r.totals)}",
        f"  manifest:  {r.manifest_hash[:16]}… ({r.manifest_path})",
    ]
    if r.cluster:
        c = r.cluster
        lines.append(
            f"  cluster:   {c['nodes']} Ray node(s), videos per node {c['videos_per_node'] or [0]}"
            + (f", {c['returned']} sent back through this process (--root not seen there)" if c["returned"] else "")
        )
    emit(r.to_dict(), as_json, "\n".join(lines))
    if r.stopped == "breaker":
        click.echo(f"error: {r.message}", err=True)
        sys.exit(EXIT_BREAKER)


@click.command("serve-mirror")
@click.argument("dataset")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path), help="Serve this folder instead.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, help="Port (0: any free port).")
@root_option
def serve_mirror(dataset: str, folder: Path | None, host: str, port: int, root: Path) -> None:
    """Serve DATASET's mirror/ folder (or --dir) over HTTP as <id>.mp4, with byte ranges.

    Prints the URL template to pass as --source, then serves until Ctrl-C.

    \b
    Example:
      ytfgvc serve-mirror synthetic --port 8765
      ytfgvc download synthetic --source 'http://127.0.0.1:8765/{id}.mp4'
    """
    from ytfgvc.download.server import serve_forever
    from ytfgvc.layout import DatasetLayout

    folder = folder or DatasetLayout(root, dataset).mirror_dir
    if not folder.is_dir():
        raise YtfgvcError(f"no folder {folder}", "run `ytfgvc synth` or pass --dir")
    try:
        serve_forever(folder, host, port, on_ready=lambda url: click.echo(f"serving {folder} at {url}", err=False))
    except OSError as e:
        raise YtfgvcError(f"cannot listen on {host}:{port}: {e.strerror or e}", "pick another --port") from None


@click.command()
@root_option
@json_option
def doctor(root: Path, as_json: bool) -> None:
    """Check what downloading and training need: yt-dlp and its JS runtime, PyAV, ffmpeg, TV-L1, torch, disk.

    Exit status 1 when something ytfgvc cannot work without is missing.

    \b
    Example:
      ytfgvc doctor
      ytfgvc doctor --json
    """
    from ytfgvc.doctor import render, run_checks

    checks = run_checks(root)
    ok = not any(c.level == "fail" for c in checks)
    emit({"ok": ok, "checks": [c.to_dict() for c in checks]}, as_json, render(checks))
    if not ok:
        sys.exit(1)


COMMANDS = [download, serve_mirror, doctor]
