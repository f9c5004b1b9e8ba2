#!/usr/bin/env python3
"""Writes a FileDescriptorSet for the Envoy API roots SwiftMesh uses (and OTLP's trace messages, and gRPC's
health checking messages).

xds-protos ships compiled `_pb2` modules, not .proto files, so the set is rebuilt from each root
module's DESCRIPTOR and the transitive closure of its dependencies, in dependency order.
Prints the files whose Swift code should be generated (annotation-only files and the well-known
types SwiftProtobuf already provides stay in the set, as protoc needs them, but are not generated).
"""
import importlib
import sys

from google.protobuf import descriptor_pb2

# Python modules of the root .proto files; everything they import comes along.
ROOTS = [
    "envoy.service.discovery.v3.ads_pb2",
    "envoy.service.discovery.v3.discovery_pb2",
    "envoy.config.bootstrap.v3.bootstrap_pb2",
    "envoy.config.listener.v3.listener_pb2",
    "envoy.config.route.v3.route_pb2",
    "envoy.config.cluster.v3.cluster_pb2",
    "envoy.config.endpoint.v3.endpoint_pb2",
    "envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2",
    "envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2",
    "envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2",
    "envoy.extensions.filters.listener.http_inspector.v3.http_inspector_pb2",
    "envoy.config.trace.v3.zipkin_pb2",
    "envoy.config.trace.v3.opentelemetry_pb2",
    # OTLP's trace export messages, from PyPI's opentelemetry-proto: what the OpenTelemetry tracer sends.
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    # gRPC's health checking protocol, from PyPI's grpcio-health-checking: what gRPC health checks ask.
    "grpc_health.v1.health_pb2",
    "envoy.extensions.filters.http.router.v3.router_pb2",
    "envoy.extensions.filters.http.rbac.v3.rbac_pb2",
    "envoy.extensions.filters.http.grpc_stats.v3.config_pb2",
    "envoy.extensions.retry.host.previous_hosts.v3.previous_hosts_pb2",
    "envoy.extensions.filters.http.fault.v3.fault_pb2",
    "envoy.extensions.filters.http.local_ratelimit.v3.local_rate_limit_pb2",
    "envoy.extensions.filters.http.cors.v3.cors_pb2",
    "envoy.extensions.transport_sockets.tls.v3.tls_pb2",
    "envoy.extensions.transport_sockets.tls.v3.secret_pb2",
    "envoy.extensions.transport_sockets.raw_buffer.v3.raw_buffer_pb2",
    "envoy.extensions.upstreams.http.v3.http_protocol_options_pb2",
    "envoy.extensions.access_loggers.file.v3.file_pb2",
    "envoy.extensions.access_loggers.stream.v3.stream_pb2",
    "envoy.admin.v3.config_dump_pb2",
    "envoy.admin.v3.config_dump_shared_pb2",
    "envoy.admin.v3.clusters_pb2",
    "envoy.admin.v3.listeners_pb2",
    "envoy.admin.v3.server_info_pb2",
    "envoy.admin.v3.certs_pb2",
]

# Files that only declare options (validation rules, migration and status annotations) or that
# SwiftProtobuf ships itself: needed by protoc as dependencies, never generated.
SKIP_PREFIXES = ("google/protobuf/", "validate/", "udpa/annotations/", "xds/annotations/",
                 "envoy/annotations/", "google/api/annotations", "google/api/http")


def json_name(name: str) -> str:
    """protoc's ToJsonName: drop underscores, upper-casing the letter after each."""
    out, upper = [], False
    for ch in name:
        if ch == "_":
            upper = True
        else:
            out.append(ch.upper() if upper else ch)
            upper = False
    return "".join(out)


def fill_json_names(messages) -> None:
    # Compiled _pb2 descriptors omit json_name; protoc plugins (and SwiftProtobufPluginLibrary) need it.
    for message in messages:
        for field in list(message.field) + list(message.extension):
            if not field.HasField("json_name"):
                field.json_name = json_name(field.name)
        fill_json_names(message.nested_type)


def main(out_path: str) -> None:
    ordered, seen = [], set()

    def visit(fd):
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            visit(dep)
        ordered.append(fd)

    for module in ROOTS:
        visit(importlib.import_module(module).DESCRIPTOR)

    fds = descriptor_pb2.FileDescriptorSet()
    for fd in ordered:
        proto = fds.file.add()
        fd.CopyToProto(proto)
        fill_json_names(proto.message_type)
        for field in proto.extension:
            if not field.HasField("json_name"):
                field.json_name = json_name(field.name)
    with open(out_path, "wb") as f:
        f.write(fds.SerializeToString(deterministic=True))
    for fd in ordered:
        if not fd.name.startswith(SKIP_PREFIXES):
            print(fd.name)


if __name__ == "__main__":
    main(sys.argv[1])
