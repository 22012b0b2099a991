#!/usr/bin/python3
"""SIGKILL sinewd under traffic: requests through the proxies keep
succeeding on their last config (applied routes and a registered
workload's endpoint); sinewd restarted on the same data dir: the proxies
reconnect and resync without a failed request, GET shows every resource
applied before the kill, and a change after the restart reaches them."""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy, get, version_of, REVIEWS_DR, reviews_vs  # noqa: E402


class RestartTest(unittest.TestCase):
    def test_sigkill_sinewd_under_traffic(self):
        mesh = Mesh(self)
        b1 = st.start_backend(self, "reviews", "v1")
        b2 = st.start_backend(self, "reviews", "v2")
        ratings_app = st.start_backend(self, "ratings", "v1")
        mesh.apply(st.registry_yaml({("reviews", "v1"): b1.port, ("reviews", "v2"): b2.port})
                   + st.service_yaml("ratings") + REVIEWS_DR + "---\n" + reviews_vs("v1"), "bookinfo.yaml")
        # ratings is a registered workload (no WorkloadEntry applied)
        start_cp_proxy(self, mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % ratings_app.port,
                       args=["--service", "ratings", "--labels", "version=v1"])
        clients = [start_cp_proxy(self, mesh, args=["--service", "productpage%d" % i]) for i in range(2)]
        deadline = time.time() + 5
        while time.time() < deadline and get(clients[0].outbound_port, "ratings:9080").status != 200:
            time.sleep(0.05)
        for p in clients:
            self.assertEqual(version_of(get(p.outbound_port, "reviews:9080")), "v1")
            self.assertEqual(get(p.outbound_port, "ratings:9080").json()["service"], "ratings")
        mesh.all_synced(3)
        status, before = mesh.get()
        keys_before = sorted((r["kind"], r["namespace"], r["name"], r["resourceVersion"])
                             for r in before if not r.get("registered"))

        stop = threading.Event()
        results = {"ok": 0, "bad": []}
        lock = threading.Lock()

        def traffic(p):
            c = st.KeepAliveClient(p.outbound_port, timeout=3)
            while not stop.is_set():
                for host in ("reviews:9080", "ratings:9080"):
                    try:
                        r = c.request("GET", "/", host=host)
                        good = r.status == 200
                        what = "%s %d %s" % (host, r.status, r.header("sinew-error"))
                    except Exception as e:  # noqa: BLE001
                        good, what = False, "%s %r" % (host, e)
                    with lock:
                        if good:
                            results["ok"] += 1
                        else:
                            results["bad"].append(what)
                time.sleep(0.005)
            c.close()

        threads = [threading.Thread(target=traffic, args=(p,), daemon=True) for p in clients]
        for t in threads:
            t.start()
        time.sleep(0.3)
        mesh.kill9()
        time.sleep(1.5)  # proxies on their own
        ok_during = results["ok"]
        mesh.start()
        # proxies reconnect (jittered backoff) and resync
        ps = mesh.all_synced(3, timeout=20)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual(results["bad"][:10], [])
        self.assertGreater(ok_during, 20)
        self.assertTrue(all(p["revision"]["acked"] == p["revision"]["current"] for p in ps), ps)

        status, after = mesh.get()
        keys_after = sorted((r["kind"], r["namespace"], r["name"], r["resourceVersion"])
                            for r in after if not r.get("registered"))
        self.assertEqual(keys_after, keys_before)
        self.assertEqual(len([r for r in after if r.get("registered")]), 1)

        # a change after the restart reaches every client proxy
        t0 = time.time()
        mesh.apply(reviews_vs("v2"), "reviews-v2.yaml")
        t_applied = time.time()
        for p in clients:
            while time.time() - t_applied < 2 and version_of(get(p.outbound_port, "reviews:9080")) != "v2":
                time.sleep(0.01)
            self.assertEqual(version_of(get(p.outbound_port, "reviews:9080")), "v2")
        self.assertLess(time.time() - t_applied, 1.0 + (t_applied - t0))
        self.assertNotIn("corrupt", mesh.read_log())


if __name__ == "__main__":
    st.main()
