#!/usr/bin/python3
"""An apply that returned success survives SIGKILL of sinewd at any moment:
kill -9 right after each apply returns, and in the middle of a stream of
applies; on restart every acknowledged resource is there with its last
acknowledged content, the revision never goes back, and nothing is
reported corrupt."""

import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_api import Sinewd  # noqa: E402


def service(name, port):
    return ("apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n  namespace: dur\nspec:\n"
            "  selector: {app: %s}\n  ports:\n  - name: http\n    port: %d\n" % (name, name, port))


class DurabilityTest(unittest.TestCase):
    def check_log_clean(self, d):
        log = d.read_log()
        self.assertNotIn("corrupt", log)
        self.assertNotIn("no longer loads", log)

    def test_kill_right_after_each_apply(self):
        d = Sinewd(self)
        last_rev = 0
        for i in range(12):
            status, items = d.apply(service("svc-%d" % i, 8000 + i), "svc-%d.yaml" % i)
            self.assertEqual(status, 200, items)
            # svc-0 is rewritten every round: its last content must win
            status, items = d.apply(service("svc-0", 9000 + i), "svc-0.yaml")
            self.assertEqual(status, 200, items)
            d.kill9()
            d.start()
            status, got = d.get(kind="svc", namespace="dur")
            self.assertEqual(status, 200)
            names = sorted(g["name"] for g in got)
            self.assertEqual(names, sorted("svc-%d" % k for k in range(i + 1)), "round %d" % i)
            svc0 = [g for g in got if g["name"] == "svc-0"][0]
            self.assertIn("port: %d" % (9000 + i), svc0["yaml"])
            rev = int(d.call("GET", "/api/v1/version")[1]["revision"])
            self.assertGreater(rev, last_rev)
            last_rev = rev
        self.check_log_clean(d)

    def test_kill_during_a_stream_of_applies(self):
        d = Sinewd(self)
        acked = {}
        rnd = random.Random(4)
        for rnd_i in range(4):
            stop = threading.Event()

            def writer():
                n = 0
                while not stop.is_set():
                    name = "r%d-%d" % (rnd_i, n)
                    try:
                        status, _ = d.apply(service(name, 1000 + n % 50000), name + ".yaml", )
                    except OSError:
                        return
                    if status == 200:
                        acked[name] = 1000 + n % 50000
                    n += 1

            threads = [threading.Thread(target=writer) for _ in range(1)]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.2, 0.6))
            d.kill9()
            stop.set()
            for t in threads:
                t.join(10)
            d.start()
            status, got = d.get(kind="svc", namespace="dur")
            have = {g["name"]: g["yaml"] for g in got}
            missing = sorted(set(acked) - set(have))
            self.assertEqual(missing, [], "acknowledged but lost after SIGKILL")
            for name, port in acked.items():
                self.assertIn("port: %d" % port, have[name])
            self.assertGreater(len(acked), 0)
        self.check_log_clean(d)


if __name__ == "__main__":
    st.main()
