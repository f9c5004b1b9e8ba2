#!/usr/bin/env python3
"""N simulated proxies on one meshd: each opens an ADS stream (state of the world), subscribes like Envoy
(CDS and LDS wildcard, then EDS and RDS for what those name) and ACKs every response. Measures, for a file
write, the time until every proxy has received the new version, and meshd's RSS per connected proxy; with
--bulk N, also the time until every proxy has N more clusters written in one file. Each proxy's first request
carries a node the size of Envoy 1.40's (516 extensions)."""
import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


# A cluster's EDS name (or None), by its serialized bytes: many simulated proxies receive the same clusters, and
# decoding each copy in Python would make the load tool, not meshd, what a large push measures.
EDS_NAME_OF = {}


def eds_name(resource):
    name = EDS_NAME_OF.get(resource.value, False)
    if name is False:
        cluster = cluster_pb2.Cluster()
        resource.Unpack(cluster)
        name = (cluster.eds_cluster_config.service_name or cluster.name) if cluster.type == cluster_pb2.Cluster.EDS else None
        EDS_NAME_OF[resource.value] = name
    return name


# Envoy 1.40 names every extension it was built with in its node: 516 of them, 61 KB on the wire. The simulated
# proxies send as many (names and categories of the same shape), so meshd's memory per proxy is an Envoy's.
ENVOY_EXTENSIONS = 516


def envoy_like_node(index):
    node = discovery_pb2.DiscoveryRequest().node
    node.id = f"bench-{index}"
    node.cluster = "bench"
    node.user_agent_name = "envoy"
    node.user_agent_build_version.version.major_number = 1
    node.user_agent_build_version.version.minor_number = 40
    for n in range(ENVOY_EXTENSIONS):
        extension = node.extensions.add()
        extension.name = f"envoy.extensions.bench.example_extension_{n:03d}"
        extension.category = f"envoy.bench.category_{n % 40:02d}"
        extension.type_urls.append(f"envoy.extensions.bench.v3.ExampleConfig{n:03d}")
    return node


