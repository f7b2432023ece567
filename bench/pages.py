#!/usr/bin/env python3
"""Measures the dashboard's pages for scripts/bench-pages: signs in, asks each page REQUESTS times on one
keep-alive connection after WARMUP requests, and prints per page the time to the whole answer as this
client sees it on loopback (median and p95), the origin's own time (its Server-Timing header), and what the
page weighs as sent: the HTML and every stylesheet and script it makes the browser load, the editor's
WebAssembly apart.

Usage: pages.py BASE_URL EMAIL PASSWORD CAMPAIGN_ID_JSON (the ids the seed chose, see scripts/bench-pages).
Environment: BENCH_REQUESTS [40], BENCH_WARMUP [5], BENCH_TARGET_MS [100].
"""

import gzip
import http.client
import json
import os
import re
import socket
import statistics
import sys
import time
import urllib.parse

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "40"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "5"))
TARGET_MS = float(os.environ.get("BENCH_TARGET_MS", "100"))
# What a current browser offers; the origin answers uncompressed unless it compresses.
ACCEPT_ENCODING = "gzip, deflate, br, zstd"


class Client:
    def __init__(self, base):
        url = urllib.parse.urlsplit(base)
        self.origin = f"{url.scheme}://{url.netloc}"
        self.host, self.port = url.hostname, url.port
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        self.connection.connect()
        # Requests go out whole at once; without this a small write can wait for the peer's delayed ACK.
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cookie = ""

    def request(self, method, path, body=None, headers=None):
        """One request on the kept-alive connection: (status, headers, body as sent, seconds to the end)."""
        headers = dict(headers or {})
        headers.setdefault("Accept-Encoding", ACCEPT_ENCODING)
        if self.cookie:
            headers["Cookie"] = self.cookie
        started = time.perf_counter()
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        return response.status, response.getheaders(), data, elapsed

    def sign_in(self, email, password):
        form = urllib.parse.urlencode({"email": email, "password": password, "next": "/ui/campaigns"})
        status, headers, _, _ = self.request(
            "POST",
            "/ui/signin",
            body=form,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin},
        )
        cookies = [v.split(";", 1)[0] for k, v in headers if k.lower() == "set-cookie"]
        session = [c for c in cookies if "popup_session=" in c and not c.endswith("=")]
        if status not in (302, 303) or not session:
            sys.exit(f"bench-pages: sign-in failed (status {status})")
        self.cookie = "; ".join(session)


def header(headers, name):
    return next((v for k, v in headers if k.lower() == name), None)


def server_ms(headers):
    """The origin's own time for the request, from `Server-Timing: app;dur=<ms>`, if it sends one."""
    timing = header(headers, "server-timing") or ""
    found = re.search(r"dur=([0-9.]+)", timing)
    return float(found.group(1)) if found else None


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def assets_of(html):
    """The stylesheets and scripts a page makes the browser load, and the editor's WebAssembly."""
    text = html.decode("utf-8", "replace")
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)"', text)
    scripts = re.findall(r'<script src="([^"]+)"', text)
    # The editor imports its wasm-bindgen glue and fetches the WebAssembly itself (editor.js).
    scripts += re.findall(r'data-wasm-js="([^"]+)"', text)
    wasm = re.findall(r'data-wasm="([^"]+)"', text)
    return [u for u in styles + scripts if u.startswith("/")], [u for u in wasm if u.startswith("/")]


