#!/usr/bin/env python3
r"""What approximate search costs each width: a gallery indexed by the full model, searched by
every sub-model's queries, through Flat, IVF-Flat, IVF-PQ and HNSW.

    python tools/bench_index.py --model-dir logs/demo --gallery-size 1000000 \
        --real-distractors 15000 [--contrast-dir logs/bct_s] \
        --output benchmarks/gallery_index

The gallery: the model's test gallery at width 1.0, then real distractors (rendered images of
identities outside every split, under the test set's cameras, extracted by the model as the
evaluation extracts), then made distractors (mixtures of real distractor features) up to
--gallery-size. Queries: the test queries at every width. For each index and operating point
(nprobe / efSearch) and width: recall@1/10/100 against exact search, mAP / Rank-1 of the
index's lists against exact lists, queries per second, and build time and memory; then
whether sub-model queries lose more, what a coarse quantiser trained on mixed widths buys, and
whether every width reaches recall@10 >= 0.95 at >= 10x exact search's speed. Prints the
findings as JSON and writes results.json and results.md to --output. Real distractor
features are cached in --cache-dir.
"""
import argparse
import json
import logging
import os
import shlex
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ints(text: str):
    return tuple(int(v) for v in text.split(","))


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--model-dir", required=True, help="trained switchable model (SFSC)")
    parser.add_argument("--contrast-dir", default="", help="a second model, e.g. BCT-S")
    parser.add_argument("--output", default="benchmarks/gallery_index")
    parser.add_argument("--cache-dir", default="logs/gallery_index_cache")
    parser.add_argument("--gallery-size", type=int, default=1_000_000)
    parser.add_argument("--real-distractors", type=int, default=15_000)
    parser.add_argument("--mixed-sample", type=int, default=2_000,
                        help="distractor images also extracted at every sub-model width")
    parser.add_argument("--hnsw-gallery-size", type=int, default=100_000)
    parser.add_argument("--contrast-gallery-size", type=int, default=200_000)
    parser.add_argument("--contrast-real-distractors", type=int, default=4_000)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--pq-m", type=int, default=64)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--nprobes", type=_ints, default=(4, 8, 16, 32, 64, 128))
    parser.add_argument("--pq-nprobes", type=_ints, default=(8, 32, 128))
    parser.add_argument("--ef-searches", type=_ints, default=(16, 64, 256))
    parser.add_argument("--indexes", default="flat,ivf,ivfpq,hnsw")
    parser.add_argument("--contrast-indexes", default="flat,ivf")
    parser.add_argument("--threads", type=int, default=1, help="faiss and torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", action="append", default=[],
                        help="a line for results.md's header (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        stream=sys.stderr)

    import sfsc  # noqa: F401  (patches FastReID, registers SFSC components)
    from sfsc.benchmark.gallery_index import IndexBenchSettings, run_index_benchmark, write_report
    from sfsc.benchmark.tables.runner import git_commit

    settings = IndexBenchSettings(
        model_dir=args.model_dir, contrast_dir=args.contrast_dir,
        gallery_size=args.gallery_size, real_distractors=args.real_distractors,
        mixed_sample=args.mixed_sample, hnsw_gallery_size=args.hnsw_gallery_size,
        contrast_gallery_size=args.contrast_gallery_size,
        contrast_real_distractors=args.contrast_real_distractors, nlist=args.nlist,
        pq_m=args.pq_m, hnsw_m=args.hnsw_m, nprobes=args.nprobes, pq_nprobes=args.pq_nprobes,
        ef_searches=args.ef_searches, indexes=tuple(args.indexes.split(",")),
        contrast_indexes=tuple(args.contrast_indexes.split(",")), threads=args.threads,
        seed=args.seed, cache_dir=args.cache_dir)
    command = "python tools/bench_index.py " + shlex.join(argv if argv is not None
                                                          else sys.argv[1:])
    before = _machine()
    try:
        results = run_index_benchmark(settings)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results.update(command=command, git_commit=git_commit(_ROOT, args.output),
                   machine={"before": before, "after": _machine()})
    header = [f"`{command}`", "",
              f"Commit {results['git_commit']}; {results['wall_time_s'] / 60:.1f} min; "
              f"{before} before, {results['machine']['after'].split('load average ')[1]} "
              "after.", ""] + [line for note in args.note for line in (note, "")]
    paths = write_report(results, args.output, header)
    summary = {"gallery": results["main"]["gallery"], "wall_time_s": results["wall_time_s"],
               "findings": {part: {k: v for k, v in found.items() if k != "sub_model_loss"}
                            for part, found in results["findings"].items()},
               "written": list(paths)}
    print(json.dumps(summary, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