class Proxy:
    def __init__(self, index, stub, watched_type):
        self.index = index
        self.stub = stub
        self.watched_type = watched_type
        self.queue = asyncio.Queue()
        self.versions = {}
        self.seen = {}  # version of the watched type -> monotonic time it arrived
        self.clusters = (0, 0.0)  # clusters in the last CDS response, and when it arrived
        self.ready = asyncio.Event()

    def request(self, type_url, names=(), version="", nonce="", first=False):
        request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names), version_info=version,
                                                 response_nonce=nonce)
        if first:
            request.node.CopyFrom(envoy_like_node(self.index))
        return request

    async def requests(self):
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def run(self):
        self.queue.put_nowait(self.request(CDS, first=True))
        self.queue.put_nowait(self.request(LDS))
        subscribed = {EDS: set(), RDS: set()}
        async for response in self.stub.StreamAggregatedResources(self.requests()):
            now = time.monotonic()
            if response.type_url == self.watched_type:
                self.seen.setdefault(response.version_info, now)
            self.versions[response.type_url] = response.version_info
            self.queue.put_nowait(self.request(response.type_url, sorted(subscribed.get(response.type_url, ())),
                                               response.version_info, response.nonce))
            names = set()
            if response.type_url == CDS:
                self.clusters = (len(response.resources), now)
                names = {name for name in map(eds_name, response.resources) if name}
                target = EDS
            elif response.type_url == LDS:
                for resource in response.resources:
                    listener = listener_pb2.Listener()
                    resource.Unpack(listener)
                    for chain in listener.filter_chains:
                        for network_filter in chain.filters:
                            hcm = http_connection_manager_pb2.HttpConnectionManager()
                            if network_filter.typed_config.Unpack(hcm) and hcm.HasField("rds"):
                                names.add(hcm.rds.route_config_name)
                target = RDS
            else:
                target = None
            if target and names != subscribed[target]:
                subscribed[target] = names
                self.queue.put_nowait(self.request(target, sorted(names), self.versions.get(target, "")))
            if all(t in self.versions for t in (CDS, LDS, EDS, RDS)):
                self.ready.set()


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def scenario(args):
    endpoints = Path(args.config_dir) / "endpoints.yaml"
    original = endpoints.read_text()
    channels, proxies, tasks = [], [], []
    baseline = rss_kb(args.meshd_pid)
    for index in range(args.proxies):
        if index % 100 == 0:  # HTTP/2 connections carry many streams; spread them a little
            channel = grpc.aio.insecure_channel(args.xds, options=[("grpc.max_receive_message_length", 64 << 20),
                                                                 ("grpc.use_local_subchannel_pool", 1)])
            channels.append(channel)
        proxy = Proxy(index, ads_pb2_grpc.AggregatedDiscoveryServiceStub(channels[-1]), EDS)
        proxies.append(proxy)
        tasks.append(asyncio.create_task(proxy.run()))
    await asyncio.wait_for(asyncio.gather(*(p.ready.wait() for p in proxies)), timeout=120)
    connected_rss = rss_kb(args.meshd_pid)
    latencies = []
    for push in range(args.pushes):
        port = 9000 + push
        before = {p.versions.get(EDS) for p in proxies}
        start = time.monotonic()
        endpoints.write_text(original.replace("port_value: 8000", f"port_value: {port}"))
        deadline = start + 30
        while time.monotonic() < deadline:
            if all(p.versions.get(EDS) not in before for p in proxies):
                break
            await asyncio.sleep(0.002)
        arrived = [min(t for v, t in p.seen.items() if v not in before and t >= start) - start for p in proxies
                   if any(v not in before and t >= start for v, t in p.seen.items())]
        if len(arrived) != len(proxies):
            raise SystemExit(f"push {push}: only {len(arrived)} of {len(proxies)} proxies got it within 30 s")
        latencies.append(sorted(arrived))
        await asyncio.sleep(0.3)
    # Steady state, a moment after the connect storm and the pushes.
    await asyncio.sleep(2.5)
    steady_rss = rss_kb(args.meshd_pid)
    endpoints.write_text(original)
    bulk = await bulk_push(args, proxies) if args.bulk else {}
    for proxy in proxies:
        proxy.queue.put_nowait(None)
    for task in tasks:
        task.cancel()
    for channel in channels:
        await channel.close()
    everything = sorted(x for push in latencies for x in push)
    last = [push[-1] for push in latencies]
    return {
        "proxies": args.proxies,
        "pushes": args.pushes,
        "p50_ms": statistics.median(everything) * 1000,
        "p99_ms": everything[int(len(everything) * 0.99) - 1] * 1000,
        "all_received_p50_ms": statistics.median(last) * 1000,
        "max_ms": max(last) * 1000,
        "connected_rss_per_proxy_kb": (connected_rss - baseline) / args.proxies,
        "rss_per_proxy_kb": (steady_rss - baseline) / args.proxies,
        "meshd_rss_mb": steady_rss / 1024,
        **bulk,
    }


async def bulk_push(args, proxies):
    """Writes `args.bulk` STATIC clusters in one JSON file; the time until every proxy has them all."""
    before = max(p.clusters[0] for p in proxies)
    clusters = [{"@type": CDS, "name": f"bulk-{i}", "connect_timeout": "1s", "type": "STATIC",
                 "load_assignment": {"cluster_name": f"bulk-{i}", "endpoints": [{"lb_endpoints": [{"endpoint": {
                     "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000 + i % 50000}}}}]}]}}
                for i in range(args.bulk)]
    path = Path(args.config_dir) / "bulk.json"
    cpu_before = cpu_seconds(args.meshd_pid)
    start = time.monotonic()
    path.write_text(json.dumps({"resources": clusters}))
    deadline = start + 120
    while time.monotonic() < deadline and not all(p.clusters[0] >= before + args.bulk for p in proxies):
        await asyncio.sleep(0.01)
    if not all(p.clusters[0] >= before + args.bulk for p in proxies):
        raise SystemExit(f"bulk push of {args.bulk} clusters did not reach every proxy within 120 s")
    received = sorted(p.clusters[1] - start for p in proxies)
    rss = rss_kb(args.meshd_pid)
    cpu = cpu_seconds(args.meshd_pid) - cpu_before
    path.unlink()
    return {"bulk_resources": args.bulk, "bulk_first_ms": received[0] * 1000, "bulk_all_ms": received[-1] * 1000,
            "bulk_meshd_rss_mb": rss / 1024, "bulk_meshd_cpu_s": cpu}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--xds", required=True)
    parser.add_argument("--meshd-pid", type=int, required=True)
    parser.add_argument("--config-dir", required=True)
    parser.add_argument("--proxies", type=int, default=100)
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--bulk", type=int, default=0, help="also push this many clusters in one file")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(scenario(args))))


if __name__ == "__main__":
    main()
