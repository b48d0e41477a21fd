#!/usr/bin/env python3
"""cgdiff.py - per-request instruction counts from four callgrind profiles.

usage: cgdiff.py N_SMALL N_LARGE PLAIN_SMALL PLAIN_LARGE PRE_SMALL PRE_LARGE [TOP]

Each profile is one run of nginx serving N requests (callgrind.out files).
Every figure is (cost in the N_LARGE run - cost in the N_SMALL run) /
(N_LARGE - N_SMALL): start-up and shutdown cancel, what remains is the cost
of one request. Prints Markdown: instructions per request by object, the
preload's own functions (self cost), what grew elsewhere, the calls the
preload makes into other objects (with their inclusive cost), and the
inclusive cost of each hook entry point. Needs callgrind_annotate.
"""
import collections
import os
import re
import subprocess
import sys

PRELOAD = "libapiprof"
LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(?:([<*>])\s+)?(.*?)"
                  r"(?:\s+\(([\d,]+)x\))?(?:\s+\[([^\]]+)\])?\s*$")


def annotate(path, tree):
    args = ["callgrind_annotate", "--threshold=100", "--auto=no"]
    args += ["--inclusive=yes", "--tree=caller"] if tree else ["--inclusive=no"]
    out = subprocess.run(args + [path], check=True, capture_output=True, text=True).stdout
    # Function lines come after the second dashed rule following "Ir".
    body = out.split("file:function", 1)[-1].splitlines()[2:]
    return body


# (function, object) -> {source file: cost}: a function's cost may be
# split over several files (code inlined from headers); it is shown under
# the file holding most of it.
FILES = collections.defaultdict(collections.Counter)


def split(spec):
    """'/work/main/shared/http.c:headers'2' -> ('http.c', 'headers')."""
    spec = re.sub(r"'\d+$", "", spec)
    if ":" in spec:
        f, fn = spec.rsplit(":", 1)
        return os.path.basename(f), fn
    return "???", spec


def fname(spec):
    return split(spec)[1]


def label(key):
    files = FILES.get(key)
    f = files.most_common(1)[0][0] if files else "???"
    return key[0] if f == "???" else "%s:%s" % (f, key[0])


def main_file(key):
    files = FILES.get(key)
    return files.most_common(1)[0][0] if files else "???"


def obj(o):
    return os.path.basename(o) if o else "?"


def resolve_objects(entries):
    """Fills in missing objects: callgrind_annotate leaves the object out
    of a function's lines that come from another source file (code inlined
    from a header, e.g. preload/pl.h). Such a line gets the object most
    often seen with the same directory, else with the same function name."""
    by_dir, by_fn = {}, {}
    for spec, o in ((e[0], e[1]) for e in entries):
        if o:
            by_dir.setdefault(os.path.dirname(spec.rsplit(":", 1)[0]), collections.Counter())[o] += 1
            by_fn.setdefault(fname(spec), collections.Counter())[o] += 1
    out = []
    for e in entries:
        spec, o = e[0], e[1]
        if not o:
            d = os.path.dirname(spec.rsplit(":", 1)[0])
            c = by_dir.get(d) if d not in ("", "???") else None
            c = c or by_fn.get(fname(spec))
            o = c.most_common(1)[0][0] if c else "?"
        out.append((spec, o) + tuple(e[2:]))
    return out


def self_costs(path):
    entries = []
    for line in annotate(path, False):
        m = LINE.match(line)
        if not m or m.group(2):
            continue
        entries.append((m.group(3), m.group(5), int(m.group(1).replace(",", ""))))
    costs = collections.Counter()
    for spec, o, v in resolve_objects(entries):
        key = (fname(spec), obj(o))
        costs[key] += v
        FILES[key][split(spec)[0]] += v
    return costs


def tree(path):
    """(calls, incl) per (caller, callee) arc, and inclusive cost per function."""
    parsed = []
    for line in annotate(path, True):
        m = LINE.match(line)
        if not m:
            parsed.append(None)
            continue
        parsed.append((m.group(3), m.group(5), m.group(2),
                       int((m.group(4) or "0").replace(",", "")),
                       int(m.group(1).replace(",", ""))))
    resolved = iter(resolve_objects([p for p in parsed if p]))
    arcs = collections.Counter()
    arc_cost = collections.Counter()
    incl = collections.Counter()
    callers = []
    for p in parsed:
        if p is None:
            callers = []
            continue
        spec, o, kind, calls, cost = next(resolved)
        key = (fname(spec), obj(o))
        if kind == "<":
            callers.append((key, calls, cost))
        elif kind == "*":
            # A function split over files (inlined header code) has one
            # block per file, each showing the inclusive cost of the whole
            # function: keep one, not their sum.
            incl[key] = max(incl[key], cost)
            for ck, n, c in callers:
                arcs[(ck, key)] += n
                arc_cost[(ck, key)] += c
            callers = []
    return arcs, arc_cost, incl


