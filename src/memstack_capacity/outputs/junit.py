"""JUnit XML for CI systems: one test case per target verdict or baseline comparison.

The layout is the common denominator that GitHub Actions reporters, GitLab and
Jenkins read: ``<testsuites><testsuite><properties/><testcase><failure/></testcase>``.
A failed check carries ``<failure message="…" type="…">`` with the value and the limit.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """One test case: ``failure`` is None when it passed, else the one-line message."""

    classname: str
    name: str
    failure: str | None = None
    failure_type: str = "failure"
    details: str = ""
    time_s: float = 0.0


def junit_xml(suite: str, cases: Sequence[Case], properties: Mapping[str, object] | None = None, time_s: float = 0.0) -> str:
    """The JUnit XML document (a string) for one suite of ``cases``."""
    failures = sum(1 for c in cases if c.failure is not None)
    root = ET.Element("testsuites", name="memstack-capacity", tests=str(len(cases)), failures=str(failures),
                      errors="0", time=f"{time_s:.3f}")
    node = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                         errors="0", skipped="0", time=f"{time_s:.3f}")
    if properties:
        props = ET.SubElement(node, "properties")
        for key, value in properties.items():
            ET.SubElement(props, "property", name=str(key), value=str(value))
    for case in cases:
        element = ET.SubElement(node, "testcase", classname=case.classname, name=case.name, time=f"{case.time_s:.3f}")
        if case.failure is not None:
            failure = ET.SubElement(element, "failure", message=case.failure, type=case.failure_type)
            failure.text = case.details or case.failure
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
