"""Rewrites one generated section of a Markdown file (docs/benchmarks.md).

The bench/run_*.sh scripts each render their results as a section that
starts with a BEGIN marker and ends with an END marker (HTML comments);
write_section() replaces the text between the markers, or appends the
section when the file has none yet. The rest of the file is left alone.
"""
import os


def write_section(doc_path, begin, end, section):
    if os.path.exists(doc_path):
        with open(doc_path) as f:
            text = f.read()
    else:
        text = "# Benchmarks\n\n"
    b, e = text.find(begin), text.find(end)
    if b != -1 and e != -1 and b < e:
        text = text[:b] + section + text[e + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    os.makedirs(os.path.dirname(doc_path) or ".", exist_ok=True)
    with open(doc_path, "w") as f:
        f.write(text)
    print(f"wrote {doc_path}")
