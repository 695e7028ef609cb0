#!/usr/bin/env python3
"""Resolves git conflict blocks in a file by keeping both sides, ordered
`theirs` then `ours` (--theirs-first, default) or `ours` then `theirs`
(--ours-first). For append-only documents like docs/diagnostics.md."""
import re, sys
args = [a for a in sys.argv[1:] if not a.startswith("--")]
ours_first = "--ours-first" in sys.argv
for path in args:
    text = open(path).read()
    pat = re.compile(r"<<<<<<< [^\n]*\n(.*?)=======\n(.*?)>>>>>>> [^\n]*\n", re.S)
    def fix(m):
        ours, theirs = m.group(1), m.group(2)
        return ours + theirs if ours_first else theirs + ours
    open(path, "w").write(pat.sub(fix, text))
