#!/usr/bin/env python3
"""Size limits of the sources (docs/ARCHITECTURE.md): no source file over 1,000 lines and no
function over 150, device code (kernels/cuda/) aside. Exit 0 if every file and function is within
them, 1 listing each one that is not.

    scripts/check-sizes.py [ROOT] [--max-file N] [--max-function N] [--list N]

--list N prints the N longest functions instead of checking.

A function is a brace block whose header (the text since the previous ';', '{' or '}') ends in a
parameter list, optionally followed by qualifiers (const, override, noexcept, a trailing return
type, a constructor's initialisers); control statements and lambdas are not, and blocks inside a
function count as the function's lines. Comments, string and character literals are blanked
before the braces are matched.
"""
import os
import re
import sys

FOLDERS = ["core", "kernels", "costmodel", "measure", "db", "search", "graph", "cli", "tests"]
EXEMPT = ["kernels/cuda/"]  # device code: templates unrolled for the hardware
SUFFIXES = (".h", ".cc", ".cuh")
CONTROL = re.compile(r"^(if|for|while|switch|catch|else|do|try|return|case)\b|\belse\s*$")
QUALIFIERS = r"(\s*(const|override|final|noexcept|mutable|&|&&|->\s*[\w:<>,\s\*&]+))*"
HEADER = re.compile(r"\)" + QUALIFIERS + r"\s*$")
INITIALISERS = re.compile(r"\)\s*:\s*[\w:]+\s*[\(\{]")


def blank(text):
    """The text with comments and literals replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = ")" + m.group(1) + '"'
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(text):
    """(name, first line, line count) of each outermost function body in `text`."""
    code = blank(text)
    found = []
    stack = []  # for each open brace: None (scope) or the function's (name, line)
    since = 0   # start of the current header text
    line = 1
    for i, c in enumerate(code):
        if c == "\n":
            line += 1
        elif c == ";":
            since = i + 1
        elif c == "{":
            header = " ".join(code[since:i].split())
            inside = any(f is not None for f in stack)
            is_function = (not inside and header and not CONTROL.search(header) and "]" not in header.split("(")[0]
                           and (HEADER.search(header) or INITIALISERS.search(header))
                           and not header.startswith(("namespace", "class", "struct", "enum", "union", "extern \"")))
            if is_function:
                m = re.search(r"([~\w:]+)\s*\(", header)
                stack.append((m.group(1) if m else header[:40], line))
            else:
                stack.append(None)
            since = i + 1
        elif c == "}":
            top = stack.pop() if stack else None
            if top is not None:
                found.append((top[0], top[1], line - top[1] + 1))
            since = i + 1
    return found


def main():
    args = sys.argv[1:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    max_file, max_function, listing = 1000, 150, 0
    while args:
        a = args.pop(0)
        if a == "--max-file":
            max_file = int(args.pop(0))
        elif a == "--max-function":
            max_function = int(args.pop(0))
        elif a == "--list":
            listing = int(args.pop(0))
        else:
            root = a
    problems, all_functions, files = [], [], 0
    for folder in FOLDERS:
        base = os.path.join(root, folder)
        if not os.path.isdir(base):
            print(f"check-sizes: no folder {folder}/ under {root}", file=sys.stderr)
            return 1
        for dirpath, _, names in sorted(os.walk(base)):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                if not name.endswith(SUFFIXES) or any(rel.startswith(e) for e in EXEMPT):
                    continue
                files += 1
                text = open(path, encoding="utf-8", errors="replace").read()
                lines = text.count("\n")
                if lines > max_file:
                    problems.append(f"{rel}: {lines} lines (at most {max_file})")
                for fname, first, count in functions(text):
                    all_functions.append((count, f"{rel}:{first}: {fname}"))
                    if count > max_function:
                        problems.append(f"{rel}:{first}: {fname} is {count} lines (at most {max_function})")
    if listing:
        for count, where in sorted(all_functions, reverse=True)[:listing]:
            print(f"{count:5d}  {where}")
        return 0
    if files == 0 or not all_functions:
        print(f"check-sizes: found {files} files and {len(all_functions)} functions: nothing was checked", file=sys.stderr)
        return 1
    for p in problems:
        print(p)
    if problems:
        print(f"check-sizes: {len(problems)} file(s) or function(s) over the limits")
        return 1
    print(f"check-sizes: {files} files and {len(all_functions)} functions within {max_file} and {max_function} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
