#!/usr/bin/env python3
"""Inserts diagnostic sections (and index rows) into docs/diagnostics.md in
code order. Input: a file of sections, each starting with `## Pxxxx — summary`.
Usage: scripts/dev/add-diagnostics.py SECTIONS.md"""
import re, sys

doc_path = "docs/diagnostics.md"
doc = open(doc_path).read()
new = open(sys.argv[1]).read()
sections = re.split(r"(?m)^(?=## P\d{4} — )", new)
sections = [s.strip() + "\n\n" for s in sections if s.strip()]

def anchor(code, summary):
    slug = f"{code} — {summary}".lower()
    slug = re.sub(r"[^\w\- ]", "", slug).replace(" ", "-")
    return slug

for sec in sections:
    m = re.match(r"## (P\d{4}) — (.*)", sec)
    code, summary = m.group(1), m.group(2).strip()
    if re.search(rf"(?m)^## {code} — ", doc):
        print(f"{code} already documented; skipped", file=sys.stderr)
        continue
    # section: before the first section with a greater code
    later = [mm for mm in re.finditer(r"(?m)^## (P\d{4}) — ", doc) if mm.group(1) > code]
    pos = later[0].start() if later else len(doc)
    if not later and not doc.endswith("\n\n"):
        sec = "\n" + sec
    doc = doc[:pos] + sec + doc[pos:]
    # index row
    start = doc.index("<!-- index:start -->")
    end = doc.index("<!-- index:end -->")
    table = doc[start:end]
    row = f"| [{code}](#{anchor(code, summary)}) | {summary} |\n"
    rows = list(re.finditer(r"(?m)^\| \[(P\d{4})\].*\n", table))
    after = [r for r in rows if r.group(1) > code]
    ipos = start + (after[0].start() if after else len(table))
    doc = doc[:ipos] + row + doc[ipos:]
open(doc_path, "w").write(doc)
