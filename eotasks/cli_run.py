"""``eotasks run``, ``eotasks task``: the task API from the command line, through ``eotasks.client``.

    eotasks run bandmath --view-id S2/18/S/VG/2020/6/15/0 --bm-type NDVI --geometry field.geojson --wait -o ndvi.tif
    eotasks run mt_stats --date-start 2023-01-01 --date-end 2023-12-31 --bm-type NDVI --geometry field.geojson --wait
    eotasks task TASK_ID [--wait] [-o PATH]

The key is ``--api-key``, else ``EOTASKS_API_KEY``, else the demo key ``make up`` wrote; the
service is ``--url``, else ``EOTASKS_URL``, else http://127.0.0.1:8000. Any other parameter of
SPEC goes in as ``--param name=value`` (the value read as JSON when it is JSON).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

TASK_TYPES = ("bandmath", "lbe", "jpeg", "mt_stats")


def add_commands(sub: Any) -> None:
    p = sub.add_parser("run", help="submit a task (and with --wait, wait for it and download its answer)")
    p.add_argument("type", choices=TASK_TYPES)
    p.add_argument("--view-id", help="the scene (bandmath, lbe, jpeg)")
    p.add_argument("--bm-type", help="expression(s), e.g. NDVI or B04,B03,B02 (bandmath, jpeg, mt_stats)")
    p.add_argument("--bands", help="comma-separated bands (lbe)")
    p.add_argument("--geometry", help="a GeoJSON file or inline JSON: a geometry, a Feature or a one-feature collection")
    p.add_argument("--bbox", help="minx,miny,maxx,maxy in EPSG:4326")
    p.add_argument("--cropper-ref", help="a saved geometry's id")
    p.add_argument("--fields", help="a GeoJSON FeatureCollection file of fields (mt_stats)")
    p.add_argument("--date-start", help="YYYY-MM-DD (mt_stats)")
    p.add_argument("--date-end", help="YYYY-MM-DD (mt_stats)")
    p.add_argument("--sensors", help="comma-separated, e.g. sentinel2l2a,landsat8 (mt_stats)")
    p.add_argument("--format", help="png or jpeg (jpeg)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="any other parameter (repeatable)")
    p.add_argument("--callback-url")
    p.add_argument("--wait", action="store_true", help="wait for the answer, with a progress bar")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait at most (default: no limit)")
    p.add_argument("-o", "--output", help="where to write the answer (a file, or a folder); implies --wait")
    _connection(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("task", help="a task's answer (with --wait, once it has ended; with -o, its file)")
    p.add_argument("task_id")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("-o", "--output")
    _connection(p)
    p.set_defaults(func=cmd_task)


def _connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="the service (default: EOTASKS_URL or http://127.0.0.1:8000)")
    p.add_argument("--api-key", help="default: EOTASKS_API_KEY, else the demo key of `make up`")


def _json_arg(value: str, what: str) -> Any:
    """Inline JSON, else the contents of a file."""
    text = value
    if not value.lstrip().startswith(("{", "[")):
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"{what}: no such file {value}")
        text = path.read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None


def _geometry(value: str) -> dict[str, Any]:
    """A geometry from a file as GIS tools write it: a bare geometry, a Feature, or a collection of one."""
    data = _json_arg(value, "--geometry")
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features") or []
        if len(features) != 1:
            raise ValueError(f"--geometry has {len(features)} features; give one, or pass the collection as --fields")
        data = features[0]
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = data.get("geometry")
    if not isinstance(data, dict):
        raise ValueError("--geometry must be a GeoJSON geometry, Feature or one-feature FeatureCollection")
    return data


def build_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name in ("view_id", "bm_type", "cropper_ref", "date_start", "date_end", "format"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.bands:
        params["bands"] = [b.strip() for b in args.bands.split(",")]
    if args.sensors:
        params["sensors"] = [s.strip() for s in args.sensors.split(",")]
    if args.bbox:
        try:
            params["bbox"] = [float(v) for v in args.bbox.split(",")]
        except ValueError:
            raise ValueError("--bbox must be four numbers: minx,miny,maxx,maxy") from None
    if args.geometry:
        params["geometry"] = _geometry(args.geometry)
    if args.fields:
        params["fields"] = _json_arg(args.fields, "--fields")
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {item!r} must be NAME=VALUE")
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    return params


def reported(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The client's typed errors as one line on stderr and an exit code: 2 for a refused request
    (the field it names included), 1 for a task that did not finish, 3 for a wait that ran out."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        from eotasks.client import ApiError, TaskFailed, TimedOut

        try:
            return command(args)
        except ApiError as exc:
            print(f"eotasks: refused: {exc}", file=sys.stderr)
            return 2
        except TaskFailed as exc:
            print(f"eotasks: {exc}", file=sys.stderr)
            return 1
        except TimedOut as exc:
            print(f"eotasks: {exc}", file=sys.stderr)
            return 3

    return run


@reported
def cmd_run(args: argparse.Namespace) -> int:
    params = build_params(args)
    with _client(args) as client:
        task = client.submit(args.type, params, callback_url=args.callback_url)
        print(f"task {task.id}", file=sys.stderr)
        if not (args.wait or args.output):
            print(task.id)
            return 0
        return _finish(task, args)


@reported
def cmd_task(args: argparse.Namespace) -> int:
    with _client(args) as client:
        task = client.task(args.task_id)
        if not (args.wait or args.output):
            print(json.dumps(task.status(), indent=2))
            return 0
        return _finish(task, args)


def _finish(task: Any, args: argparse.Namespace) -> int:
    task.wait(args.timeout, progress=sys.stderr.isatty() or bool(args.output))
    if args.output:
        print(task.download(args.output))
    else:
        print(json.dumps(task.result, indent=2))
    return 0


def _client(args: argparse.Namespace) -> Any:
    from eotasks.client import Client

    return Client(args.url, args.api_key)
