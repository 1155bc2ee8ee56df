"""Allen Brain Observatory natural scenes: download (`fetch`), describe (`info`), check (`verify`).

The selection defaults to the paper's (App. A.10): areas VISal VISam VISl VISp VISpm, Cre lines
Cux2-CreERT2 Emx1-IRES-Cre Slc17a7-IRES2-Cre, imaging depths 175 185 195 200 205 225 250 265 275 µm
(Allen layers L2/3 below 200 µm and L4 from 200 µm: the paper's "L2/3" includes L4 planes; pass
--depths 175 185 195 for L2/3 only), natural-scene sessions (three_session_B).

`fetch` needs allensdk (pip install 'neurolp[allen]') and the network, and resumes: complete files
are skipped, truncated ones fetched again. `info` and `verify` read the cache with h5py only.

Examples:
  neurolp allen fetch --cache ~/allen
  neurolp allen fetch --cache ~/allen --areas VISp VISl --depths 175 --dry-run
  neurolp allen info --cache ~/allen
  neurolp allen verify --cache ~/allen
"""

from __future__ import annotations

NAME = "allen"
HELP = "download and inspect Allen Brain Observatory natural-scene data"


def selection_args(p, *, cache_flag: str = "--cache", must_exist: bool = True,
                   required: bool = True) -> None:
    """The Allen selection options (areas, Cre lines, depths), shared with `neurolp rsa` (where the
    cache is one of two brain sources, so not ``required``)."""
    from neurolp.brain.selection import (ALL_AREAS, ALLEN_CRE_LINES, PAPER_AREAS, PAPER_CRE_LINES,
                                         PAPER_DEPTHS)
    from neurolp.cli.options import Choice, InPath, Int, OutDir

    p.add_argument(cache_flag, dest=cache_flag.lstrip("-").replace("-", "_"), required=required,
                   type=InPath("dir") if must_exist else OutDir(), metavar="DIR",
                   help="the AllenSDK cache folder (holds manifest.json)")
    p.add_argument("--areas", nargs="+", type=Choice(ALL_AREAS, "visual area"),
                   default=list(PAPER_AREAS), metavar="AREA", help=f"of {', '.join(ALL_AREAS)}")
    p.add_argument("--cre-lines", nargs="+", type=Choice(ALLEN_CRE_LINES, "Cre line"),
                   default=list(PAPER_CRE_LINES), metavar="CRE", help="Allen Cre driver lines")
    p.add_argument("--depths", nargs="+", type=Int(0, 1000), default=list(PAPER_DEPTHS), metavar="UM",
                   help="imaging depths in µm")


def _selection_args(p, must_exist: bool = True) -> None:
    selection_args(p, must_exist=must_exist)
    p.add_argument("--include-failed", action="store_true",
                   help="keep experiment containers that failed the Allen QC")


def add_arguments(parser) -> None:
    from neurolp.cli.options import OutFile

    sub = parser.add_subparsers(dest="allen_command", metavar="SUBCOMMAND",
                                parser_class=type(parser))
    f = sub.add_parser("fetch", help="download the selection into the cache (resumable)")
    _selection_args(f, must_exist=False)
    f.add_argument("--no-events", dest="events", action="store_false",
                   help="skip the L0 event files (only ΔF/F analyses are possible then)")
    f.add_argument("--dry-run", action="store_true", help="only report what is missing")
    f.add_argument("--no-progress", dest="progress", action="store_false")
    i = sub.add_parser("info", help="what the cache holds for the selection")
    _selection_args(i)
    i.add_argument("--csv", type=OutFile(), metavar="PATH", help="also write the experiment table as CSV")
    v = sub.add_parser("verify", help="open every selected file and report problems")
    _selection_args(v)


def _selection(args):
    from neurolp.brain.selection import Selection

    return Selection(tuple(args.areas), tuple(args.cre_lines), tuple(args.depths),
                     include_failed=args.include_failed)


def _print_table(df, cols):
    import pandas as pd

    with pd.option_context("display.width", 140, "display.max_rows", 200):
        print(df[cols].to_string(index=False))


def run(args) -> int:
    from neurolp.errors import ConfigError

    cmd = getattr(args, "allen_command", None)
    if cmd is None:
        raise ConfigError("choose a subcommand: neurolp allen fetch|info|verify --cache DIR")
    sel = _selection(args)
    if cmd == "fetch":
        from neurolp.brain.fetch import fetch_natural_scenes

        df = fetch_natural_scenes(args.cache, sel, events=args.events, dry_run=args.dry_run,
                                  progress=args.progress)
        counts = df["status"].value_counts().to_dict()
        print(f"{sel.describe()}")
        print(f"{len(df)} experiments in {args.cache}: "
              + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
        if args.dry_run and counts.get("missing"):
            _print_table(df[df["status"] == "missing"], ["experiment_id", "area", "depth", "cre_line",
                                                         "mouse", "problems"])
        return 0
    from neurolp.brain.cache import describe_cache

    info = describe_cache(args.cache, sel)
    if not info["n_experiments"]:
        from neurolp.errors import InputError

        raise InputError(f"no natural-scene experiment in {info['cache']} matches the selection ("
                         + "; ".join(info["unmatched"] or [sel.describe()])
                         + "); change --areas/--cre-lines/--depths, or run `neurolp allen fetch` for it")
    if cmd == "info":
        print(sel.describe())
        for line in info["unmatched"]:
            print(f"note: {line}")
        print(f"cache {info['cache']}: {info['n_experiments']} natural-scene experiments, "
              f"{info['n_containers']} containers, {info['n_mice']} mice; Allen layers "
              + ", ".join(f"{k}: {v}" for k, v in sorted(info["layers"].items())))
        if len(info["per_area"]):
            _print_table(info["per_area"], list(info["per_area"].columns))
        if info["missing_nwb"] or info["missing_events"]:
            print(f"missing: {len(info['missing_nwb'])} NWB, {len(info['missing_events'])} events "
                  f"files — run `neurolp allen fetch --cache {args.cache}` (same selection)")
        if info["excluded_failed"]:
            print(f"left out: {len(info['excluded_failed'])} experiments of QC-failed containers")
        if args.csv:
            from neurolp.utils.io import write_csv

            write_csv(info["experiments"], args.csv)
        return 0
    # verify
    from neurolp.brain.cache import CacheLayout
    from neurolp.brain.nwb import check_events, check_nwb, read_cell_ids

    layout = CacheLayout.open(args.cache)
    bad = []
    for eid in info["experiments"]["experiment_id"]:
        p = check_nwb(layout.nwb_path(eid))
        if p:
            bad.append((eid, "nwb", p))
            continue
        e = check_events(layout.events_path(eid), len(read_cell_ids(layout.nwb_path(eid))))
        if e:
            bad.append((eid, "events", e))
    from neurolp.brain.stimuli import natural_scene_templates

    try:
        t = natural_scene_templates(layout.root)
        tmpl = f"templates {t.shape[0]}×{t.shape[1]}×{t.shape[2]}"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        tmpl = f"templates: {exc}"
        bad.append(("-", "templates", str(exc)))
    print(f"checked {info['n_experiments']} experiments in {layout.root}; {tmpl}")
    for line in info["unmatched"]:
        print(f"note: {line}")
    for eid, kind, problem in bad:
        print(f"  {eid} {kind}: {problem}")
    if bad:
        print(f"{len(bad)} problem(s): run `neurolp allen fetch --cache {args.cache}` to repair")
        return 1
    print("all files readable")
    return 0
