"""Download commands: ``download`` (with ``--status``, ``--merge``, ``--recheck``), ``serve-mirror``, ``doctor``,
``snapshot intersect``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ytfgvc.commands.options import cluster_options, emit, json_option, root_option
from ytfgvc.config import default_of
from ytfgvc.download.config import DownloadConfig
from ytfgvc.errors import YtfgvcError

# Exit status of a run that the circuit breaker stopped (finished work is kept).
EXIT_BREAKER = 3


@click.command()
@click.argument("dataset")
@click.argument("ledgers", nargs=-1, type=click.Path(path_type=Path))
@click.option("--source", help="youtube, mirror, a URL template with {id}, or a folder (default: the card's).")
@click.option(
    "--split",
    type=click.Choice(["train", "test", "all"]),
    default=default_of(DownloadConfig, "split"),
    show_default=True,
    help="Which official list to fetch.",
)
@click.option("--limit", type=int, help="Only the first N selected videos.")
@click.option("--shard", metavar="i/N", help="Only shard i of N (0-based; by id hash), e.g. $SLURM_ARRAY_TASK_ID/8.")
@click.option("--jobs", type=int, help="Parallel downloads (default: 2 for YouTube, 4 for mirrors and folders).")
@click.option("--sleep", metavar="S|A-B", help="Seconds between requests (default: 5-10 for YouTube, 0 otherwise).")
@click.option(
    "--retries",
    type=int,
    default=default_of(DownloadConfig, "retries"),
    show_default=True,
    help="Retries of a transient failure in one run.",
)
@click.option("--backoff", "backoff_s", type=float, help="First retry wait (s), doubled each time (default: 30/1).")
@click.option(
    "--breaker",
    type=int,
    default=default_of(DownloadConfig, "breaker"),
    show_default=True,
    help="Stop after K rate-limited answers (or 2K network errors) in a row.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=default_of(DownloadConfig, "timeout_s"),
    show_default=True,
    help="Network timeout (s).",
)
@click.option("--retry-failed", is_flag=True, help="Ask again for videos that failed permanently before.")
@click.option("--cookies", type=click.Path(path_type=Path), help="cookies.txt (Netscape format) passed to yt-dlp.")
@click.option(
    "--cookies-from-browser",
    metavar="BROWSER[+KEYRING][:PROFILE][::CONTAINER]",
    help="yt-dlp's --cookies-from-browser: read cookies from this browser's profile (on Ray: read here, sent "
    "to the nodes as a cookies file).",
)
@click.option(
    "--extractor-args",
    metavar="IE_KEY:ARGS",
    multiple=True,
    help="yt-dlp's --extractor-args, repeatable, e.g. 'youtube:player_client=mweb' or "
    "'youtube:po_token=mweb.gvs+TOKEN' (session tokens are hidden in records).",
)
@click.option(
    "--proxy",
    metavar="URL",
    multiple=True,
    help="Proxy URL for yt-dlp, e.g. socks5://127.0.0.1:1080; repeat to give a list, rotated per worker, "
    "per --shard and per Ray node.",
)
@click.option("--limit-rate", metavar="RATE", help="yt-dlp's --limit-rate: bytes per second per transfer, e.g. 50K.")
@click.option(
    "--verify-fingerprints",
    is_flag=True,
    help="Recovery: take missing videos from --source DIR (or a URL template), each kept as 'recovered' only if "
    "its duration and perceptual hash match the fingerprint recorded in the ledger or in --fingerprints.",
)
@click.option(
    "--fingerprints",
    metavar="MANIFEST",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Another lab's manifest.json whose fingerprints --verify-fingerprints checks against (repeatable; this "
    "root's ledger wins).",
)
@click.option(
    "--recheck",
    is_flag=True,
    help="A census instead of a download: ask for each selected video's metadata only (no bytes), paced like a "
    "download, record today whether it is still available, and rewrite health.json.",
)
@click.option("--status", "show_status", is_flag=True, help="Print the ledger summary instead of downloading.")
@click.option("--merge", "do_merge", is_flag=True, help="Merge the LEDGERS (shard ledgers or roots) into --root.")
@cluster_options
@root_option
@json_option
def download(
    dataset: str, ledgers: tuple[Path, ...], show_status: bool, do_merge: bool, root: Path, as_json: bool, **opts
) -> None:
    """Fetch the listed videos of DATASET: filtered, verified, and accounted for in a ledger.

    Every video ends with one status in videos/../ledger.sqlite: ok, recovered, unavailable,
    blocked, filtered_duration, filtered_resolution, rate_limited, network_error, corrupt or error.
    Running it again resumes: finished videos are never fetched twice, permanent failures
    are not asked for again unless --retry-failed. One download (or --merge) per dataset
    at a time: a second is refused, naming the first (pid, host, since when).

    \b
    Exit status: 0 done; 2 bad input, disk full, ledger locked, or another download
    running (one line on stderr says which and what to do); 3 the circuit breaker
    stopped the run; 130 (SIGINT, Ctrl-C) or 143 (SIGTERM) the run stopped on a signal
    after recording what finished. After 3, 130 and 143 the summary is printed and
    stderr has the exact command that resumes the run.

    \b
    Example:
      ytfgvc download birds --jobs 2 --sleep 5-10
      ytfgvc download synthetic                      # its mirror, over loopback HTTP
      ytfgvc download cars --source 'http://mirror.lab/cars/{id}.mp4' --shard 0/4
      ytfgvc download birds --cookies-from-browser firefox --proxy socks5://p1:1080 --proxy socks5://p2:1080
      ytfgvc download birds --executor ray --ray-address auto --root /shared/ytfgvc
      ytfgvc download birds --recheck                # which videos YouTube still has, today
      ytfgvc download birds --source ~/from-lab-b --verify-fingerprints --fingerprints lab-b/manifest.json
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
        emit(r.to_dict(), as_json, r.text(root))
        return

    from ytfgvc.download import DownloadConfig, Interrupted
    from ytfgvc.download import download as run_download
    from ytfgvc.download.census import recheck
    from ytfgvc.system.interrupts import EXIT_SIGINT, EXIT_SIGTERM

    cfg = DownloadConfig(dataset=dataset, **opts)
    run = recheck if cfg.recheck else run_download
    try:
        r = run(root, cfg, progress=not as_json, log=lambda m: click.echo(m, err=True))
    except Interrupted as stopped:
        emit(stopped.result.to_dict(), as_json, stopped.result.text())
        click.echo(f"interrupted: {stopped.result.message}", err=True)
        sys.exit(EXIT_SIGTERM if stopped.result.signal == "SIGTERM" else EXIT_SIGINT)
    emit(r.to_dict(), as_json, r.text())
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


