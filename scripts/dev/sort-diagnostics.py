#!/usr/bin/env python3
"""Sorts docs/diagnostics.md's index rows and `## Pxxxx` sections by code
(after merges that appended them out of order) and adds the index rows
missing for documented codes."""
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
have = {re.match(r"\| \[(P\d{4})\]", l).group(1) for l in rows}
for m in re.finditer(r"(?m)^## (P\d{4}) — (.*)$", s):
    code, summary = m.group(1), m.group(2).strip()
    if code not in have:
        slug = re.sub(r"[^\w\- ]", "", f"{code} — {summary}".lower()).replace(" ", "-")
        rows.append(f"| [{code}](#{slug}) | {summary} |")
        have.add(code)
rows = sorted(set(rows), key=lambda l: re.match(r"\| \[(P\d{4})\]", l).group(1))
s = s[:start] + "\n".join(head + rows) + "\n" + s[end:]
first = re.search(r"(?m)^## P\d{4} — ", s).start()
body = s[first:]
secs = re.split(r"(?m)^(?=## P\d{4} — )", body)
secs = [x.rstrip() + "\n\n" for x in secs if x.strip()]
secs.sort(key=lambda x: x[3:8])
s = s[:first] + "".join(secs).rstrip() + "\n"
open(p, "w").write(s)
