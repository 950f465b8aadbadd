"""Sends log records to meshlog with the OpenTelemetry Python SDK's own OTLP exporters.

A real client for the collector's transport tests (tests/tests/clients.rs): Python's logging
bridge, a LoggerProvider with a SimpleLogRecordProcessor, and the OTLP/gRPC or OTLP/HTTP exporter
over TLS with a client certificate. Prints one line per export result; exits 0 when every export
succeeded, 3 when any failed.

usage: otel_sdk_client.py grpc|http ENDPOINT CA CERT KEY PREFIX COUNT
"""

import logging
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource


def main() -> int:
    protocol, endpoint, ca, cert, key, prefix, count = sys.argv[1:8]
    if protocol == "grpc":
        import grpc
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        with open(ca, "rb") as f_ca, open(cert, "rb") as f_cert, open(key, "rb") as f_key:
            creds = grpc.ssl_channel_credentials(
                root_certificates=f_ca.read(),
                private_key=f_key.read(),
                certificate_chain=f_cert.read(),
            )
        base = OTLPLogExporter(endpoint=endpoint, credentials=creds, timeout=10)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

        base = OTLPLogExporter(
            endpoint=endpoint,
            certificate_file=ca,
            client_certificate_file=cert,
            client_key_file=key,
            timeout=10,
        )

    results = []
    export = base.export

    def recording(batch):
        r = export(batch)
        results.append(r)
        print(f"export: {getattr(r, 'name', r)}", flush=True)
        return r

    base.export = recording
    provider = LoggerProvider(resource=Resource.create({"service.name": f"py-{protocol}"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(base))
    log = logging.getLogger(f"meshlog.test.{protocol}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    for i in range(int(count)):
        log.info("request %d", i, extra={"meshlog.request_id": f"{prefix}-{i}"})
    provider.force_flush()
    provider.shutdown()
    ok = bool(results) and all(getattr(r, "name", "") == "SUCCESS" for r in results)
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