@click.group()
def snapshot() -> None:
    """Work with downloaded snapshots (manifest.json files), e.g. from several labs.

    \b
    Example:
      ytfgvc snapshot intersect lab-a/birds/manifest.json lab-b/birds/manifest.json --out core.json
    """


@snapshot.command()
@click.argument("manifests", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the common core here (JSON).")
@json_option
def intersect(manifests: tuple[Path, ...], out: Path | None, as_json: bool) -> None:
    """The ids present in every given snapshot: the videos all these copies share.

    MANIFESTS are manifest.json files of one dataset, made from the same official lists.
    Without --out (or --json), prints the ids, one per line.

    \b
    Example:
      ytfgvc snapshot intersect lab-a/birds/manifest.json lab-b/birds/manifest.json --out core.json
      ytfgvc snapshot intersect */birds/manifest.json > core-ids.txt
    """
    from ytfgvc.download.intersect import intersect as do_intersect
    from ytfgvc.download.intersect import write_core

    core = do_intersect(list(manifests))
    if out is not None:
        write_core(core, out)
    if as_json or out is not None:
        held = ", ".join(f"{s['obtained']}" for s in core.snapshots)
        splits = ", ".join(f"{k} {v}" for k, v in core.splits.items()) or "none"
        text = f"{core.dataset}: {core.count} videos in all {len(core.snapshots)} snapshots (they hold {held}); "
        text += f"by split: {splits}" + (f"\nwrote {out}" if out else "")
        emit(core.to_dict(), as_json, text)
    else:
        click.echo("\n".join(core.ids))


COMMANDS = [download, serve_mirror, doctor, snapshot]
