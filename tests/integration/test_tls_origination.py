#!/usr/bin/python3
"""TLS origination (Istio's egress TLS origination task): the app speaks
plain HTTP to its sidecar, a DestinationRule with tls.mode SIMPLE or MUTUAL
makes the sidecar speak TLS to the endpoints. A real TLS server (Python's
ssl module) records what it saw: the TLS version, the SNI and the client
certificate.

- SIMPLE verifies the server against caCertificates and its name (the
  service's host, or sni; subjectAltNames replace the name check);
- a name the certificate does not carry, or a CA that did not sign it, is
  refused: 503, never plaintext;
- insecureSkipVerify: true skips verification;
- MUTUAL presents clientCertificate and privateKey; a server requiring a
  client certificate refuses SIMPLE;
- a CA file that cannot be read fails the requests (503 tls_unavailable)
  and the log names the file."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_gateway import make_pki  # noqa: E402

SERVER = r'''
import http.server, json, ssl, sys
port, cert, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
seen = {}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        peer = self.connection.getpeercert()
        body = json.dumps({"path": self.path, "sni": seen.get("sni"), "tls": self.connection.version(),
                           "client": dict(x[0] for x in peer["subject"]).get("commonName") if peer else None,
                           "host": self.headers.get("host")}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if ca != "-":
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(ca)
def on_sni(sock, name, c):
    seen["sni"] = name
ctx.sni_callback = on_sni
srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("LISTENING", flush=True)
srv.serve_forever()
'''


def service_entry(port):
    return """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: %d}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
""" % port


def rule(tls):
    return """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec:
  host: api.example.com
  trafficPolicy:
    tls: %s
""" % tls


class TLSOrigination(unittest.TestCase):

    def setUp(self):
        self.dir = st.make_tempdir(self)
        self.pki = make_pki(self.dir)
        other = os.path.join(self.dir, "other")
        os.mkdir(other)
        self.other = make_pki(other)

    def server(self, require_client=False):
        port = st.free_port()
        p = st.spawn([st.PYTHON, "-c", SERVER, str(port), self.pki["tls.crt"], self.pki["tls.key"],
                      self.pki["ca.crt"] if require_client else "-"], stdout=subprocess.PIPE, text=True)
        self.addCleanup(st.stop_process, p)
        self.assertEqual(p.stdout.readline().strip(), "LISTENING")
        return port

    def proxy(self, port, tls):
        text = st.join_docs(service_entry(port), rule(tls))
        return st.start_proxy(self, config_text=text)

    def get(self, p):
        return st.request(p.outbound_port, "GET", "/hello", host="api.example.com")

    def test_simple_verifies_ca_and_name(self):
        port = self.server()
        # the service's host: not in the certificate (*.example.com is,
        # and api.example.com matches it)
        p = self.proxy(port, "{mode: SIMPLE, caCertificates: %s}" % self.pki["ca.crt"])
        r = self.get(p)
        self.assertEqual(r.status, 200, r)
        seen = r.json()
        self.assertEqual(seen["sni"], "api.example.com")
        self.assertIn(seen["tls"], ("TLSv1.3", "TLSv1.2"))
        self.assertEqual(seen["host"], "api.example.com")
        self.assertIsNone(seen["client"])
        p.stop()
        # sni another name the certificate does not carry: refused
        p = self.proxy(port, "{mode: SIMPLE, caCertificates: %s, sni: api.example.org}" % self.pki["ca.crt"])
        r = self.get(p)
        self.assertEqual(r.status, 503, r)
        self.assertIn("hostname mismatch", r.body.decode())
        p.stop()
        # ... unless subjectAltNames says which names to accept
        p = self.proxy(port, "{mode: SIMPLE, caCertificates: %s, sni: api.example.org, subjectAltNames: "
                             "[book.example.com]}" % self.pki["ca.crt"])
        r = self.get(p)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["sni"], "api.example.org")
        p.stop()
        # a CA that did not sign the server's certificate: refused
        p = self.proxy(port, "{mode: SIMPLE, caCertificates: %s}" % self.other["ca.crt"])
        r = self.get(p)
        self.assertEqual(r.status, 503, r)
        self.assertIn("certificate", r.body.decode())
        p.stop()
        # insecureSkipVerify: no verification
        p = self.proxy(port, "{mode: SIMPLE, caCertificates: %s, insecureSkipVerify: true}" % self.other["ca.crt"])
        self.assertEqual(self.get(p).status, 200)

    def test_mutual(self):
        port = self.server(require_client=True)
        p = self.proxy(port, "{mode: MUTUAL, caCertificates: %s, clientCertificate: %s, privateKey: %s}"
                       % (self.pki["ca.crt"], self.pki["client.crt"], self.pki["client.key"]))
        r = self.get(p)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["client"], "client")
        p.stop()
        # no client certificate: TLS 1.3 lets the server refuse it only
        # after the client's handshake is done, so it shows as a reset
        p = self.proxy(port, "{mode: SIMPLE, caCertificates: %s}" % self.pki["ca.crt"])
        r = self.get(p)
        self.assertIn(r.status, (502, 503), r)

    def test_unreadable_ca_fails_closed(self):
        port = self.server()
        missing = os.path.join(self.dir, "nosuch.crt")
        p = self.proxy(port, "{mode: SIMPLE, caCertificates: %s}" % missing)
        r = self.get(p)
        self.assertEqual((r.status, r.header("sinew-error")), (503, "tls_unavailable"), r)
        self.assertIn("cannot read %s" % missing, p.stderr())

    def test_mutual_without_certificate_is_an_error(self):
        text = st.join_docs(service_entry(443), rule("{mode: MUTUAL}"))
        d = st.make_tempdir(self)
        path = os.path.join(d, "sinew.yaml")
        st.write_file(path, text)
        code, err, ready = st.run_proxy_once(path)
        self.assertFalse(ready)
        self.assertRegex(err, r"sinew.yaml:\d+:\d+: error: DestinationRule default/api: "
                              r"spec\.trafficPolicy\.tls\.mode: tls.mode MUTUAL needs clientCertificate")


if __name__ == "__main__":
    st.main()
