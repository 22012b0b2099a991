#!/usr/bin/python3
"""0 failed requests across 10 config reloads under 500 requests/s: paced
keep-alive clients send to reviews while the config file is rewritten
(atomically) 10 times, alternating between all-v1 and all-v3."""

import http.client
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

RATE = 500            # requests per second, all threads together
THREADS = 10
DURATION = 12.0       # seconds
MAX_REQUESTS = 6000
RELOADS = 10


class ReloadUnderLoad(unittest.TestCase):

    def test_reloads_under_load(self):
        self.run_load(workers=None)

    def test_reloads_under_load_two_workers(self):
        """Two worker threads share the snapshot: the swap must be safe
        across threads too."""
        self.run_load(workers=2)

    def run_load(self, workers):
        workloads = (("reviews", "v1"), ("reviews", "v3"))
        args = ["--workers", str(workers)] if workers else []
        bi = st.Bookinfo(self, ["virtual-service-reviews-v3.yaml"], workloads=workloads,
                         proxy_args=args)
        registry = st.bookinfo_registry(bi.ports)
        dr = st.bookinfo_file("destination-rule-all.yaml")
        configs = {
            "v1": st.join_docs(registry, dr, st.bookinfo_file("virtual-service-all-v1.yaml")),
            "v3": st.join_docs(registry, dr, st.bookinfo_file("virtual-service-reviews-v3.yaml")),
        }
        m0 = bi.proxy.metrics()
        ok0 = st.metric_sum(m0, "sinew_config_reloads_total", result="success")
        fail0 = st.metric_sum(m0, "sinew_config_reloads_total", result="failure")

        stop = threading.Event()
        lock = threading.Lock()
        results = []   # (t, version or None, error)
        budget = [MAX_REQUESTS]
        per_thread = RATE / THREADS

        def worker(ti):
            c = st.KeepAliveClient(bi.port, timeout=10)
            t_start = time.monotonic()
            k = 0
            try:
                while not stop.is_set():
                    with lock:
                        if budget[0] <= 0:
                            return
                        budget[0] -= 1
                    # Paced: request k goes out at t_start + k/rate.
                    due = t_start + k / per_thread
                    now = time.monotonic()
                    if due > now:
                        time.sleep(due - now)
                    k += 1
                    t = time.monotonic()
                    try:
                        # No retry on a dropped connection: a reload must not
                        # close client connections.
                        if c.conn is None:
                            c.conn = http.client.HTTPConnection(st.LOOPBACK, bi.port,
                                                                   timeout=10)
                        r = st.request(bi.port, "GET", "/load/%d/%d" % (ti, k), host="reviews",
                                       conn=c.conn)
                        if r.status == 200:
                            res = (t, r.json()["version"], None)
                        else:
                            res = (t, None, r)
                    except Exception as e:  # noqa: BLE001
                        c.close()
                        res = (t, None, e)
                    with lock:
                        results.append(res)
            finally:
                c.close()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True)
                   for i in range(THREADS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        writes = []
        try:
            time.sleep(0.5)
            for i in range(RELOADS):
                ver = "v1" if i % 2 == 0 else "v3"
                st.write_file(bi.config_path, configs[ver])
                writes.append((time.monotonic(), ver))
                time.sleep((DURATION - 1.0) / RELOADS)
        finally:
            remaining = DURATION - (time.monotonic() - t0)
            if remaining > 0:
                time.sleep(remaining)
            stop.set()
            for t in threads:
                t.join(15)
        elapsed = time.monotonic() - t0

        failures = [r for r in results if r[1] is None]
        seen = {}
        for _, v, _ in results:
            if v:
                seen[v] = seen.get(v, 0) + 1
        rate = len(results) / elapsed
        print("reload under load (workers %s): %d requests in %.1f s (%.0f/s), versions %r, %d failed"
              % (workers or "default", len(results), elapsed, rate, seen, len(failures)))
        self.assertEqual(failures, [], "%d of %d requests failed; first: %r"
                         % (len(failures), len(results), failures[:5]))
        self.assertGreaterEqual(rate, 0.8 * RATE, "load generator fell behind")
        self.assertEqual(set(seen), {"v1", "v3"})
        self.assertTrue(bi.proxy.alive())

        m1 = bi.proxy.metrics()
        ok = st.metric_sum(m1, "sinew_config_reloads_total", result="success") - ok0
        fail = st.metric_sum(m1, "sinew_config_reloads_total", result="failure") - fail0
        self.assertEqual(fail, 0, "atomic rewrites of a valid file counted as failures")
        # A watcher may coalesce changes; most must have been applied.
        self.assertGreaterEqual(ok, RELOADS // 2, "only %d reloads for %d rewrites" % (ok, RELOADS))
        # Each rewrite took effect within its interval (about 1.1 s).
        for i, (tw, ver) in enumerate(writes):
            end = writes[i + 1][0] if i + 1 < len(writes) else t0 + elapsed
            during = [v for (t, v, _) in results if tw <= t < end]
            self.assertIn(ver, during, "rewrite %d (to %s) never took effect in the %.2f s "
                          "before the next one" % (i, ver, end - tw))
        last = writes[-1][1]
        r = st.request(bi.port, "GET", "/final", host="reviews")
        self.assertEqual(r.json()["version"], last)
        # The proxy's own count agrees with what the clients saw.
        total = st.metric_sum(m1, "sinew_requests_total",
                              destination_service="reviews.default.svc.cluster.local",
                              response_code="200")
        self.assertEqual(total, len(results))


if __name__ == "__main__":
    st.main()
