#!/usr/bin/env python3
# The oracle for the EVTX mapping tests: python-evtx (PyPI "python-evtx", Willi
# Ballenthin, Apache-2.0), independent of the Rust `evtx` crate. Prints, for every record
# whose EventID the module maps, "<EventRecordID> <EventID> <time> name=value ..." with
# the EventData fields the mapping uses, sorted by name.
#   python3 -m venv /tmp/pyevtx && /tmp/pyevtx/bin/pip install python-evtx
#   /tmp/pyevtx/bin/python oracle.py FILE.evtx > FILE.oracle
import sys
import xml.etree.ElementTree as ET
import Evtx.Evtx as evtx

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
MAPPED = {4624, 4625, 4634, 4647, 4720, 4732, 4688, 1102, 4698, 7045, 104, 4104}
FIELDS = {"TargetUserName", "SubjectUserName", "IpAddress", "LogonType", "WorkstationName",
          "Status", "SubStatus", "MemberName", "MemberSid", "TargetSid", "NewProcessName",
          "CommandLine", "ServiceName", "ImagePath", "TaskName"}
with evtx.Evtx(sys.argv[1]) as log:
    for r in log.records():
        root = ET.fromstring(r.xml())
        sysn = root.find(NS + "System")
        eid = int(sysn.find(NS + "EventID").text)
        if eid not in MAPPED:
            continue
        rid = sysn.find(NS + "EventRecordID").text
        t = sysn.find(NS + "TimeCreated").get("SystemTime")
        data = {}
        for d in root.iter(NS + "Data"):
            n = d.get("Name")
            if n in FIELDS and d.text not in (None, "", "-"):
                data[n] = d.text
        print(rid, eid, t, " ".join(f"{k}={v}" for k, v in sorted(data.items())))
