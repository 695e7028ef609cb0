#!/usr/bin/env python3
"""Sorts docs/diagnostics.md's index rows and `## Pxxxx` sections by code
(after merges that appended them out of order)."""
import re
p = "docs/diagnostics.md"
s = open(p).read()
start = s.index("<!-- index:start -->"); end = s.index("<!-- index:end -->")
table = s[start:end]
lines = table.split("\n")
rows = [l for l in lines if re.match(r"\| \[P\d{4}\]", l)]
other = [l for l in lines if l not in rows]
# other = ['<!-- index:start -->', '| code | summary |', '| --- | --- |', ''] in order
head = [l for l in other if l.strip()]
rows = sorted(set(rows), key=lambda l: re.match(r"\| \[(P\d{4})\]", l).group(1))
s = s[:start] + "\n".join(head + rows) + "\n" + s[end:]
first = re.search(r"(?m)^## P\d{4} — ", s).start()
body = s[first:]
secs = re.split(r"(?m)^(?=## P\d{4} — )", body)
secs = [x.rstrip() + "\n\n" for x in secs if x.strip()]
secs.sort(key=lambda x: x[3:8])
s = s[:first] + "".join(secs).rstrip() + "\n"
open(p, "w").write(s)
