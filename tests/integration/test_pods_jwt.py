#!/usr/bin/python3
"""Istio's JWT tasks through the local mesh (root): "Authorization with
JWT" (istio.io/latest/docs/tasks/security/authorization/authz-jwt) as a
user runs it from the docs, with `sinew` in place of `kubectl`.

`sinew up`; httpbin (a small python server answering /headers with the
request's headers as JSON, as httpbin does) in namespace foo behind a
real sinew-proxy, and sleep in foo, whose requests are captured by its
own sidecar and sent to httpbin's over mutual TLS. Everything is applied
with `sinew apply -f`:

1. RequestAuthentication `jwt-example` (issuer testing@secure.istio.io,
   an inline `jwks` with an RS256 key made here): an invalid token is
   refused 401, a request without a token is let through (200);
2. AuthorizationPolicy `require-jwt` (requestPrincipals
   testing@secure.istio.io/testing@secure.istio.io): without a token 403,
   with Istio's demo token (minted here with the same claims) 200;
3. `require-jwt` updated with `when: request.auth.claims[groups]` group1:
   the groups-scope token 200, the demo token (no groups) 403;
4. `jwt-example` updated to a `jwksUri` served by an HTTP server this test
   runs in the mesh network (its gateway address, inside the namespace this
   test made): a token signed with the new key works once the sidecar has
   fetched the set, and the old inline key no longer does.

Network safety as test_pods.py: only namespaces this test creates (names
carry the run's suffix), removed by `sinew down` and the emergency sweep."""

import base64
import json
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402
from test_pods import Env, SUFFIX, SINEW, netns_list, sh  # noqa: E402

sys.path.insert(0, "/usr/lib/python3/dist-packages")
try:
    import jwt  # noqa: E402  (python3-jwt)
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
except ImportError:   # scripts/deps.sh installs both
    jwt = None

ISS = "testing@secure.istio.io"
GATEWAY = "10.74.0.1"
JWKS_PORT = 18080   # on the mesh network's gateway, inside this test's namespace

# httpbin's /headers: the request's headers, as the app received them.
HTTPBIN = r'''
import http.server, json
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.split("?")[0] == "/headers":
            body = json.dumps({"headers": {k.title(): v for k, v in self.headers.items()}}, indent=2).encode()
            code = 200
        else:
            body, code = b"not found\n", 404
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *a):
        print(fmt % a, flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), H).serve_forever()
'''


def b64(n):
    return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def jwks(key, kid):
    n = key.public_key().public_numbers()
    return json.dumps({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                                 "n": b64(n.n), "e": b64(n.e)}]})


def mint(key, kid, **extra):
    """Istio's demo.jwt claims (security/tools/jwt/samples), with an exp
    an hour from now; groups-scope.jwt adds groups and scope."""
    now = int(time.time())
    claims = {"iss": ISS, "sub": ISS, "foo": "bar", "iat": now, "exp": now + 3600}
    claims.update(extra)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def request_authentication(rule):
    return """apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata:
  name: jwt-example
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
  jwtRules:
  - issuer: "%s"
    %s
""" % (ISS, rule)


REQUIRE_JWT = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: require-jwt
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
  action: ALLOW
  rules:
  - from:
    - source:
       requestPrincipals: ["testing@secure.istio.io/testing@secure.istio.io"]
"""

REQUIRE_GROUP = REQUIRE_JWT + """    when:
    - key: request.auth.claims[groups]
      values: ["group1"]
"""


def curl(pod, *args):
    """curl in the sleep pod, as the task's `kubectl exec "$(kubectl get pod
    -l app=sleep -n foo ...)" -c sleep -n foo -- curl ...`."""
    r = sh(["ip", "netns", "exec", pod, "curl", "-sS", "--max-time", "10"] + list(args), timeout=20)
    return r.stdout, r.stderr


