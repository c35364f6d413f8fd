"""``eotasks``: the operator's command line.

eotasks up                               start the embedded default (Ctrl-C stops it)
eotasks keys create NAME [--quota N]     print a new API key (shown once)
eotasks keys revoke NAME|KEY
eotasks catalog ingest-dir PATH --sensor S --date D [--view-id V] [--platform S2A]
eotasks catalog ingest-stac CATALOG.json | --search API_URL --collection C [--bbox ...] [--datetime ...]
eotasks catalog demo [--out DIR]
eotasks catalog ls [--sensor S]
eotasks blocks setup --bucket B [--endpoint-url URL]   save the S3 blocks the flows read
eotasks automations setup                 save the recovery automations (after prefect deploy)
eotasks run TYPE [params] [--wait] [-o OUT] submit a task as a client (see eotasks/cli_run.py)
eotasks task TASK_ID [--wait] [-o OUT]     a task's answer
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
from pathlib import Path

from eotasks.sample import CROP_DIR, SAMPLE_POLYGON, SAMPLE_VIEW_ID
from eotasks.settings import get_settings


def _progress(label: str):
    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def cmd_keys_create(args: argparse.Namespace) -> int:
    from eotasks.db import create_api_key, init_db

    init_db()
    key, record = create_api_key(args.name, args.quota)
    print(key)
    print(f"# key {record.masked} for {record.name!r}: store it now, it is not shown again", file=sys.stderr)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from eotasks.db import init_db, revoke_api_key

    init_db()
    n = revoke_api_key(args.name)
    print(f"revoked {n} key(s)")
    return 0 if n else 1


def cmd_ingest_dir(args: argparse.Namespace) -> int:
    from eotasks.catalog.ingest import ingest_folder
    from eotasks.db import init_db

    init_db()
    date = dt.date.fromisoformat(args.date) if args.date else None
    record = ingest_folder(args.path, args.sensor, date, args.view_id, args.platform, args.cloud_cover)
    print(f"{record.view_id}  {record.scene_id}  {', '.join(record.assets)}")
    return 0


def cmd_ingest_stac(args: argparse.Namespace) -> int:
    from eotasks.catalog.stac import ingest_stac_search, ingest_static_catalog
    from eotasks.db import init_db

    init_db()
    if args.search:
        bbox = [float(x) for x in args.bbox.split(",")] if args.bbox else None
        records, problems = ingest_stac_search(args.href, args.collection, bbox, args.datetime, args.max_items)
    else:
        records, problems = ingest_static_catalog(args.href)
    for r in records:
        print(f"{r.view_id}  {r.scene_id}  {', '.join(r.assets)}")
    for p in problems:
        print(f"skipped {p}", file=sys.stderr)
    print(f"{len(records)} scenes ingested, {len(problems)} skipped", file=sys.stderr)
    return 0 if records or not problems else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from eotasks.catalog.demo import generate_demo
    from eotasks.db import init_db

    init_db()
    out = Path(args.out) if args.out else get_settings().resolved_data_dir / "demo"
    records = generate_demo(out, progress=_progress("demo scenes"))
    print(f"{len(records)} demo scenes in {out}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from eotasks.catalog.scenes import list_scenes
    from eotasks.db import init_db

    sensor = None
    if args.sensor:
        from eotasks.sensors import SENSORS, sensor_by_name

        found = sensor_by_name(args.sensor)
        if found is None:
            names = ", ".join(f"{s.name} ({s.short})" for s in SENSORS.values())
            raise ValueError(f"unknown sensor {args.sensor!r}; the catalogue holds {names}")
        sensor = found.name
    init_db()
    listed = list_scenes(sensor)
    if not listed:
        print(f"no {sensor + ' ' if sensor else ''}scenes in the catalogue", file=sys.stderr)
    for r in listed:
        print(f"{r.date}  {r.sensor:13s} {r.cloud_cover:5.1f}%  {r.view_id}  {r.scene_id}")
        if args.bands:
            for band, a in sorted(r.assets.items()):
                print(
                    f"    {band:9s} {a['resolution']:>4g} m  value = DN x {a['scale']:g} + {a['offset']:g}  "
                    f"({a.get('unit', 'reflectance')})"
                    f"  nodata {a['nodata']}"
                )
    return 0


def find_sample() -> Path | None:
    """The whole sample scene, when an operator points ``EOTASKS_SAMPLE_DIR`` at a folder of it;
    else None, and the package's crop of it is ingested (a clone from anywhere has only that)."""
    folder = os.environ.get("EOTASKS_SAMPLE_DIR")
    return Path(folder) if folder and Path(folder).is_dir() else None


