#!/usr/bin/python3
"""RequestAuthentication with AuthorizationPolicy through a real inbound
proxy (docs/security.md), tokens minted here with PyJWT and cryptography
(python3-jwt): RS256, ES256 and EdDSA tokens from an inline JWKS are
accepted and stripped before the app; expired, wrongly signed, wrong
audience, unknown issuer, garbage -> 401 jwt_invalid with a
www-authenticate challenge; no token passes authentication and
AuthorizationPolicy decides (requestPrincipals, request.auth.claims);
?access_token= works; an issuer whose keys are only behind a jwksUri
that cannot be fetched is refused, fail closed; one served by a real HTTP
server in the test is fetched, and its rotation is picked up; fromHeaders
with a prefix, fromParams, fromCookies, forwardOriginalToken, RS384,
RS512 and ES384, request.auth.audiences/presenter and
notRequestPrincipals; a RequestAuthentication with an unknown field
refuses everything (fail closed)."""

import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

sys.path.insert(0, "/usr/lib/python3/dist-packages")
import jwt  # noqa: E402  (python3-jwt)
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

ISS = "https://issuer.test"


def b64(n, length=None):
    b = n.to_bytes(length or (n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks():
    rn = RSA_KEY.public_key().public_numbers()
    en = EC_KEY.public_key().public_numbers()
    ed = ED_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return json.dumps({"keys": [
        {"kty": "RSA", "kid": "r1", "n": b64(rn.n), "e": b64(rn.e)},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(en.x, 32), "y": b64(en.y, 32)},
        {"kty": "OKP", "kid": "d1", "crv": "Ed25519", "x": base64.urlsafe_b64encode(ed).rstrip(b"=").decode()},
    ]})


def token(key=RSA_KEY, alg="RS256", kid="r1", **claims):
    c = {"iss": ISS, "sub": "alice", "aud": "api", "exp": int(time.time()) + 600}
    c.update(claims)
    c = {k: v for k, v in c.items() if v is not None}
    return jwt.encode(c, key, algorithm=alg, headers={"kid": kid})


RA = ("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt}\nspec:\n"
      "  selector: {matchLabels: {app: reviews}}\n  jwtRules:\n"
      "  - issuer: %s\n    audiences: [api]\n    jwks: '%s'\n"
      "    outputPayloadToHeader: x-jwt-payload\n"
      "    outputClaimToHeaders: [{header: x-user, claim: sub}, {header: x-org, claim: org.id}]\n"
      "  - issuer: https://remote.test\n    jwksUri: http://127.0.0.1:%d/jwks.json\n" % (ISS, jwks(), st.closed_port()))

AP = """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow}
spec:
  rules:
  - to: [{operation: {paths: ["/public*"]}}]
  - from: [{source: {requestPrincipals: ["https://issuer.test/*"]}}]
    to: [{operation: {paths: ["/secure*"]}}]
  - to: [{operation: {paths: ["/admin*"]}}]
    when: [{key: "request.auth.claims[groups]", values: ["admin"]}]
"""


class Jwt(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.app = st.start_backend(scope, "reviews", "v1")
        cfg = st.join_docs(st.registry_yaml({("reviews", "v1"): cls.app.port}), RA, AP)
        cls.p = st.start_proxy(scope, cfg, outbound=False, inbound=True, app="127.0.0.1:%d" % cls.app.port,
                               args=["--service", "reviews", "--labels", "app=reviews,version=v1"])

    def get(self, path, tok=None, headers=None):
        h = dict(headers or {})
        if tok is not None:
            h["authorization"] = "Bearer " + tok
        return st.request(self.p.inbound_port, "GET", path, host="reviews", headers=h)

    def test_valid_tokens(self):
        for key, alg, kid in ((RSA_KEY, "RS256", "r1"), (EC_KEY, "ES256", "e1"), (ED_KEY, "EdDSA", "d1"),
                              (RSA_KEY, "PS256", "r1")):
            with self.subTest(alg=alg):
                r = self.get("/secure/x", token(key, alg, kid))
                self.assertEqual(r.status, 200, r)
                self.assertNotIn("authorization", r.json()["headers"], "the token was forwarded")
        r = self.get("/secure/q?access_token=" + token())
        self.assertEqual(r.status, 200, r)

    def test_output_headers(self):
        tok = token(org={"id": "acme"})
        r = self.get("/secure/o", tok, headers={"x-user": "forged"})
        self.assertEqual(r.status, 200, r)
        h = r.json()["headers"]
        self.assertEqual(h["x-user"], "alice")          # set, not appended: the forged one is gone
        self.assertEqual(h["x-org"], "acme")
        self.assertEqual(h["x-jwt-payload"], tok.split(".")[1])
        r = self.get("/secure/o", token())
        self.assertNotIn("x-org", r.json()["headers"])   # no such claim: no header

    def test_invalid_tokens_are_401(self):
        cases = {
            "expired": token(exp=int(time.time()) - 3600),
            "not yet": token(nbf=int(time.time()) + 3600),
            "other key": token(OTHER_RSA),
            "audience": token(aud="other"),
            "issuer": token(iss="https://unknown.test"),
            "garbage": "not.a.jwt",
            "remote keys": token(iss="https://remote.test"),
            "alg none": jwt.encode({"iss": ISS, "sub": "x"}, None, algorithm="none"),
            "unknown kid": token(kid="k-unknown"),
            "truncated": token()[:-12],
            "oversize": token(pad="x" * 9000),
        }
        before = self.app.requests()
        for what, tok in cases.items():
            with self.subTest(what=what):
                r = self.get("/public/x", tok)
                self.assertEqual((r.status, r.header("sinew-error")), (401, "jwt_invalid"), r)
                self.assertEqual(r.header("www-authenticate"),
                                 'Bearer realm="http://reviews/public/x", error="invalid_token"')
                self.assertIn("Jwt verification fails", r.body.decode())
        self.assertEqual(self.app.requests(), before, "a request with a bad token reached the app")
        self.assertIn("could not be fetched", self.get("/public", token(iss="https://remote.test")).body.decode())
        self.assertIn("longer than 8 KiB", self.get("/public", token(pad="x" * 9000)).body.decode())
        self.assertIn("k-unknown", self.get("/public", token(kid="k-unknown")).body.decode())

    def test_no_token_and_authorization(self):
        self.assertEqual(self.get("/public/x").status, 200)          # no token: authentication passes
        r = self.get("/secure/x")
        self.assertEqual((r.status, r.header("sinew-error")), (403, "rbac_denied"), r)   # but no principal
        self.assertEqual(self.get("/admin", token(groups=["dev", "admin"])).status, 200)
        self.assertEqual(self.get("/admin", token(groups=["dev"])).status, 403)
        self.assertEqual(self.get("/admin", token()).status, 403)

    def test_metrics_and_config_dump(self):
        self.get("/secure/m", token())
        self.get("/public/m", token(OTHER_RSA))
        m = self.p.metrics()
        self.assertGreaterEqual(st.metric_sum(m, "sinew_jwt_valid_total"), 1)
        self.assertGreaterEqual(st.metric_sum(m, "sinew_jwt_invalid_total"), 1)
        _, _, body = self.p.admin_get("/config_dump")
        self.assertIn(b'"request_authentication":[{"issuer":"https://issuer.test"', body)
        self.assertIn(b'"keys":3', body)
        self.assertIn("jwksUri http://127.0.0.1:", self.p.stderr())   # its fetch fails, said


class JwksServer:
    """The issuer's JWKS over HTTP, replaceable (a rotation)."""

    def __init__(self, keyset):
        import http.server
        import socketserver
        import threading
        self.body = keyset.encode()
        self.fetches = 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.fetches += 1
                self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = S((st.LOOPBACK, 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def ec_jwks(key, kid):
    n = key.public_key().public_numbers()
    return json.dumps({"keys": [{"kty": "EC", "kid": kid, "crv": "P-256", "alg": "ES256",
                                 "x": b64(n.x, 32), "y": b64(n.y, 32)}]})


class JwksUri(unittest.TestCase):
    """jwksUri: fetched by the proxy from a real HTTP server, tokens valid
    once it is here (the first waits for it), a rotation picked up when a
    token names a key id the proxy does not know, the old key refused
    after it."""

    def test_fetched_and_rotated(self):
        iss = "https://rotating.test"
        k1 = ec.generate_private_key(ec.SECP256R1())
        k2 = ec.generate_private_key(ec.SECP256R1())
        srv = JwksServer(ec_jwks(k1, "k1"))
        self.addCleanup(srv.stop)
        app = st.start_backend(self, "reviews", "v1")
        ra = ("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: remote}\n"
              "spec:\n  jwtRules:\n  - issuer: %s\n    jwksUri: http://127.0.0.1:%d/.well-known/jwks.json\n"
              % (iss, srv.port))
        p = st.start_proxy(self, st.join_docs(st.registry_yaml({("reviews", "v1"): app.port}), ra),
                           outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                           args=["--service", "reviews"])

        def get(tok):
            return st.request(p.inbound_port, "GET", "/x", host="reviews",
                              headers={"authorization": "Bearer " + tok})

        t1 = token(k1, "ES256", "k1", iss=iss)
        r = get(t1)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(get(t1).status, 200)
        self.assertGreaterEqual(srv.fetches, 1)
        # Rotation: the issuer now signs with k2 only.
        srv.body = ec_jwks(k2, "k2").encode()
        t2 = token(k2, "ES256", "k2", iss=iss)
        r = get(t2)
        self.assertEqual(r.status, 200, r)
        # k1 is gone from the set: its token, verified before, is refused now.
        r = get(t1)
        self.assertEqual((r.status, r.header("sinew-error")), (401, "jwt_invalid"), r)
        self.assertIn("jwksUri http://127.0.0.1:%d/.well-known/jwks.json: key set 2 fetched" % srv.port,
                      p.stderr())


ISS2 = "https://other.test"
RSA2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC384 = ec.generate_private_key(ec.SECP384R1())


def jwks2():
    rn = RSA2.public_key().public_numbers()
    en = EC384.public_key().public_numbers()
    return json.dumps({"keys": [
        {"kty": "RSA", "kid": "r2", "n": b64(rn.n), "e": b64(rn.e)},
        {"kty": "EC", "kid": "e384", "crv": "P-384", "x": b64(en.x, 48), "y": b64(en.y, 48)},
    ]})


def token2(key=RSA2, alg="RS384", kid="r2", **claims):
    c = {"iss": ISS2, "aud": "api2"}
    c.update(claims)
    return token(key, alg, kid, **c)


class Sources(unittest.TestCase):
    """Where the token is taken from (fromHeaders with a prefix,
    fromParams, fromCookies: then not from Authorization), what is
    forwarded (forwardOriginalToken), the other algorithms (RS384, RS512,
    ES384), and the request.auth conditions audiences, presenter and
    notRequestPrincipals (Istio's semantics)."""

    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        cls.app = st.start_backend(scope, "reviews", "v1")
        ra = ("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: sources}\nspec:\n"
              "  jwtRules:\n  - issuer: %s\n    jwks: '%s'\n"
              "    fromHeaders: [{name: x-jwt-assertion, prefix: \"Bearer \"}]\n"
              "    fromParams: [tok]\n    fromCookies: [session]\n    forwardOriginalToken: true\n" % (ISS2, jwks2()))
        ap = ("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: conds}\nspec:\n"
              "  rules:\n"
              "  - to: [{operation: {paths: [\"/aud*\"]}}]\n"
              "    when: [{key: request.auth.audiences, values: [api2]}]\n"
              "  - to: [{operation: {paths: [\"/azp*\"]}}]\n"
              "    when: [{key: request.auth.presenter, values: [web-app]}]\n"
              "  - from: [{source: {requestPrincipals: [\"*\"], notRequestPrincipals: [\"%s/mallory\"]}}]\n"
              "    to: [{operation: {paths: [\"/notme*\"]}}]\n" % ISS2)
        cfg = st.join_docs(st.registry_yaml({("reviews", "v1"): cls.app.port}), ra, ap)
        cls.p = st.start_proxy(scope, cfg, outbound=False, inbound=True, app="127.0.0.1:%d" % cls.app.port,
                               args=["--service", "reviews", "--labels", "app=reviews,version=v1"])

    def get(self, path, headers):
        return st.request(self.p.inbound_port, "GET", path, host="reviews", headers=headers)

    def test_algorithms_and_locations(self):
        for key, alg, kid in ((RSA2, "RS384", "r2"), (RSA2, "RS512", "r2"), (EC384, "ES384", "e384")):
            with self.subTest(alg=alg):
                t = token2(key, alg, kid)
                r = self.get("/aud/x", {"x-jwt-assertion": "Bearer " + t})
                self.assertEqual(r.status, 200, r)
                # forwardOriginalToken: the app sees the header as sent
                self.assertEqual(r.json()["headers"]["x-jwt-assertion"], "Bearer " + t)
        t = token2()
        self.assertEqual(self.get("/aud/q?tok=" + t, {}).status, 200)
        self.assertEqual(self.get("/aud/c", {"cookie": "a=b; session=" + t + "; c=d"}).status, 200)
        # fromHeaders given: Authorization is no longer where tokens are
        # read, so this request has no token (authentication passes) and
        # the policy, wanting an audience, denies it
        r = self.get("/aud/x", {"authorization": "Bearer " + t})
        self.assertEqual((r.status, r.header("sinew-error")), (403, "rbac_denied"), r)
        # the prefix is part of the location
        r = self.get("/aud/x", {"x-jwt-assertion": t})
        self.assertEqual(r.status, 403, r)
        # a bad token where tokens are read is refused
        r = self.get("/aud/x", {"cookie": "session=" + t[:-5]})
        self.assertEqual((r.status, r.header("sinew-error")), (401, "jwt_invalid"), r)

    def test_request_auth_conditions(self):
        h = lambda t: {"x-jwt-assertion": "Bearer " + t}   # noqa: E731
        # the rule names no audiences, so any is authenticated; the policy
        # then wants api2
        self.assertEqual(self.get("/aud", h(token2(aud="other"))).status, 403)
        self.assertEqual(self.get("/aud", h(token2(aud=["other", "api2"]))).status, 200)
        self.assertEqual(self.get("/azp", h(token2(azp="web-app"))).status, 200)
        self.assertEqual(self.get("/azp", h(token2(azp="cli"))).status, 403)
        self.assertEqual(self.get("/notme", h(token2(sub="alice"))).status, 200)
        self.assertEqual(self.get("/notme", h(token2(sub="mallory"))).status, 403)
        self.assertEqual(self.get("/notme", {}).status, 403)   # no principal: requestPrincipals * fails


class FailClosed(unittest.TestCase):
    """A RequestAuthentication with a field Sinew does not know refuses
    every request to what it selects, with or without a token: 401
    policy_unenforceable naming it, with the bearer challenge
    (docs/security.md "Fail closed")."""

    def test_unknown_field_refuses_everything(self):
        app = st.start_backend(self, "reviews", "v1")
        ra = ("apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: typo}\nspec:\n"
              "  selector: {matchLabels: {app: reviews}}\n  jwtRules:\n"
              "  - issuer: %s\n    audience: [api]\n    jwks: '%s'\n" % (ISS, jwks()))
        p = st.start_proxy(self, st.join_docs(st.registry_yaml({("reviews", "v1"): app.port}), ra),
                           outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                           args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
        for tok in (None, token(), "garbage"):
            with self.subTest(tok=tok):
                h = {"authorization": "Bearer " + tok} if tok else {}
                r = st.request(p.inbound_port, "GET", "/x", host="reviews", headers=h)
                self.assertEqual((r.status, r.header("sinew-error")), (401, "policy_unenforceable"), r)
                self.assertIn("default/typo", r.body.decode())
                self.assertIn('error="invalid_token"', r.header("www-authenticate"))
        self.assertEqual(app.requests(), 0)
        self.assertIn("spec.jwtRules[0].audience: unknown field", p.stderr())
        self.assertIn("every request to the workloads it selects is refused, 401 policy_unenforceable", p.stderr())


if __name__ == "__main__":
    st.main()
