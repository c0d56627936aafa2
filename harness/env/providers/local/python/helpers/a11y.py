#!/usr/bin/python3
"""AT-SPI accessibility tree of one local desktop env, in OSWorld's XML format.

Usage: a11y.py tree      -> prints the XML of the tree under <desktop-frame> (OSWorld's /accessibility "AT")
       a11y.py terminal  -> prints JSON {"output": text-or-null} of the focused terminal widget (/terminal)
Needs DISPLAY and DBUS_SESSION_BUS_ADDRESS of the env. Caps: depth 50, 1024 children per node, a total node
budget, and OSWorld's showing-cells-only walk for Calc tables (whose tables report 2^31-1 children).
"""
import json
import subprocess
import sys
import time

import pyatspi
from pyatspi import STATE_SHOWING, StateType
import lxml.etree

NS = {
    "st": "https://accessibility.ubuntu.example.org/ns/state",
    "attr": "https://accessibility.ubuntu.example.org/ns/attributes",
    "cp": "https://accessibility.ubuntu.example.org/ns/component",
    "doc": "https://accessibility.ubuntu.example.org/ns/document",
    "docattr": "https://accessibility.ubuntu.example.org/ns/document/attributes",
    "txt": "https://accessibility.ubuntu.example.org/ns/text",
    "val": "https://accessibility.ubuntu.example.org/ns/value",
    "act": "https://accessibility.ubuntu.example.org/ns/action",
}
MAX_DEPTH = 50
MAX_WIDTH = 1024
MAX_NODES = 20000
DEADLINE = time.time() + float(sys.argv[2]) if len(sys.argv) > 2 else time.time() + 25

count = 0
lo_version = None


def libreoffice_version():
    global lo_version
    if lo_version is None:
        try:
            out = subprocess.run(["soffice", "--version"], capture_output=True, text=True, timeout=10).stdout
            lo_version = tuple(int(x) for x in out.split()[1].split(".")[:2])
        except Exception:
            lo_version = (7, 4)
    return lo_version


def q(ns, name):
    return "{%s}%s" % (NS[ns], name)


