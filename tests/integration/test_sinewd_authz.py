#!/usr/bin/python3
"""AuthorizationPolicy through the control plane: sinewd pushes the
policies of a proxy's namespace (and of the mesh root namespace) to it; a
DENY applied with the API takes effect on the workload's inbound path
within a second, and removing it lifts it. Before its first sync, a
control-plane-mode proxy refuses inbound requests (503 no_config): it fails
closed rather than serve without knowing its policies."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_sinewd_push import Mesh, start_cp_proxy  # noqa: E402

DENY_ADMIN = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to:
    - operation: {paths: ["/admin*"]}
"""


def status_of(port, path):
    r = st.request(port, "GET", path, host="reviews")
    return r.status, r.header("sinew-error")


def until(pred, timeout=2.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


class SinewdAuthz(unittest.TestCase):
    def test_policy_pushed_and_enforced_inbound(self):
        app = st.start_backend(self, "reviews", "v1")
        mesh = Mesh(self)
        px = start_cp_proxy(self, mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                            args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
        self.assertEqual(status_of(px.inbound_port, "/admin/x"), (200, None))
        t0 = time.time()
        mesh.apply(DENY_ADMIN, "deny-admin.yaml")
        self.assertTrue(until(lambda: status_of(px.inbound_port, "/admin/x") == (403, "rbac_denied")),
                        "the DENY policy did not reach the proxy")
        self.assertLess(time.time() - t0, 1.5)
        self.assertEqual(status_of(px.inbound_port, "/public"), (200, None))
        status, _ = mesh.call("DELETE", "/api/v1/resources/AuthorizationPolicy/default/deny-admin")
        self.assertEqual(status, 200)
        self.assertTrue(until(lambda: status_of(px.inbound_port, "/admin/x") == (200, None)),
                        "deleting the policy did not lift it")

    def test_unenforceable_policy_pushed_fails_closed(self):
        """A policy with a field Sinew does not know, applied through
        sinewd (which accepts it with a warning), denies what it selects on
        the proxy it reaches (docs/security.md "Fail closed")."""
        app = st.start_backend(self, "reviews", "v1")
        mesh = Mesh(self)
        px = start_cp_proxy(self, mesh, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                            args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
        self.assertEqual(status_of(px.inbound_port, "/x"), (200, None))
        mesh.apply(DENY_ADMIN.replace("paths: [\"/admin*\"]", "paths: [\"/admin*\"], methodz: [GET]")
                   .replace("deny-admin", "typo"), "typo.yaml")
        self.assertTrue(until(lambda: status_of(px.inbound_port, "/x") == (403, "policy_unenforceable")),
                        "the unenforceable policy did not deny on the proxy")
        r = st.request(px.inbound_port, "GET", "/x", host="reviews")
        self.assertIn("default/typo", r.body.decode())

    def test_fail_closed_before_first_sync(self):
        app = st.start_backend(self, "reviews", "v1")
        mesh = Mesh(self, start=False)  # sinewd not up: the proxy never syncs
        px = start_cp_proxy(self, mesh, ready=False, outbound=False, inbound=True,
                            app="127.0.0.1:%d" % app.port, args=["--service", "reviews"])
        def live():
            try:
                return px.alive() and px.admin_get("/live")[0] == 200
            except OSError:
                return False
        ok = until(live, 10.0)
        self.assertTrue(ok, px.stderr())
        self.assertEqual(status_of(px.inbound_port, "/"), (503, "no_config"))
        self.assertEqual(app.requests(), 0)


if __name__ == "__main__":
    st.main()
