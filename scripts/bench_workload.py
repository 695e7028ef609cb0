#!/usr/bin/env python3
"""Helper for scripts/bench (standard library only).

Subcommands:
  gen plinth|terraform N DIR
      Write the reference workload into DIR (main.plinth or main.tf):
      N data resources chained in runs of 10. Resource i takes the previous
      resource's output when i % 10 != 0, otherwise the literal "v<i>".
  run STDERR_FILE CMD [ARG...]
      Run CMD with stdout discarded and stderr written to STDERR_FILE.
      Prints "<wall seconds> <peak RSS in KiB>" and exits with CMD's status.
      Peak RSS is ru_maxrss of RUSAGE_CHILDREN: this process waits for exactly
      one child, so it is that child's (or its largest waited descendant's) peak.
      Used by scripts/bench when GNU time is not available.
  tfcount STATE_FILE
      Print the number of resource instances in a terraform.tfstate file.
"""

import json
import os
import resource
import subprocess
import sys
import time


def gen(kind: str, n: int, out_dir: str) -> None:
    lines = []
    for i in range(n):
        if kind == "plinth":
            if i % 10 == 0:
                lines.append(f'resource core.data r{i} {{ input = "v{i}" }}')
            else:
                lines.append(f"resource core.data r{i} {{ input = core.data.r{i - 1}.output }}")
        elif kind == "terraform":
            if i % 10 == 0:
                lines.append(f'resource "terraform_data" "r{i}" {{ input = "v{i}" }}')
            else:
                lines.append(
                    f'resource "terraform_data" "r{i}" {{ input = terraform_data.r{i - 1}.output }}'
                )
        else:
            sys.exit(f"bench_workload.py: unknown workload kind {kind!r}")
    name = "main.plinth" if kind == "plinth" else "main.tf"
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
        f.write("\n")


def run(stderr_file: str, argv: list[str]) -> int:
    with open(stderr_file, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        status = proc.wait()
        wall = time.perf_counter() - start
    rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(f"{wall:.6f} {rss_kib}")
    if status < 0:  # killed by a signal
        return 128 - status
    return status


def tfcount(state_file: str) -> None:
    with open(state_file, encoding="utf-8") as f:
        state = json.load(f)
    print(sum(len(r.get("instances", [])) for r in state.get("resources", [])))


def main() -> int:
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "gen":
        gen(args[1], int(args[2]), args[3])
        return 0
    if len(args) >= 3 and args[0] == "run":
        return run(args[1], args[2:])
    if len(args) == 2 and args[0] == "tfcount":
        tfcount(args[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