def node_xml(node, depth, flag=None):
    global count
    count += 1
    attrs = {"name": node.name or ""}
    try:
        states = node.getState().get_states()
    except Exception:
        states = []
    for st in states:
        sname = StateType._enum_lookup.get(st, "")
        sname = sname.split("_", 1)[1].lower() if "_" in sname else sname.lower()
        if sname:
            attrs[q("st", sname)] = "true"
    try:
        for k, v in node.get_attributes().items():
            if k:
                attrs[q("attr", k)] = v
    except Exception:
        pass
    if attrs.get(q("st", "visible")) == "true" and attrs.get(q("st", "showing")) == "true":
        try:
            comp = node.queryComponent()
            bbox = comp.getExtents(pyatspi.XY_SCREEN)
            attrs[q("cp", "screencoord")] = str(tuple(bbox[0:2]))
            attrs[q("cp", "size")] = str(tuple(bbox[2:]))
        except NotImplementedError:
            pass
        except Exception:
            pass
    text = ""
    try:
        t = node.queryText()
        text = t.getText(0, t.characterCount).replace("\ufffc", "").replace("\ufffd", "")
    except NotImplementedError:
        pass
    except Exception:
        pass
    for iface, key in (("queryImage", "image"), ("querySelection", "selection")):
        try:
            getattr(node, iface)()
            attrs[key] = "true"
        except NotImplementedError:
            pass
        except Exception:
            pass
    try:
        val = node.queryValue()
        for name, get in (("value", lambda: val.currentValue), ("min", lambda: val.minimumValue),
                          ("max", lambda: val.maximumValue), ("step", lambda: val.minimumIncrement)):
            try:
                attrs[q("val", name)] = str(get())
            except Exception:
                pass
    except NotImplementedError:
        pass
    except Exception:
        pass
    try:
        act = node.queryAction()
        for i in range(act.nActions):
            an = act.getName(i).replace(" ", "-")
            attrs[q("act", an + "_desc")] = act.getDescription(i)
            attrs[q("act", an + "_kb")] = act.getKeyBinding(i)
    except NotImplementedError:
        pass
    except Exception:
        pass
    try:
        raw_role = node.getRoleName().strip()
    except Exception:
        raw_role = ""
    role = (raw_role or "unknown").replace(" ", "-")
    if not flag:
        if raw_role == "document spreadsheet":
            flag = "calc"
        if raw_role == "application" and node.name == "Thunderbird":
            flag = "thunderbird"
    # attribute values must be XML-safe strings
    safe = {}
    for k, v in attrs.items():
        safe[k] = "".join(c for c in str(v) if c in "\t\n\r" or ord(c) >= 32)
    try:
        el = lxml.etree.Element(role, attrib=safe, nsmap=NS)
    except ValueError:
        el = lxml.etree.Element("unknown", attrib=safe, nsmap=NS)
    if text:
        el.text = "".join(c for c in text if c in "\t\n\r" or ord(c) >= 32)
    if depth >= MAX_DEPTH or count >= MAX_NODES or time.time() > DEADLINE:
        return el
    if flag == "calc" and role == "table":
        max_col = 1024 if libreoffice_version() < (7, 4) else 16384
        index_base, first_showing, column_base = 0, False, None
        for r in range(1048576):
            clm = column_base or 0
            for clm in range(column_base or 0, max_col):
                try:
                    child = node[index_base + clm]
                    showing = child.getState().contains(STATE_SHOWING)
                except Exception:
                    showing, child = False, None
                if showing:
                    el.append(node_xml(child, depth + 1, flag))
                    if not first_showing:
                        column_base, first_showing = clm, True
                elif (first_showing and column_base is not None) or clm >= 500:
                    break
            if (first_showing and clm == column_base) or (not first_showing and r >= 500):
                break
            if count >= MAX_NODES or time.time() > DEADLINE:
                break
            index_base += max_col
        return el
    try:
        n = min(node.childCount, MAX_WIDTH)
        for i in range(n):
            if count >= MAX_NODES or time.time() > DEADLINE:
                break
            ch = node.getChildAtIndex(i)
            if ch is None:
                continue
            el.append(node_xml(ch, depth + 1, flag))
    except Exception:
        pass
    return el


def tree():
    desktop = pyatspi.Registry.getDesktop(0)
    root = lxml.etree.Element("desktop-frame", nsmap=NS)
    for i in range(desktop.childCount):
        try:
            app = desktop.getChildAtIndex(i)
            if app is None:
                continue
            root.append(node_xml(app, 1))
        except Exception:
            continue
    sys.stdout.write(lxml.etree.tostring(root, encoding="unicode"))


def terminal():
    """Text of the focused terminal widget of the active frame (OSWorld looks for gnome-terminal-server;
    any AT-SPI terminal widget is accepted here)."""
    desktop = pyatspi.Registry.getDesktop(0)
    found = []

    def walk(n, depth):
        if depth > 30 or len(found) > 1:
            return
        try:
            role = n.getRoleName()
            st = n.getState()
        except Exception:
            return
        if role == "terminal" and st.contains(pyatspi.STATE_FOCUSED):
            try:
                t = n.queryText()
                found.append(t.getText(0, t.characterCount).rstrip())
            except Exception:
                pass
            return
        try:
            for i in range(min(n.childCount, 200)):
                c = n.getChildAtIndex(i)
                if c is not None:
                    walk(c, depth + 1)
        except Exception:
            pass

    for i in range(desktop.childCount):
        app = desktop.getChildAtIndex(i)
        if app is None:
            continue
        try:
            for j in range(app.childCount):
                fr = app.getChildAtIndex(j)
                if fr is not None and fr.getRoleName() == "frame" and fr.getState().contains(pyatspi.STATE_ACTIVE):
                    walk(fr, 0)
        except Exception:
            continue
    sys.stdout.write(json.dumps({"output": found[0] if len(found) == 1 else None}))


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "tree"
    if mode == "terminal":
        terminal()
    else:
        tree()
