#!/usr/bin/env python3
"""Checks a JUnit XML report as CI systems read it (Jenkins' junit-10.xsd, the Ant format):

    junit_check.py FILE [--tests N] [--failures N] [--errors N] [--skipped N]

The root is <testsuites>, holding only <testsuite> elements; each testsuite has a name and its
counts, holds only testcases (and properties, system-out, system-err); each testcase has a name
and at most one outcome (failure, error, skipped); attribute names are the schema's; times are
non-negative numbers; the counts on every testsuite and on testsuites equal the testcases
beneath. The totals are compared with the numbers given. Prints one line saying what is wrong
and exits 1, or a summary and exits 0."""
import argparse
import re
import sys
import xml.etree.ElementTree as ET

# The attributes junit-10.xsd allows on each element.
ALLOWED = {
    "testsuites": {"name", "time", "tests", "failures", "errors"},
    "testsuite": {"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp",
                  "hostname", "id", "package", "file", "log", "url"},
    "testcase": {"name", "time", "classname", "group"},
    "failure": {"type", "message"},
    "error": {"type", "message"},
    "skipped": {"type", "message"},
}
REQUIRED = {"testsuite": {"name", "tests", "failures", "errors"}, "testcase": {"name"}}
SUITE_CHILDREN = {"testcase", "properties", "system-out", "system-err"}
OUTCOMES = {"failure", "error", "skipped"}
CASE_CHILDREN = OUTCOMES | {"system-out", "system-err"}
# SUREFIRE_TIME in junit-10.xsd; negative numbers cannot match it.
TIME = re.compile(r"^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?$")
TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$")


class Bad(Exception):
    pass


def attrs(el, where):
    extra = set(el.attrib) - ALLOWED.get(el.tag, set())
    if extra:
        raise Bad(f"{where}: attribute(s) {sorted(extra)} not in junit-10.xsd")
    missing = REQUIRED.get(el.tag, set()) - set(el.attrib)
    if missing:
        raise Bad(f"{where}: missing attribute(s) {sorted(missing)}")
    if "time" in el.attrib:
        t = el.attrib["time"]
        if not t or not TIME.match(t) or t in (".",):
            raise Bad(f"{where}: time {t!r} is not a non-negative number")
        float(t.replace(",", ""))


def count(el, name, where):
    v = el.attrib.get(name)
    if v is None:
        return None
    if not re.fullmatch(r"[0-9]+", v):
        raise Bad(f"{where}: {name}={v!r} is not a count")
    return int(v)


def check(path):
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise Bad(f"not well-formed XML: {e}")
    if root.tag != "testsuites":
        raise Bad(f"the root is <{root.tag}>, not <testsuites>")
    attrs(root, "testsuites")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites = 0
    for i, suite in enumerate(root):
        where = f"testsuite {i} ({suite.attrib.get('name')!r})"
        if suite.tag != "testsuite":
            raise Bad(f"<testsuites> holds a <{suite.tag}>")
        attrs(suite, where)
        if "timestamp" in suite.attrib and not TIMESTAMP.match(suite.attrib["timestamp"]):
            raise Bad(f"{where}: timestamp {suite.attrib['timestamp']!r} is not "
                      "YYYY-MM-DDTHH:MM:SS (the Ant schema's pattern)")
        got = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        for j, case in enumerate(suite):
            if case.tag not in SUITE_CHILDREN:
                raise Bad(f"{where} holds a <{case.tag}>")
            if case.tag != "testcase":
                continue
            cwhere = f"{where} testcase {j} ({case.attrib.get('name')!r})"
            attrs(case, cwhere)
            outcomes = [c for c in case if c.tag in OUTCOMES]
            for c in case:
                if c.tag not in CASE_CHILDREN:
                    raise Bad(f"{cwhere} holds a <{c.tag}>")
                attrs(c, f"{cwhere} <{c.tag}>")
            if len(outcomes) > 1:
                raise Bad(f"{cwhere} has {len(outcomes)} outcomes")
            got["tests"] += 1
            for c in outcomes:
                got[{"failure": "failures", "error": "errors", "skipped": "skipped"}[c.tag]] += 1
        for k in got:
            v = count(suite, k, where)
            if v is None and k == "skipped" and got[k] == 0:
                continue
            if v != got[k]:
                raise Bad(f"{where}: {k}={v} but it holds {got[k]}")
            total[k] += got[k]
        suites += 1
    for k in ("tests", "failures", "errors"):
        v = count(root, k, "testsuites")
        if v is not None and v != total[k]:
            raise Bad(f"testsuites: {k}={v} but its suites hold {total[k]}")
    return total, suites


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    for k in ("tests", "failures", "errors", "skipped"):
        ap.add_argument(f"--{k}", type=int)
    ap.add_argument("--message", help="some <failure> or <error> message must contain this")
    a = ap.parse_args()
    try:
        total, suites = check(a.file)
        for k in ("tests", "failures", "errors", "skipped"):
            want = getattr(a, k)
            if want is not None and total[k] != want:
                raise Bad(f"{total[k]} {k}, expected {want}")
        if a.message is not None:
            msgs = [e.get("message", "") for e in ET.parse(a.file).iter()
                    if e.tag in ("failure", "error")]
            if not any(a.message in m for m in msgs):
                raise Bad(f"no failure message contains {a.message!r} ({msgs})")
    except Bad as e:
        print(f"junit_check: {a.file}: {e}")
        return 1
    print(f"junit_check: {a.file}: ok: {suites} suite(s), {total['tests']} tests, "
          f"{total['failures']} failures, {total['errors']} errors, {total['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
