#!/usr/bin/python3
"""With 20 proxies connected (each its own process, one worker), a
VirtualService change routes traffic on every proxy within 1 s of the
apply returning; sinewd reports every proxy SYNCED at the new revision.
Prints the apply -> all ACKed latency it measured."""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy, get, version_of, REVIEWS_DR, reviews_vs  # noqa: E402

N_PROXIES = 20


class ScaleTest(unittest.TestCase):
    def test_vs_change_reaches_20_proxies_within_1s(self):
        mesh = Mesh(self)
        b1 = st.start_backend(self, "reviews", "v1")
        b3 = st.start_backend(self, "reviews", "v3")
        mesh.apply(st.registry_yaml({("reviews", "v1"): b1.port, ("reviews", "v3"): b3.port})
                   + REVIEWS_DR + "---\n" + reviews_vs("v1"), "bookinfo.yaml")
        workdir = st.make_tempdir(self)
        proxies = [start_cp_proxy(self, mesh, ready=False, workdir=workdir,
                                  args=["--service", "app%d" % i, "--workers", "1"])
                   for i in range(N_PROXIES)]
        for p in proxies:
            self.assertTrue(p.wait_ready(20.0), p.stderr()[-3000:])
        # every app calls reviews once: each proxy subscribes
        for p in proxies:
            self.assertEqual(version_of(get(p.outbound_port, "reviews:9080")), "v1")
        mesh.all_synced(N_PROXIES)

        for target in ("v3", "v1", "v3"):
            self.switch_and_measure(mesh, proxies, target)

    def switch_and_measure(self, mesh, proxies, target):
        seen = [None] * len(proxies)
        errors = []
        t_applied = [None]
        start = threading.Event()

        def poll(i, p):
            start.wait(10)
            deadline = time.time() + 5
            while time.time() < deadline:
                try:
                    v = version_of(get(p.outbound_port, "reviews:9080", timeout=2))
                except OSError as e:
                    errors.append(repr(e))
                    v = None
                if v == target and t_applied[0] is not None:
                    seen[i] = time.time() - t_applied[0]
                    return
                if v not in ("v1", "v3"):
                    errors.append("proxy %d: %s" % (i, v))
                time.sleep(0.01)

        threads = [threading.Thread(target=poll, args=(i, p), daemon=True) for i, p in enumerate(proxies)]
        for t in threads:
            t.start()
        t0 = time.time()
        mesh.apply(reviews_vs(target), "reviews-%s.yaml" % target)
        t_applied[0] = time.time()
        apply_ms = (t_applied[0] - t0) * 1000
        start.set()
        # apply -> every proxy SYNCED at the new revision (ACKed)
        status, ver = mesh.call("GET", "/api/v1/version")
        rev = ver["revision"]
        ps = mesh.wait_proxies(lambda ps: all(p["revision"]["acked"] == rev and p["state"] == "SYNCED"
                                              for p in ps), 5, "all ACKed")
        acked_ms = (time.time() - t_applied[0]) * 1000
        for t in threads:
            t.join(10)
        self.assertEqual(errors, [])
        missing = [i for i, s in enumerate(seen) if s is None]
        self.assertEqual(missing, [], "proxies that never routed to %s" % target)
        worst = max(seen)
        ack_lat = sorted(p["lastAckMs"] for p in ps)
        print("switch to %s: apply took %.0f ms; traffic on all %d proxies within %.0f ms of apply "
              "returning (median %.0f ms); all ACKed (seen by polling the API) within %.0f ms; "
              "push->ack per proxy: median %d ms, max %d ms"
              % (target, apply_ms, len(proxies), worst * 1000, sorted(seen)[len(seen) // 2] * 1000,
                 acked_ms, ack_lat[len(ack_lat) // 2], ack_lat[-1]), flush=True)
        self.assertLess(worst, 1.0, "slowest proxy routed to %s %.3f s after apply" % (target, worst))


if __name__ == "__main__":
    st.main()