def per_req(small, large, key, n):
    return (large.get(key, 0) - small.get(key, 0)) / n


def main():
    if len(sys.argv) < 7:
        sys.exit(__doc__.strip().splitlines()[2])
    ns, nl = int(sys.argv[1]), int(sys.argv[2])
    top = int(sys.argv[7]) if len(sys.argv) > 7 else 12
    n = nl - ns
    ps, pl, qs, ql = (self_costs(p) for p in sys.argv[3:7])

    def by_obj(c):
        o = collections.Counter()
        for (f, ob), v in c.items():
            o[ob] += v
        return o
    ops, opl, oqs, oql = by_obj(ps), by_obj(pl), by_obj(qs), by_obj(ql)
    objs = sorted(set(opl) | set(oql), key=lambda o: -per_req(oqs, oql, o, n))
    print("Instructions per request by object (self cost):\n")
    print("| object | plain | preloaded | added |")
    print("| --- | ---: | ---: | ---: |")
    tp = tq = 0.0
    for o in objs:
        a, b = per_req(ops, opl, o, n), per_req(oqs, oql, o, n)
        tp, tq = tp + a, tq + b
        if abs(a) >= 0.5 or abs(b) >= 0.5:
            print("| %s | %.0f | %.0f | %+.0f |" % (o, a, b, b - a))
    print("| **total** | **%.0f** | **%.0f** | **%+.0f** |" % (tp, tq, tq - tp))

    mine = {k for k in set(qs) | set(ql) if PRELOAD in k[1]}
    own = sorted(((per_req(qs, ql, k, n), k) for k in mine), reverse=True)
    total_own = sum(v for v, _ in own) or 1
    print("\nThe preload's own functions (self instructions per request):\n")
    print("| function | instr/request | share of the preload's |")
    print("| --- | ---: | ---: |")
    for v, k in own[:top]:
        if v < 0.5:
            break
        print("| `%s` | %.1f | %.0f%% |" % (label(k), v, 100 * v / total_own))
    print("| all %d functions of %s.so | %.1f | 100%% |" % (len(own), PRELOAD, total_own))

    grew = []
    for k in (set(ps) | set(pl) | set(qs) | set(ql)) - mine:
        d = per_req(qs, ql, k, n) - per_req(ps, pl, k, n)
        if abs(d) >= 2:
            grew.append((d, k))
    grew.sort(key=lambda x: -abs(x[0]))
    if grew:
        print("\nOutside the preload, self instructions per request that changed"
              " (preloaded - plain):\n")
        print("| function | object | change |")
        print("| --- | --- | ---: |")
        for d, k in grew[:top]:
            print("| `%s` | %s | %+.1f |" % (label(k), k[1], d))
        mt = sum(d for d, k in grew if "asynccancel" in k[0])
        if mt > 0:
            print("\n`__pthread_enable/disable_asynccancel` (%+.0f/request) run around"
                  " every cancellable system call (recv, writev, epoll_wait...) only"
                  " once a process has a second thread, as malloc's arena locking"
                  " does: the cost of starting a shipper thread in a single-threaded"
                  " host." % mt)

    (as_, cs, is_), (al, cl, il) = tree(sys.argv[5]), tree(sys.argv[6])
    calls = collections.Counter()
    cost = collections.Counter()
    for arc in set(as_) | set(al):
        (cf, co), (ef, eo) = arc
        if PRELOAD in co and PRELOAD not in eo:
            calls[(ef, eo)] += al.get(arc, 0) - as_.get(arc, 0)
            cost[(ef, eo)] += cl.get(arc, 0) - cs.get(arc, 0)
    rows = sorted(((cost[k] / n, calls[k] / n, k) for k in calls), reverse=True)
    rows = [r for r in rows if r[1] >= 0.01 or r[0] >= 0.5]
    if rows:
        print("\nCalls from the preload into other objects, per request (instructions"
              " inclusive; the hooks' own calls of the real libc functions included):\n")
        print("| callee | object | calls/request | instr/request |")
        print("| --- | --- | ---: | ---: |")
        for c, k_calls, k in rows[:top]:
            print("| `%s` | %s | %.2f | %.1f |" % (label(k), k[1], k_calls, c))

    # Entry points: the preload's functions called from other objects.
    entry = {e for (c, e) in set(as_) | set(al) if PRELOAD in e[1] and PRELOAD not in c[1]}
    hooks = sorted(((per_req(is_, il, k, n), k) for k in entry), reverse=True)
    hooks = [h for h in hooks if h[0] >= 0.5]
    if hooks:
        print("\nHook entry points, inclusive instructions per request (the real call"
              " and everything the hook does around it):\n")
        print("| hook | instr/request |")
        print("| --- | ---: |")
        for v, k in hooks[:top]:
            print("| `%s` | %.1f |" % (label(k), v))


if __name__ == "__main__":
    main()
