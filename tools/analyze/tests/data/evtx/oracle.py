#!/usr/bin/env python3
# The oracle for the EVTX mapping tests: python-evtx (PyPI "python-evtx", Willi
# Ballenthin, Apache-2.0), independent of the Rust `evtx` crate. Prints, for every record
# whose EventID the module maps, "<EventRecordID> <EventID> <time> name=value ..." with
# the EventData fields the mapping uses, sorted by name.
#   python3 -m venv /tmp/pyevtx && /tmp/pyevtx/bin/pip install python-evtx
#   /tmp/pyevtx/bin/python oracle.py FILE.evtx > FILE.oracle
import datetime
import sys
import xml.etree.ElementTree as ET
import Evtx.Evtx as evtx

NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
MAPPED = {4624, 4625, 4634, 4647, 4720, 4732, 4688, 1102, 4698, 7045, 104, 4104}
FIELDS = {"TargetUserName", "SubjectUserName", "IpAddress", "LogonType", "WorkstationName",
          "Status", "SubStatus", "MemberName", "MemberSid", "TargetSid", "NewProcessName",
          "CommandLine", "ServiceName", "ImagePath", "TaskName"}
def exact_time(record):
    # TimeCreated/@SystemTime is the record's first FILETIME substitution. python-evtx's
    # XML text converts it through a float (off by a few microseconds); this is the
    # FILETIME itself, truncated to microseconds with integer arithmetic.
    for sub in record.root().substitutions():
        if type(sub).__name__ == "FiletimeTypeNode":
            ft = sub.unpack_qword(0)
            t = datetime.datetime(1601, 1, 1, tzinfo=datetime.timezone.utc)
            return (t + datetime.timedelta(microseconds=ft // 10)).isoformat(sep=" ")
    return None

def records(log):
    # Every chunk the file holds, also those past the header's chunk count (a dirty log:
    # Windows had not updated the header), as the windows module reads them.
    for chunk in log.get_file_header().chunks(include_inactive=True):
        yield from chunk.records()

with evtx.Evtx(sys.argv[1]) as log:
    for r in records(log):
        root = ET.fromstring(r.xml())
        sysn = root.find(NS + "System")
        eid = int(sysn.find(NS + "EventID").text)
        if eid not in MAPPED:
            continue
        rid = sysn.find(NS + "EventRecordID").text
        t = exact_time(r) or sysn.find(NS + "TimeCreated").get("SystemTime")
        data = {}
        for d in root.iter(NS + "Data"):
            n = d.get("Name")
            if n in FIELDS and d.text not in (None, "", "-"):
                data[n] = d.text
        # UserData (1102, 104): the leaves of its one child element, named by tag. Its
        # Channel is the log that was cleared, not the record's own (System) channel.
        user_data = root.find(NS + "UserData")
        for child in ([] if user_data is None else list(user_data)):
            for leaf in child:
                n = leaf.tag.split("}")[-1]
                if (n in FIELDS or n == "Channel") and leaf.text not in (None, "", "-"):
                    data.setdefault(n, leaf.text)
        print(rid, eid, t, " ".join(f"{k}={v}" for k, v in sorted(data.items())))
