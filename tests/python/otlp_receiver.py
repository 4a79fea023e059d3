"""An OTLP/HTTP receiver for tests/e2e/telemetry.rs, built on the official protobuf definitions
(PyPI opentelemetry-proto): decodes each POST to /v1/traces or /v1/metrics and appends it, as
one JSON line {"path":..., "content_type":..., "body": <the request as a dict>}, to the file
named by argv[1]. Prints its port on the first line of stdout. Anything it cannot decode is
answered 400 and written with an "error" field, so the test sees it.
"""

import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

KINDS = {
    "/v1/traces": (trace_service_pb2.ExportTraceServiceRequest, trace_service_pb2.ExportTraceServiceResponse),
    "/v1/metrics": (metrics_service_pb2.ExportMetricsServiceRequest, metrics_service_pb2.ExportMetricsServiceResponse),
}
OUT = open(sys.argv[1], "a", buffering=1)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        record = {"path": self.path, "content_type": self.headers.get("Content-Type")}
        try:
            request, response = KINDS[self.path]
            if self.headers.get("Content-Encoding") == "gzip":
                data = gzip.decompress(data)
            message = request()
            message.ParseFromString(data)
            record["body"] = MessageToDict(message)
            status, answer = 200, response().SerializeToString()
        except Exception as e:  # noqa: BLE001 - reported to the test
            record["error"] = repr(e)
            status, answer = 400, b""
        OUT.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
