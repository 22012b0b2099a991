#!/usr/bin/python3
"""The mesh config's outboundTrafficPolicy (ConfigMap istio-system/istio):
with REGISTRY_ONLY a request for a host no Service or ServiceEntry
declares is refused with 502 blocked_egress (naming the ConfigMap's line)
and counted, while declared hosts, a ServiceEntry's included, still
answer; with ALLOW_ANY (the default) the same request is Sinew's 404
no_route. A reload switches between them. Opaque TCP passthrough under
REGISTRY_ONLY needs capture: test_pods covers the pod side."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402


def mesh_config(mode):
    return """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy:
      mode: %s
""" % mode


def service_entry(port):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
""" % port


class OutboundPolicy(unittest.TestCase):

    def test_registry_only_then_allow_any(self):
        b = st.start_backend(self, "reviews")
        reg = st.registry_yaml({("reviews", "v1"): b.port})
        p = st.start_proxy(self, config_text=st.join_docs(reg, service_entry(b.port), mesh_config("REGISTRY_ONLY")))
        r = st.request(p.outbound_port, "GET", "/", host="evil.example.org")
        self.assertEqual((r.status, r.header("sinew-error")), (502, "blocked_egress"), r)
        body = r.body.decode()
        self.assertIn("evil.example.org", body)
        self.assertIn("REGISTRY_ONLY", body)
        self.assertRegex(body, r"ConfigMap istio-system/istio, .*sinew.yaml:\d+")
        for host in ("reviews", "api.example.com"):
            r = st.request(p.outbound_port, "GET", "/", host=host)
            self.assertEqual(r.status, 200, (host, r))
        m = p.metrics()
        self.assertEqual(st.metric_sum(m, "sinew_blocked_egress_total"), 1)
        # back to the default
        st.write_file(p.config_path, st.join_docs(reg, service_entry(b.port), mesh_config("ALLOW_ANY")))
        deadline = time.time() + 5
        while time.time() < deadline:
            r = st.request(p.outbound_port, "GET", "/", host="evil.example.org")
            if r.status == 404:
                break
            time.sleep(0.05)
        self.assertEqual((r.status, r.header("sinew-error")), (404, "no_route"), r)

    def test_bad_mode_is_an_error_with_its_line(self):
        d = st.make_tempdir(self)
        path = os.path.join(d, "sinew.yaml")
        st.write_file(path, mesh_config("BLOCK_ALL"))
        code, err, ready = st.run_proxy_once(path)
        self.assertFalse(ready)
        self.assertRegex(err, r"sinew.yaml:7:\d+: error: ConfigMap istio-system/istio: "
                              r".*outboundTrafficPolicy\.mode: unknown mode \"BLOCK_ALL\"")


if __name__ == "__main__":
    st.main()