def main():
    base, email, password, ids = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    client = Client(base)
    client.sign_in(email, password)
    whole_year = f"from={ids['year_from']}&to={ids['year_to']}"
    pages = [
        ("campaigns", "/ui/campaigns"),
        ("campaigns ?status=ended", "/ui/campaigns?status=ended"),
        ("campaigns ?q=cashback", "/ui/campaigns?q=cashback"),
        ("campaigns ?page=30", "/ui/campaigns?page=30"),
        ("editor (A/B, windows)", f"/ui/campaigns/{ids['editor']}"),
        ("segments", "/ui/segments"),
        ("simulator (a member)", f"/ui/simulator?user_id={ids['customer']}&platform=android&app_version=6.1.0&locale=id-ID&country=ID&placement=home"),
        ("stats, year, busiest", f"/ui/stats?campaign={ids['busiest']}&{whole_year}"),
        ("stats, year, typical", f"/ui/stats?campaign={ids['typical']}&{whole_year}"),
        ("messaging", "/ui/messaging"),
        ("settings (audit log)", "/ui/settings"),
    ]
    asset_cache = {}

    def asset_bytes(url):
        if url not in asset_cache:
            status, headers, data, _ = client.request("GET", url)
            if status != 200:
                sys.exit(f"bench-pages: {url} answered {status}")
            encoding = header(headers, "content-encoding") or "identity"
            gzipped = len(gzip.compress(data, 6)) if encoding == "identity" else len(data)
            asset_cache[url] = (len(data), encoding, gzipped)
        return asset_cache[url]

    rows = []
    for name, path in pages:
        for _ in range(WARMUP):
            status, headers, data, _ = client.request("GET", path)
            if status != 200:
                sys.exit(f"bench-pages: {path} answered {status}: {data[:300]!r}")
        client_ms, origin_ms = [], []
        for _ in range(REQUESTS):
            status, headers, data, elapsed = client.request("GET", path)
            if status != 200:
                sys.exit(f"bench-pages: {path} answered {status}")
            client_ms.append(elapsed * 1000)
            measured = server_ms(headers)
            if measured is not None:
                origin_ms.append(measured)
        assets, wasm = assets_of(data)
        asset_total = sum(asset_bytes(u)[0] for u in assets)
        encoding = header(headers, "content-encoding") or "identity"
        gzipped = (len(gzip.compress(data, 6)) if encoding == "identity" else len(data)) + sum(
            asset_bytes(u)[2] for u in assets)
        wasm_total = sum(asset_bytes(u)[0] for u in wasm)
        rows.append({
            "page": name,
            "path": path,
            "median": statistics.median(client_ms),
            "p95": percentile(client_ms, 95),
            "origin_median": statistics.median(origin_ms) if origin_ms else None,
            "html": len(data),
            "encoding": encoding,
            "gzipped": gzipped,
            "assets": asset_total,
            "asset_count": len(assets),
            "wasm": wasm_total,
        })

    print(f"{REQUESTS} requests per page after {WARMUP} of warm-up, one keep-alive connection on loopback;")
    print("ms: from sending the request to the last byte, as this client sees it; origin: its Server-Timing.")
    print("bytes: as sent (encoding shown); assets: the stylesheets and scripts the page loads; wasm apart;")
    print("gzip: what the same bytes would be if the origin gzipped them (level 6), for comparison.")
    print()
    print(f"| {'page':<26} | {'median ms':>9} | {'p95 ms':>7} | {'origin ms':>9} | {'HTML bytes':>10} | {'assets (n)':>14} | {'total bytes':>11} | {'gzip':>7} | {'wasm':>8} |")
    print(f"|{'-' * 28}|{'-' * 11}:|{'-' * 8}:|{'-' * 10}:|{'-' * 11}:|{'-' * 15}:|{'-' * 12}:|{'-' * 8}:|{'-' * 9}:|")
    for r in rows:
        origin = f"{r['origin_median']:.1f}" if r["origin_median"] is not None else "-"
        assets = f"{r['assets']} ({r['asset_count']})"
        html = f"{r['html']}" + ("" if r["encoding"] == "identity" else f" {r['encoding']}")
        wasm = str(r["wasm"]) if r["wasm"] else "-"
        print(f"| {r['page']:<26} | {r['median']:>9.1f} | {r['p95']:>7.1f} | {origin:>9} | {html:>10} | {assets:>14} | {r['html'] + r['assets']:>11} | {r['gzipped']:>7} | {wasm:>8} |")
    encodings = sorted({cached[1] for cached in asset_cache.values()} | {r["encoding"] for r in rows})
    print()
    print(f"encodings sent: {', '.join(encodings)} (asked for: {ACCEPT_ENCODING})")
    missed = [r for r in rows if r["median"] > TARGET_MS]
    if missed:
        print(f"over {TARGET_MS:.0f} ms: " + ", ".join(f"{r['page']} ({r['median']:.1f} ms)" for r in missed))
    slowest = max(rows, key=lambda r: r["median"])
    heaviest = max(rows, key=lambda r: r["html"] + r["assets"])
    with open(os.environ.get("BENCH_JSON", "/dev/null"), "w") as out:
        json.dump(rows, out, indent=1)
    print(f"pages: slowest {slowest['page']} {slowest['median']:.1f} ms median (target {TARGET_MS:.0f} ms), "
          f"heaviest {heaviest['page']} {heaviest['html'] + heaviest['assets']} bytes")


if __name__ == "__main__":
    main()
