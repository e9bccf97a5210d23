"""An OTLP/HTTP receiver for the telemetry test: it decodes every request
with the protobuf classes of opentelemetry-proto (PyPI) and appends one JSON
line per log record, metric point and span to a file.

usage: receiver.py PORT_FILE OUT_FILE [PORT]
"""
import http.server
import json
import sys

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

port_file, out_path = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
out = open(out_path, "a", encoding="utf-8")


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def logs(req):
    for rl in req.resource_logs:
        res = attrs(rl.resource.attributes)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                yield {
                    "signal": "logs",
                    "resource": res,
                    "scope": sl.scope.name,
                    "event": r.event_name,
                    "severity": r.severity_number,
                    "severity_text": r.severity_text,
                    "body": value(r.body),
                    "attrs": attrs(r.attributes),
                    "time": r.time_unix_nano,
                }


def metrics(req):
    for rm in req.resource_metrics:
        res = attrs(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                data = getattr(m, kind)
                for p in data.data_points:
                    yield {
                        "signal": "metrics",
                        "resource": res,
                        "name": m.name,
                        "unit": m.unit,
                        "kind": kind,
                        "monotonic": getattr(data, "is_monotonic", None),
                        "temporality": getattr(data, "aggregation_temporality", None),
                        "attrs": attrs(p.attributes),
                        "value": value(p),
                        "start": p.start_time_unix_nano,
                        "time": p.time_unix_nano,
                    }


def traces(req):
    for rs in req.resource_spans:
        res = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                yield {
                    "signal": "traces",
                    "resource": res,
                    "name": s.name,
                    "trace_id_len": len(s.trace_id),
                    "span_id_len": len(s.span_id),
                    "status": s.status.code,
                    "status_message": s.status.message,
                    "events": [e.name for e in s.events],
                    "event_attrs": [attrs(e.attributes) for e in s.events],
                    "attrs": attrs(s.attributes),
                    "start": s.start_time_unix_nano,
                    "end": s.end_time_unix_nano,
                }


KINDS = {
    "/v1/logs": (logs_service_pb2.ExportLogsServiceRequest, logs),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics),
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, traces),
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        kind = KINDS.get(self.path)
        ok = kind is not None and self.headers.get("Content-Type") == "application/x-protobuf"
        if ok:
            cls, flatten = kind
            req = cls()
            req.ParseFromString(body)
            for item in flatten(req):
                item["user_agent"] = self.headers.get("User-Agent")
                item["header"] = self.headers.get("X-Test-Header")
                out.write(json.dumps(item) + "\n")
            out.flush()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os

os.rename(port_file + ".tmp", port_file)
server.serve_forever()
