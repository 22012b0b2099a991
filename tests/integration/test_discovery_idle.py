#!/usr/bin/python3
"""Lazy discovery drops what the app stopped calling: a control-plane-mode
proxy subscribes to a destination on first use, keeps the subscription
while the app calls it, and unsubscribes once it has been idle for
--discovery-idle (10 minutes by default; shortened here). sinewd then stops
sending that destination's resources, and the next call subscribes again."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, get, start_cp_proxy, version_of  # noqa: E402


def subs(mesh):
    ps = mesh.proxies()
    return sorted(ps[0]["subscriptions"]) if ps else None


class DiscoveryIdle(unittest.TestCase):
    def test_idle_subscription_is_dropped_and_comes_back(self):
        be = st.start_backend(self, "reviews", "v1")
        be2 = st.start_backend(self, "ratings", "v1")
        mesh = Mesh(self)
        mesh.apply(st.registry_yaml({("reviews", "v1"): be.port, ("ratings", "v1"): be2.port}), "registry.yaml")
        px = start_cp_proxy(self, mesh, args=["--service", "productpage", "--discovery-idle", "1200ms"])
        self.assertEqual(version_of(get(px.outbound_port, "reviews")), "v1")
        self.assertEqual(version_of(get(px.outbound_port, "ratings")), "v1")
        self.assertEqual(subs(mesh), ["ratings", "reviews"])
        # keep calling reviews, leave ratings alone
        deadline = time.time() + 3.0
        while time.time() < deadline:
            self.assertEqual(version_of(get(px.outbound_port, "reviews")), "v1")
            time.sleep(0.1)
        self.assertEqual(subs(mesh), ["reviews"], "ratings idle for 3 s should be gone")
        self.assertIn("dropping 1 subscription", px.stderr())
        # the next call subscribes again and works
        self.assertEqual(version_of(get(px.outbound_port, "ratings")), "v1")
        self.assertEqual(subs(mesh), ["ratings", "reviews"])


if __name__ == "__main__":
    st.main()