def demo_key(path: Path, name: str) -> str:
    """The demo key kept in the data dir: the same on every ``make up`` while it is valid (tasks
    submitted with it stay visible), a new one when it was revoked or the database is new."""
    from eotasks.db import create_api_key, find_api_key

    if path.is_file():
        key = path.read_text().strip()
        record = find_api_key(key)
        if record is not None and record.revoked_at is None:
            return key
    key, _ = create_api_key(name)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def cmd_up(args: argparse.Namespace) -> int:
    from eotasks.catalog.demo import demo_fields, generate_demo
    from eotasks.catalog.ingest import ingest_folder
    from eotasks.catalog.scenes import get_scene
    from eotasks.db import init_db
    from eotasks.launcher import PortInUse, Service, require_free_port, service_env

    settings = get_settings()
    try:  # before anything starts: another program's health check would answer for ours
        require_free_port(settings.host, settings.port, "EOTASKS_PORT")
        require_free_port("127.0.0.1", settings.prefect_port, "EOTASKS_PREFECT_PORT")
    except PortInUse as exc:
        print(f"eotasks up: {exc}", file=sys.stderr)
        return 1
    data_dir = settings.resolved_data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(data_dir, settings.prefect_port)
    os.environ.update({k: env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME", "EOTASKS_DATA_DIR")})
    service = Service(env, data_dir / "logs")

    def stop(*_: object) -> None:
        print("\nstopping ...", file=sys.stderr)
        service.stop()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        print(f"starting Prefect server on 127.0.0.1:{settings.prefect_port} (logs in {data_dir / 'logs'}) ...", file=sys.stderr)
        service.start_prefect_server(settings.prefect_port)
        init_db()
        if get_scene(SAMPLE_VIEW_ID) is None:
            # The whole real scene where it is at hand, else the crop of it the package carries:
            # either way the README's requests work on a clone from anywhere.
            sample = find_sample()
            ingest_folder(sample or CROP_DIR, "sentinel2", view_id=SAMPLE_VIEW_ID, platform="S2A")
            what = "the real Sentinel-2 sample" if sample else "the package's crop of the real Sentinel-2 sample"
            print(f"ingested {what} as {SAMPLE_VIEW_ID}", file=sys.stderr)
        if not (data_dir / "demo" / ".done").exists():
            generate_demo(data_dir / "demo", progress=_progress("demo scenes"))
            (data_dir / "demo" / ".done").touch()
        print("starting the warm worker (deploying the flows to its pool) ...", file=sys.stderr)
        from deployments.serve import FLOWS

        service.start_serve([f"{f.name}/{settings.deployment_suffix}" for f in FLOWS])
        service.start_gateway(settings.host, settings.port)
        key = demo_key(data_dir / "demo.key", settings.demo_key_name)
    except Exception as exc:
        print(f"eotasks up failed: {exc}", file=sys.stderr)
        service.stop()
        return 1
    base = settings.resolved_public_url
    field = demo_fields()[0]["geometry"]
    body = {"type": "bandmath", "params": {"view_id": SAMPLE_VIEW_ID, "bm_type": "NDVI", "geometry": SAMPLE_POLYGON}}
    print(
        f"""
eotasks is up.
  gateway      {base}   (OpenAPI: {base}/docs)
  Prefect UI   http://127.0.0.1:{settings.prefect_port}
  demo API key {key}   (kept in {data_dir / "demo.key"}; the same on every start)

Try it:
  KEY=$(cat {data_dir / "demo.key"})
  curl -s -X POST "{base}/api?api_key=$KEY" -H 'Content-Type: application/json' \\
       -d '{json.dumps(body)}'
  curl -si "{base}/api/<task_id>?api_key=$KEY&wait=30"
or, with the client: uv run eotasks run bandmath --view-id {SAMPLE_VIEW_ID} --bm-type NDVI \\
       --geometry '{json.dumps(SAMPLE_POLYGON)}' -o ndvi.tif
A demo field for time series (sentinel2l2a, landsat8, 2023): {json.dumps(field)}

Ctrl-C stops everything.""",
        flush=True,
    )
    service.supervise(log=lambda line: print(line, file=sys.stderr, flush=True))
    return 0


def cmd_blocks_setup(args: argparse.Namespace) -> int:
    from blocks.defaults import register_block_types, save_default_blocks

    register_block_types()
    env = save_default_blocks(args.bucket, args.prefix, args.endpoint_url, args.assets_endpoint_url, args.region)
    print("saved; give the workers and the gateway:")
    for k, v in env.items():
        print(f"  export {k}={v}")
    return 0


def cmd_automations_setup(args: argparse.Namespace) -> int:
    import asyncio

    from eotasks.recovery import NO_HEARTBEAT, NOT_STARTED, ensure_recovery_automations

    asyncio.run(ensure_recovery_automations(f"recover/{get_settings().deployment_suffix}"))
    print(f"saved the automations {NOT_STARTED!r} and {NO_HEARTBEAT!r}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="eotasks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the embedded default").set_defaults(func=cmd_up)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="create a key and print it once")
    p.add_argument("name")
    p.add_argument("--quota", type=int, default=None, help="tasks per UTC day (default: unlimited)")
    p.set_defaults(func=cmd_keys_create)
    p = keys.add_parser("revoke", help="revoke a key by name, masked form or the key itself")
    p.add_argument("name")
    p.set_defaults(func=cmd_keys_revoke)

    cat = sub.add_parser("catalog", help="the scene catalogue").add_subparsers(dest="catalog_command", required=True)
    p = cat.add_parser("ingest-dir", help="ingest a folder of band files of one scene")
    p.add_argument("path")
    p.add_argument("--sensor", required=True, help="sentinel2, sentinel2l2a, landsat8, landsat9 (or S2, S2L2A, L8, L9)")
    p.add_argument("--date", help="YYYY-MM-DD (checked against the view_id)")
    p.add_argument("--view-id", help="e.g. S2/18/S/VG/2020/6/15/0 or L8/LC08_L1TP_... (default: from the file names)")
    p.add_argument("--platform", help="S2A, S2B ... (for the Sentinel-2 scene_id)")
    p.add_argument("--cloud-cover", type=float, default=0.0)
    p.set_defaults(func=cmd_ingest_dir)
    p = cat.add_parser("ingest-stac", help="ingest a static STAC catalogue/item, or (--search) a STAC API search")
    p.add_argument("href", help="catalog.json / item.json path or URL, or with --search the API's URL")
    p.add_argument("--search", action="store_true", help="href is a STAC API (e.g. https://earth-search.aws.element84.com/v1)")
    p.add_argument("--collection", action="append", default=[], help="sentinel-2-l2a, landsat-c2-l2 ... (repeatable)")
    p.add_argument("--bbox", help="minx,miny,maxx,maxy")
    p.add_argument("--datetime", help="e.g. 2023-01-01/2023-12-31")
    p.add_argument("--max-items", type=int, default=500)
    p.set_defaults(func=cmd_ingest_stac)
    p = cat.add_parser("demo", help="write and ingest the synthetic demo time series")
    p.add_argument("--out")
    p.set_defaults(func=cmd_demo)
    p = cat.add_parser("ls", help="list scenes (with --bands: each band's scale, offset, unit and nodata)")
    p.add_argument("--sensor")
    p.add_argument("--bands", action="store_true", help="show how each band's numbers are scaled")
    p.set_defaults(func=cmd_ls)

    blk = sub.add_parser("blocks", help="Prefect blocks").add_subparsers(dest="blocks_command", required=True)
    p = blk.add_parser("setup", help="register block types and save the default S3 blocks (credentials from AWS_*)")
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", default="eotasks")
    p.add_argument("--endpoint-url", help="S3-compatible endpoint for results (MinIO, moto ...)")
    p.add_argument("--assets-endpoint-url", help="endpoint for scene assets (default: --endpoint-url)")
    p.add_argument("--region", default="us-east-1")
    p.set_defaults(func=cmd_blocks_setup)

    auto = sub.add_parser("automations", help="Prefect automations").add_subparsers(dest="automations_command", required=True)
    p = auto.add_parser(
        "setup", help="save the recovery automations (stalled PENDING runs, lost heartbeats); after prefect deploy"
    )
    p.set_defaults(func=cmd_automations_setup)

    from eotasks.cli_run import add_commands

    add_commands(sub)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"eotasks: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