def code_of(pod, token=None):
    h = ["-H", "Authorization: Bearer " + token] if token is not None else []
    out, err = curl(pod, "http://httpbin.foo:8000/headers", "-o", "/dev/null", "-w", "%{http_code}", *h)
    return out.strip() or err


class JwtTask(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0 or not shutil.which("iptables-restore"):
            raise unittest.SkipTest("pods need root and iptables")
        if jwt is None:
            raise AssertionError("python3-jwt and python3-cryptography are missing (scripts/deps.sh)")
        cls.t = unittest.TestCase()
        cls.e = Env(cls.t)
        cls.procs = []
        cls.jwks_server = None
        cls.addClassCleanup(cls.teardown)
        cls.mesh = "sn-jwt-" + SUFFIX
        api = "127.0.0.1:%d" % st.free_port()
        cls.server = "http://" + api
        rc, out, err = cls.e.sinew("up", "--api", api, "--mesh", "127.0.0.1:%d" % st.free_port(),
                                   "--mesh-netns", cls.mesh, "--pod-cidr", "10.74.0.0/24")
        assert rc == 0, err
        app = os.path.join(cls.e.tmp, "httpbin.py")
        with open(app, "w") as f:
            f.write(HTTPBIN)
        os.chmod(app, 0o644)
        cls.start("httpbin", "8000/http", ["/usr/bin/python3", app])
        cls.start("sleep", None, ["sleep", "600"])
        for svc, p in cls.procs:
            cls.e.wait_ready(svc, p, timeout=40)
        cls.pods = {p["service"]: p["name"] for p in cls.e.ps()}
        # the app's own listener, through both sidecars
        deadline = time.time() + 10
        while code_of(cls.pods["sleep"]) != "200" and time.time() < deadline:
            time.sleep(0.2)

    @classmethod
    def start(cls, svc, port, cmd):
        cls.procs.append((svc, cls.e.run_joined(cls.server, svc, port, cmd, namespace="foo")))

    @classmethod
    def teardown(cls):
        if cls.jwks_server is not None:
            st.stop_process(cls.jwks_server)
        for _, p in cls.procs:
            st.stop_process(p)
        rc, out, err = cls.e.sinew("down")
        assert rc == 0, err
        left = netns_list()
        assert [n for n in list(getattr(cls, "pods", {}).values()) + [cls.mesh] if n in left] == [], left
        cls.t.doCleanups()

    def curl(self, *args):
        return curl(self.pods["sleep"], *args)

    def code_of(self, token=None):
        return code_of(self.pods["sleep"], token)

    def apply(self, name, text):
        path = os.path.join(self.e.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        rc, out, err = self.e.sinew("apply", "-f", path, "--server", self.server)
        self.assertEqual(rc, 0, out + err)
        return out

    def expect(self, token, code, timeout=10):
        """The code the request gets once the new policy is pushed (Istio's
        tasks say to wait for it to propagate); then asks again to be sure."""
        deadline = time.time() + timeout
        got = self.code_of(token)
        while got != code and time.time() < deadline:
            time.sleep(0.1)
            got = self.code_of(token)
        self.assertEqual(got, code, "token %s" % (token and token[:24]))

    def test_authz_jwt_task(self):
        t0 = time.monotonic()
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = "DHFbpoIUqrY8t2zpA2qXfCmr5VO5ZEr4RzHU_-envvQ"   # demo.jwt's key id
        token = mint(key, kid)
        token_group = mint(key, kid, groups=["group1", "group2"], scope=["scope1", "scope2"])
        token_other = mint(key, kid, groups=["group2"])
        self.assertEqual(self.code_of(), "200")

        # "Allow requests with valid JWT and list-typed claims": first the
        # RequestAuthentication.
        out = self.apply("jwt-example.yaml", request_authentication("jwks: '%s'" % jwks(key, kid)))
        self.assertIn("requestauthentication.security.istio.io/jwt-example created", out)
        # "Verify that a request with an invalid JWT is denied"
        self.expect("invalidToken", "401")
        out, err = self.curl("-i", "http://httpbin.foo:8000/headers", "-H", "Authorization: Bearer invalidToken")
        head = out.lower()
        self.assertIn("www-authenticate: bearer realm=", head, out + err)
        self.assertIn("sinew-error: jwt_invalid", head)
        self.assertIn("Jwt verification fails", out)
        # "Verify that a request without a JWT is allowed because there is
        # no authorization policy"
        self.assertEqual(self.code_of(), "200")
        # a valid token passes, and the app does not see it
        self.assertEqual(self.code_of(token), "200")
        out, err = self.curl("http://httpbin.foo:8000/headers", "-H", "Authorization: Bearer " + token)
        headers = json.loads(out)["headers"]
        self.assertNotIn("Authorization", headers, out)
        self.assertEqual(headers.get("Host"), "httpbin.foo:8000", out)

        # require-jwt: only requests with the demo token's principal
        out = self.apply("require-jwt.yaml", REQUIRE_JWT)
        self.assertIn("authorizationpolicy.security.istio.io/require-jwt created", out)
        # "Verify that a request without a JWT is denied"
        self.expect(None, "403")
        out, err = self.curl("http://httpbin.foo:8000/headers")
        self.assertIn("RBAC: access denied", out, out + err)
        # "Verify that a request with a valid JWT is allowed"
        self.assertEqual(self.code_of(token), "200")
        self.assertEqual(self.code_of("invalidToken"), "401")

        # "Update the authorization policy to also require the JWT to have
        # a claim named groups containing the value group1"
        out = self.apply("require-jwt.yaml", REQUIRE_GROUP)
        self.assertIn("authorizationpolicy.security.istio.io/require-jwt configured", out)
        # "Verify that a request with the JWT that does not have the groups
        # claim is rejected"
        self.expect(token, "403")
        self.assertEqual(self.code_of(token_group), "200")
        self.assertEqual(self.code_of(token_other), "403")
        self.assertEqual(self.code_of(), "403")

        # The same issuer, its keys now behind a jwksUri (Istio's task points
        # at raw.githubusercontent.com; here a server on the mesh gateway).
        key2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        docs = os.path.join(self.e.tmp, "jwks")
        os.makedirs(docs)
        with open(os.path.join(docs, "jwks.json"), "w") as f:
            f.write(jwks(key2, "k2"))
        os.chmod(docs, 0o755)
        os.chmod(os.path.join(docs, "jwks.json"), 0o644)
        log = open(os.path.join(self.e.tmp, "jwks-server.log"), "w")
        type(self).jwks_server = st.spawn(
            ["ip", "netns", "exec", self.mesh, "/usr/bin/python3", "-m", "http.server", str(JWKS_PORT),
             "--bind", GATEWAY, "--directory", docs], stdout=log, stderr=log)
        log.close()
        uri = "http://%s:%d/jwks.json" % (GATEWAY, JWKS_PORT)
        out = self.apply("jwt-example.yaml", request_authentication("jwksUri: %s" % uri))
        self.assertIn("requestauthentication.security.istio.io/jwt-example configured", out)
        token2 = mint(key2, "k2", groups=["group1"])
        self.expect(token2, "200")
        self.assertEqual(self.code_of(token), "401")         # the inline key is gone
        self.assertEqual(self.code_of(mint(key2, "k2")), "403")   # no group1
        with open(os.path.join(self.e.tmp, "jwks-server.log")) as f:
            self.assertIn("GET /jwks.json", f.read())
        with open(os.path.join(self.e.pods_dir(), self.pods["httpbin"] + ".proxy.log")) as f:
            plog = f.read()
        self.assertNotIn(token.split(".")[2], plog, "a token in the proxy's log")
        self.assertLess(time.monotonic() - t0, 40)


if __name__ == "__main__":
    st.main()
