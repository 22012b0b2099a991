#!/usr/bin/python3
"""The sinew CLI's control-plane commands against real binaries: up/down
(idempotent, data dir), apply/get/delete round trips with the Istio
bookinfo samples (read from $SINEW_SHARED, not copied), refusals with
file:line, analyze offline and live (each problem class reports its code,
nothing on the clean samples), proxy-status and proxy-config against a
control-plane proxy, explain agreeing with a real sinew-proxy on 20
generated requests, and the bash completion script."""

import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinewtest as st  # noqa: E402

SINEW = os.path.join(st.BIN, "sinew")
REGISTRY = os.path.join(st.SRC, "tests", "config", "bookinfo-registry.yaml")
DR_ALL = os.path.join(st.BOOKINFO, "destination-rule-all.yaml")

# One WorkloadEntry per version destination-rule-all.yaml names.
FULL_VERSIONS = {
    "productpage": ["v1"], "details": ["v1", "v2"], "reviews": ["v1", "v2", "v3"],
    "ratings": ["v1", "v2", "v2-mysql", "v2-mysql-vm"],
}


def full_registry():
    docs = []
    n = 1
    for svc, versions in FULL_VERSIONS.items():
        docs.append(st.service_yaml(svc))
        for v in versions:
            docs.append(st.workload_yaml("%s-%s" % (svc, v), 9080, {"app": svc, "version": v},
                                         address="10.0.1.%d" % n))
            n += 1
    return st.join_docs(*docs)


def run(args, env=None, stdin=None, timeout=60):
    """Runs sinew; returns (exit status, stdout, stderr)."""
    e = st.proxy_env()
    e.pop("SINEW_SERVER", None)
    e.update(env or {})
    p = subprocess.run([SINEW] + list(args), input=stdin, capture_output=True, text=True, env=e,
                       timeout=timeout)
    for pat in st.SANITIZER_PATTERNS:
        if pat in p.stderr:
            raise AssertionError("sanitizer report from sinew %s:\n%s" % (" ".join(args), p.stderr))
    return p.returncode, p.stdout, p.stderr


class Sinewd:
    """sinewd started with `sinew up` in a temp data dir; `sinew down` at the end."""

    def __init__(self, test):
        self.test = test
        self.dir = os.path.join(st.make_tempdir(test, "sinew-cli-"), "data")
        self.port = st.free_port()
        self.mesh_port = st.free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.mesh = "127.0.0.1:%d" % self.mesh_port
        # --no-pods: these tests want the control plane only, not a network
        # namespace (as root `up` makes one by default).
        rc, out, err = run(["up", "--data-dir", self.dir, "--api", "127.0.0.1:%d" % self.port,
                            "--mesh", self.mesh, "--no-pods"])
        if rc != 0:
            raise AssertionError("sinew up failed (%d):\n%s\n%s" % (rc, out, err))
        self.up_out = out
        test.addCleanup(self.down)

    def down(self):
        rc, out, err = run(["down", "--data-dir", self.dir])
        if rc != 0:
            raise AssertionError("sinew down failed: %s %s" % (out, err))
        log = os.path.join(self.dir, "sinewd.log")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                text = f.read()
            for pat in st.SANITIZER_PATTERNS:
                if pat in text:
                    raise AssertionError("sanitizer report in sinewd.log:\n" + text[-4000:])

    def sinew(self, *args, **kw):
        env = dict(kw.pop("env", {}) or {})
        env["SINEW_SERVER"] = self.url
        return run(list(args), env=env, **kw)


def gone(pid):
    """True if pid has exited (a zombie whose parent is not us counts)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def write(test, name, text):
    d = st.make_tempdir(test)
    path = os.path.join(d, name)
    st.write_file(path, text)
    return path


VS_BAD_SUBSET = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination:
        host: reviews
        subset: v9
---
apiVersion: v1
kind: Service
metadata:
  name: extra
spec:
  selector: {app: extra}
  ports:
  - name: http
    port: 9080
"""


class TestUsage(unittest.TestCase):
    COMMANDS = ["up", "down", "apply", "get", "delete", "analyze", "explain", "proxy-status",
                "proxy-config", "completion", "version", "gateway"]

    def test_help_everywhere_and_exit_codes(self):
        for c in self.COMMANDS:
            rc, out, err = run([c, "--help"])
            self.assertEqual(rc, 0, (c, err))
            self.assertIn("usage: sinew " + c, out)
            self.assertIn("Exit status", out)
            rc, out, err = run(["help", c])
            self.assertEqual(rc, 0, (c, err))
        for args in (["get"], ["get", "nokind"], ["apply"], ["delete", "vs"], ["explain"],
                     ["proxy-config", "bogus", "x"], ["get", "vs", "--bogus"], ["completion", "zsh"],
                     ["gateway"], ["gateway", "walk"]):
            rc, out, err = run(args)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertTrue(err.strip(), args)
        rc, out, err = run(["--help"])
        self.assertEqual(rc, 0)
        for c in self.COMMANDS:
            self.assertIn(c, out)

    def test_unreachable_server_is_a_clear_error(self):
        port = st.closed_port()
        rc, out, err = run(["get", "vs", "--server", "http://127.0.0.1:%d" % port])
        self.assertEqual(rc, 1)
        self.assertIn("sinew: cannot reach sinewd at http://127.0.0.1:%d (connection refused); "
                      "start it with `sinew up`" % port, err)
        rc, out, err = run(["get", "vs"], env={"SINEW_SERVER": "http://127.0.0.1:%d" % port})
        self.assertIn("127.0.0.1:%d" % port, err)
        rc, out, err = run(["version", "--server", "http://127.0.0.1:%d" % port])
        self.assertEqual(rc, 0)
        self.assertIn("sinew ", out)
        self.assertIn("not reachable", out)
        rc, out, err = run(["get", "vs", "--server", "https://127.0.0.1:1"])
        self.assertEqual(rc, 1)
        self.assertIn("https is not supported", err)

    def test_completion_is_valid_bash(self):
        rc, out, err = run(["completion", "bash"])
        self.assertEqual(rc, 0, err)
        for word in ("proxy-status", "virtualservices", "--from", "--data-dir", "complete -F _sinew sinew"):
            self.assertIn(word, out)
        p = subprocess.run(["bash", "-n"], input=out, capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        # and it completes: `sinew get v<TAB>`
        script = out + '\nCOMP_WORDS=(sinew get v); COMP_CWORD=2; _sinew; echo "${COMPREPLY[@]}"\n'
        p = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
        self.assertEqual(p.stdout.split(), ["virtualservice", "virtualservices", "vs"], p.stderr)


class TestUpDown(unittest.TestCase):
    def test_up_down_idempotent(self):
        home = st.make_tempdir(self, "sinew-home-")
        port, mesh = st.free_port(), st.free_port()
        env = {"SINEW_HOME": os.path.join(home, "h")}
        api = "127.0.0.1:%d" % port
        rc, out, err = run(["up", "--api", api, "--mesh", "127.0.0.1:%d" % mesh], env=env)
        self.addCleanup(run, ["down"], env)
        self.assertEqual(rc, 0, err)
        data = os.path.join(home, "h")
        self.assertIn("http://" + api, out)
        self.assertIn(data, out)
        self.assertIn(os.path.join(data, "sinewd.log"), out)
        pidfile = os.path.join(data, "sinewd.pid")
        with open(pidfile) as f:
            pid = int(f.read())
        os.kill(pid, 0)
        rc, out2, err = run(["up", "--api", api], env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn("already running (pid %d" % pid, out2)
        rc, out, err = run(["version", "--server", "http://" + api])
        self.assertEqual(rc, 0)
        self.assertIn("sinewd 0.", out)
        rc, out, err = run(["down"], env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn("stopped (pid %d" % pid, out)
        self.assertFalse(os.path.exists(pidfile))
        self.assertTrue(gone(pid), pid)
        rc, out, err = run(["down"], env=env)
        self.assertEqual(rc, 0, err)
        self.assertIn("not running", out)
        # a stale pid file is cleaned up
        with open(pidfile, "w") as f:
            f.write("999999\n")
        rc, out, err = run(["down"], env=env)
        self.assertEqual(rc, 0)
        self.assertFalse(os.path.exists(pidfile))

    def test_up_reports_a_failed_start(self):
        d = st.make_tempdir(self)
        taken = st.free_port()
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", taken))
        s.listen(1)
        self.addCleanup(s.close)
        netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        rc, out, err = run(["up", "--data-dir", d, "--api", "127.0.0.1:%d" % taken,
                            "--mesh", "127.0.0.1:%d" % st.free_port()])
        self.assertEqual(rc, 1, out)
        self.assertIn("exited during start-up", err)
        self.assertIn("sinewd.log", err)
        self.assertFalse(os.path.exists(os.path.join(d, "sinewd.pid")))
        # As root it made the pod network first; a failed up takes it back.
        if "sn-mesh" not in netns_before:
            netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            self.assertNotIn("sn-mesh", netns)
            self.assertFalse(os.path.exists(os.path.join(d, "pods", "mesh")))


class TestApplyGetDelete(unittest.TestCase):
    def test_round_trip_with_bookinfo(self):
        sd = Sinewd(self)
        vs = os.path.join(st.BOOKINFO, "virtual-service-reviews-jason-v2-v3.yaml")
        rc, out, err = sd.sinew("apply", "-f", REGISTRY, "-f", DR_ALL, "-f", vs)
        self.assertEqual(rc, 0, err)
        self.assertIn("service/reviews created", out)
        self.assertIn("workloadentry.networking.istio.io/reviews-v2 created", out)
        self.assertIn("destinationrule.networking.istio.io/reviews created", out)
        self.assertIn("virtualservice.networking.istio.io/reviews created", out)
        rc, out, err = sd.sinew("apply", "-f", vs)
        self.assertEqual((rc, out.strip()), (0, "virtualservice.networking.istio.io/reviews unchanged"), err)
        rc, out, err = sd.sinew("apply", "-f", os.path.join(st.BOOKINFO, "virtual-service-reviews-v3.yaml"))
        self.assertEqual((rc, out.strip()), (0, "virtualservice.networking.istio.io/reviews configured"), err)

        # every alias of a kind
        for alias in ("vs", "virtualservice", "virtualservices", "VirtualService"):
            rc, out, err = sd.sinew("get", alias)
            self.assertEqual(rc, 0, err)
            lines = out.splitlines()
            self.assertEqual(lines[0].split()[:3], ["NAMESPACE", "NAME", "HOSTS"], out)
            self.assertEqual(lines[1].split()[:3], ["default", "reviews", "reviews"], out)
            self.assertIn("Accepted", lines[1])
        for alias, names in (("dr", {"productpage", "reviews", "ratings", "details"}),
                             ("svc", {"productpage", "reviews", "ratings", "details"}),
                             ("we", {"reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1",
                                     "details-v1", "productpage-v1"})):
            rc, out, err = sd.sinew("get", alias, "-A")
            self.assertEqual(rc, 0, err)
            self.assertEqual({l.split()[1] for l in out.splitlines()[1:]}, names, out)
        rc, out, err = sd.sinew("get", "dr", "reviews", "-o", "wide")
        self.assertIn("v1,v2,v3", out)
        self.assertIn("destination-rule-all.yaml:", out)
        # -o yaml gives back the text as written
        rc, out, err = sd.sinew("get", "vs", "reviews", "-o", "yaml")
        self.assertEqual(rc, 0, err)
        with open(os.path.join(st.BOOKINFO, "virtual-service-reviews-v3.yaml")) as f:
            self.assertEqual(out.strip(), f.read().strip())
        rc, out, err = sd.sinew("get", "dr", "-o", "yaml")
        self.assertEqual(out.count("kind: DestinationRule"), 4)
        self.assertEqual(out.count("\n---\n"), 3)
        rc, out, err = sd.sinew("get", "svc", "-o", "json")
        self.assertEqual(len(json.loads(out)), 4)
        rc, out, err = sd.sinew("get", "vs", "-n", "other")
        self.assertEqual(rc, 0)
        self.assertIn("No resources found in other namespace", err)
        rc, out, err = sd.sinew("get", "vs", "nope")
        self.assertEqual(rc, 1)
        self.assertIn("VirtualService default/nope not found", err)

        # delete by name, then by file
        rc, out, err = sd.sinew("delete", "vs", "reviews")
        self.assertEqual((rc, out.strip()), (0, 'virtualservice.networking.istio.io "reviews" deleted'), err)
        rc, out, err = sd.sinew("delete", "vs", "reviews")
        self.assertEqual(rc, 1)
        self.assertIn("not found", err)
        rc, out, err = sd.sinew("delete", "vs", "reviews", "--ignore-not-found")
        self.assertEqual(rc, 0, err)
        rc, out, err = sd.sinew("delete", "-f", DR_ALL)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("deleted"), 4, out)
        rc, out, err = sd.sinew("get", "dr")
        self.assertEqual(out, "")
        self.assertIn("No resources found", err)

    def test_refused_resource_exit_code_and_file_line(self):
        sd = Sinewd(self)
        rc, out, err = sd.sinew("apply", "-f", REGISTRY)
        self.assertEqual(rc, 0, err)
        path = write(self, "mixed.yaml", VS_BAD_SUBSET)
        rc, out, err = sd.sinew("apply", "-f", path)
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("service/extra created", out)           # the other one is applied
        self.assertIn("error: virtualservice.networking.istio.io/reviews refused", err)
        self.assertIn("%s:11:17: error: VirtualService default/reviews: "
                      "spec.http[0].route[0].destination.subset" % path, err)
        rc, out, err = sd.sinew("get", "vs")
        self.assertNotIn("reviews", out)

    def test_directory_and_stdin(self):
        sd = Sinewd(self)
        d = st.make_tempdir(self)
        st.write_file(os.path.join(d, "b-registry.yaml"), full_registry())
        st.write_file(os.path.join(d, "a-dr.yml"), open(DR_ALL).read())
        st.write_file(os.path.join(d, "notes.txt"), "not config")
        rc, out, err = sd.sinew("apply", "-f", d)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        # sorted: a-dr.yml first
        self.assertTrue(lines[0].startswith("destinationrule"), out)
        self.assertIn("service/ratings created", out)
        text = open(os.path.join(st.BOOKINFO, "virtual-service-all-v1.yaml")).read()
        rc, out, err = sd.sinew("apply", "-f", "-", stdin=text)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("virtualservice.networking.istio.io/"), 4, out)
        rc, out, err = sd.sinew("get", "vs", "ratings", "-o", "wide")
        self.assertIn("-:", out)   # source "-" (stdin)
        rc, out, err = sd.sinew("delete", "-f", "-", stdin=text)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.count("deleted"), 4)


# ---- analyze -------------------------------------------------------------

SVC = st.service_yaml
WE = st.workload_yaml

CRAFTED = {
    "SN0001": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
      weight: many
""",
    "SN0101": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ghost}
spec:
  hosts: [ghost]
  http:
  - route:
    - destination: {host: ghost}
""",
    "SN0102": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
""",
    "SN0103": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
""",
    "SN0104": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-a}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-b}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
""",
    "SN0105": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 50
    - destination: {host: reviews, subset: v2}
      weight: 30
""",
    "SN0106": SVC("extra") + WE("extra-v1", 9080, {"app": "extra", "version": "v1"}) +
    """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: extra}
spec:
  host: extra
  subsets:
  - name: v7
    labels: {version: v7}
""",
    "SN0107": SVC("lonely", selector={"app": "lonely"}),
    "SN0108": """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: nowhere}
spec:
  host: nowhere
""",
    "SN0109": """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-second}
spec:
  host: reviews
  subsets:
  - name: v1
    labels: {version: v1}
""",
    "SN0113": """apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: across}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: reviews, namespace: other, port: 9080}]}]
""",
    "SN0114": """apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: istio
  listeners: [{name: web, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: t}
spec:
  parentRefs: [{name: gw, sectionName: web}]
  rules: [{backendRefs: [{name: reviews, port: 9080}]}]
"""
}


class TestAnalyze(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        scope = st.ClassScope(cls)
        d = st.make_tempdir(scope)
        cls.registry = os.path.join(d, "registry.yaml")
        st.write_file(cls.registry, full_registry())
        cls.crafted = {}
        for code, text in CRAFTED.items():
            p = os.path.join(d, "%s.yaml" % code.lower())
            st.write_file(p, text)
            cls.crafted[code] = p

    def codes(self, out):
        return {l.split()[1].strip("[]") for l in out.splitlines() if l.startswith(("Error [", "Warning [", "Info ["))}

    def test_offline_each_problem_class(self):
        for code, path in sorted(self.crafted.items()):
            with self.subTest(code=code):
                rc, out, err = run(["analyze", "-f", self.registry, "-f", DR_ALL, "-f", path])
                self.assertIn(code, self.codes(out), out + err)
                line = [l for l in out.splitlines() if "[%s]" % code in l][0]
                self.assertIn(os.path.basename(path), line)
                level = line.split()[0]
                self.assertEqual(rc, 1 if "Error [" in out else 0, out)
                if code in ("SN0001", "SN0101", "SN0102", "SN0104", "SN0105"):
                    self.assertEqual(level, "Error", line)
                    self.assertRegex(line, r"\(.*%s:\d+\)" % os.path.basename(path))
        # JSON output has the same messages
        rc, out, err = run(["analyze", "-o", "json", "-f", self.registry, "-f", DR_ALL,
                            "-f", self.crafted["SN0102"]])
        doc = json.loads(out)
        self.assertGreaterEqual(doc["errors"], 1)
        self.assertIn("SN0102", [m["code"] for m in doc["messages"]])

    def test_offline_nothing_on_clean_bookinfo(self):
        samples = sorted(f for f in os.listdir(st.BOOKINFO)
                         if f.startswith("virtual-service-") and f.endswith(".yaml"))
        self.assertGreater(len(samples), 5)
        for s in samples:
            with self.subTest(sample=s):
                rc, out, err = run(["analyze", "-f", self.registry, "-f", DR_ALL,
                                    "-f", os.path.join(st.BOOKINFO, s)])
                bad = [l for l in out.splitlines() if l.startswith(("Error", "Warning"))]
                self.assertEqual((rc, bad), (0, []), out + err)
                self.assertIn("No validation issues found", out)
        # the documented exception
        rc, out, err = run(["analyze", "-f", self.registry, "-f", DR_ALL,
                            "-f", os.path.join(st.BOOKINFO, "fault-injection-details-v1.yaml")])
        self.assertEqual(self.codes(out), {"SN0103"}, out)
        self.assertEqual(rc, 0)

    def test_live_and_what_if(self):
        sd = Sinewd(self)
        rc, out, err = sd.sinew("apply", "-f", self.registry, "-f", DR_ALL,
                                "-f", os.path.join(st.BOOKINFO, "virtual-service-reviews-80-20.yaml"))
        self.assertEqual(rc, 0, err)
        rc, out, err = sd.sinew("analyze")
        self.assertEqual((rc, out.strip()), (0, "No validation issues found."), err)
        # what-if with one file: through the API
        rc, out, err = sd.sinew("analyze", "--live", "-f", self.crafted["SN0102"])
        self.assertEqual(rc, 1, out)
        self.assertIn("Error [SN0102] (VirtualService default/reviews %s:" % self.crafted["SN0102"], out)
        # several files: the store and the files analyzed together here
        rc, out, err = sd.sinew("analyze", "--live", "-f", self.crafted["SN0109"], "-f", self.crafted["SN0107"])
        self.assertEqual(self.codes(out), {"SN0109", "SN0107"}, out + err)
        self.assertEqual(rc, 0)
        # the live store itself was not changed
        rc, out, err = sd.sinew("analyze")
        self.assertEqual(rc, 0)
        # offline needs no sinewd
        rc, out, err = run(["analyze", "-f", self.crafted["SN0105"], "--server", "http://127.0.0.1:%d" % st.closed_port()])
        self.assertIn("SN0105", out, err)
        # one error hides no other: a resource the loader refuses (weights)
        # still has its destinations checked; the text names each field
        bad = write(self, "many.yaml", st.service_yaml("reviews") +
                    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\n"
                    "spec:\n  hosts: [reviews]\n  http:\n  - route:\n"
                    "    - {destination: {host: reviews, subset: v9}, weight: 50}\n"
                    "    - {destination: {host: ratingz}, weight: 40}\n    frobnicate: 1\n")
        rc, out, err = run(["analyze", "-f", bad])
        self.assertEqual(rc, 1)
        self.assertTrue({"SN0105", "SN0101", "SN0102", "SN0003"} <= self.codes(out), out)
        self.assertIn("spec.http[0].frobnicate: unknown field", out)
        self.assertIn("spec.http[0].route[1].destination.host: destination host \"ratingz\"", out)


# ---- proxies ---------------------------------------------------------------

class TestProxies(unittest.TestCase):
    def test_proxy_status_and_config(self):
        sd = Sinewd(self)
        app = st.start_backend(self, "reviews", "v2")
        # Only loopback endpoints here: the registered proxy is the one.
        rc, out, err = sd.sinew("apply", "-f", write(self, "svc.yaml", st.service_yaml("reviews")))
        self.assertEqual(rc, 0, err)
        w = st.make_tempdir(self)
        # The mesh port takes mutual TLS only: the proxy joins with a token.
        rc, token, err = sd.sinew("token", "create", "--service-account", "reviews")
        self.assertEqual(rc, 0, err)
        p = st.Proxy(None, w, outbound=True, inbound=True, app="127.0.0.1:%d" % app.port,
                     args=["--service", "reviews", "--labels", "app=reviews,version=v2",
                           "--token", token.strip()])
        p.argv = lambda: [st.PROXY, "--control-plane", sd.mesh,
                          "--outbound", "127.0.0.1:%d" % p.outbound_port,
                          "--inbound", "127.0.0.1:%d" % p.inbound_port, "--app", p.app,
                          "--admin", "127.0.0.1:%d" % p.admin_port] + p.extra
        p.start()
        self.addCleanup(st._finish_proxy, self, p, True)
        self.assertTrue(p.wait_ready(15), p.stderr())
        # traffic makes it subscribe to reviews
        for _ in range(5):
            r = st.request(p.outbound_port, "GET", "/", host="reviews:9080", timeout=5)
            if r.status == 200 and r.json().get("version") == "v2":
                break
            time.sleep(0.2)
        self.assertEqual(r.status, 200, r)
        deadline = time.time() + 10
        while True:
            rc, out, err = sd.sinew("proxy-status")
            if "SYNCED" in out or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0].split()[:6], ["NAME", "SERVICE", "NAMESPACE", "ADDRESS", "VERSION", "STATE"])
        row = lines[1].split()
        pid = row[0]
        self.assertTrue(pid.startswith("reviews"), out)
        self.assertEqual(row[1:4], ["reviews", "default", "127.0.0.1:%d" % p.inbound_port])
        self.assertIn("SYNCED", out)
        rc, out, err = sd.sinew("proxy-status", "-o", "json")
        self.assertEqual(json.loads(out)[0]["id"], pid)
        rc, out, err = sd.sinew("proxy-status", "nobody")
        self.assertEqual(rc, 1)

        rc, out, err = sd.sinew("proxy-config", "clusters", pid)
        self.assertEqual(rc, 0, err)
        self.assertIn("outbound|9080||reviews.default.svc.cluster.local", out)
        self.assertIn("P2C_EWMA", out)
        rc, out, err = sd.sinew("proxy-config", "endpoints", pid[:8])
        self.assertEqual(rc, 0, err)
        self.assertIn("127.0.0.1:%d" % p.inbound_port, out)
        self.assertIn("v2", out)
        rc, out, err = run(["proxy-config", "routes", "--admin", "127.0.0.1:%d" % p.admin_port])
        self.assertEqual(rc, 0, err)
        self.assertIn("reviews.default.svc.cluster.local", out)
        rc, out, err = run(["proxy-config", "clusters", "--admin", "127.0.0.1:%d" % p.admin_port, "-o", "json"])
        self.assertIsInstance(json.loads(out), list)
        rc, out, err = run(["proxy-config", "routes", "--admin", "127.0.0.1:%d" % st.closed_port()])
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach the proxy's admin port", err)

        # explain from the registered proxy's identity, live
        rc, out, err = sd.sinew("explain", "--from", pid, "http://reviews:9080/", "-o", "json")
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["from"]["labels"], {"app": "reviews", "version": "v2"})
        self.assertEqual(doc["vhost"], "reviews.default.svc.cluster.local")


# ---- explain vs the proxy ------------------------------------------------------

def generated_requests():
    """20 requests: (host, path, headers). Header-routed and single-destination
    rules (jason-v2-v3 for reviews, the Services' default routes for the
    others) and hosts nobody routes."""
    out = []
    users = ["jason", "JASON", "mary", None, "jason "]
    for i in range(10):
        u = users[i % len(users)]
        h = {"end-user": u} if u is not None else {}
        out.append(("reviews:9080" if i % 2 else "reviews", "/reviews/%d" % i, h))
    for i, host in enumerate(["ratings:9080", "details", "productpage:9080", "ratings.default",
                              "details.default.svc.cluster.local:9080", "ratings"]):
        out.append((host, "/x/%d?q=%d" % (i, i), {"end-user": "jason"} if i % 2 else {}))
    for host in ("nope", "nope.default:9080", "reviews.other", "10.255.0.1:9080"):
        out.append((host, "/", {}))
    assert len(out) == 20
    return out


class TestExplainAgrees(unittest.TestCase):
    def test_explain_matches_the_proxy_on_20_requests(self):
        bi = st.Bookinfo(self, ["virtual-service-reviews-jason-v2-v3.yaml"])
        n_routed = n_header = 0
        for host, path, headers in generated_requests():
            with self.subTest(host=host, path=path, headers=headers):
                args = ["explain", "-f", bi.config_path, "-o", "json", "http://%s%s" % (host, path)]
                for k, v in headers.items():
                    args += ["-H", "%s: %s" % (k, v)]
                rc, out, err = run(args)
                doc = json.loads(out)
                r = bi.get(host, path, headers=headers)
                if not doc["routed"]:
                    self.assertEqual(rc, 1)
                    self.assertEqual(r.status, doc["status"], (r, doc))
                    self.assertEqual(r.header("sinew-error"), doc["error"], (r, doc))
                    continue
                self.assertEqual(rc, 0, err)
                self.assertEqual(r.status, 200, r)
                answered = r.json()["version"]
                subsets = {d["subset"] for d in doc["destinations"]}
                versions = {e["version"] for d in doc["destinations"] for e in d["endpoints"]}
                self.assertIn(answered, versions, (doc, answered))
                if len(doc["destinations"]) == 1 and None not in subsets:
                    self.assertEqual(subsets, {answered}, doc)
                n_routed += 1
                if "end-user" in headers and host.startswith("reviews"):
                    n_header += 1
                    # exact match; the proxy strips the value's surrounding blanks
                    expect = "v2" if headers["end-user"].strip() == "jason" else "v3"
                    self.assertEqual(answered, expect, (headers, doc))
        self.assertGreaterEqual(n_routed, 14)
        self.assertGreaterEqual(n_header, 6)

    def test_text_output_and_no_route(self):
        reg = write(self, "reg.yaml", full_registry())
        vs = os.path.join(st.BOOKINFO, "virtual-service-ratings-test-delay.yaml")
        rc, out, err = run(["explain", "-f", reg, "-f", DR_ALL, "-f", vs, "--from", "productpage-v1",
                            "http://ratings:9080/ratings/0", "-H", "end-user: jason"])
        self.assertEqual(rc, 0, err)
        self.assertIn("productpage-v1 in namespace default (a WorkloadEntry)", out)
        self.assertIn("virtual host ratings.default.svc.cluster.local (port 9080)", out)
        self.assertIn("virtual-service-ratings-test-delay.yaml:", out)
        self.assertIn('header end-user exact "jason"', out)
        self.assertIn("subset v1 -> cluster outbound|9080|v1|ratings.default.svc.cluster.local", out)
        self.assertIn("Fault:       delay 7000 ms for 100% of requests", out)
        self.assertIn("Retries:", out)
        rc, out, err = run(["explain", "-f", reg, "http://unknown:9080/"])
        self.assertEqual(rc, 1)
        self.assertIn('no route: no route for host "unknown:9080"', out)
        self.assertIn("sinew-error: no_route", out)
        rc, out, err = run(["explain", "-f", reg, "--from", "nobody", "http://ratings/"])
        self.assertEqual(rc, 1)
        self.assertIn('no workload "nobody"', err)


class TestExplainInbound(unittest.TestCase):
    """explain's Inbound: what the destination's own proxy decides on the
    request (its AuthorizationPolicies, by the same sn_authz_check), and
    the load's warnings for the resources that took part; checked against
    a real inbound sinew-proxy holding the same configuration."""

    AP = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
    POLICIES = (AP + "metadata: {name: deny-admin}\nspec:\n  action: DENY\n  rules:\n"
                "  - to: [{operation: {paths: [\"/admin*\"]}}]\n---\n" +
                AP + "metadata: {name: allow}\nspec:\n  rules:\n"
                "  - from: [{source: {principals: [\"cluster.local/ns/default/sa/bookinfo-productpage\"]}}]\n"
                "  - to: [{operation: {paths: [\"/public*\"]}}]\n")
    TYPO = AP + "metadata: {name: typo}\nspec:\n  action: DENY\n  rules:\n" \
        "  - to: [{operation: {paths: [\"/x\"], methodz: [GET]}}]\n"

    def explain(self, cfg, path, *extra):
        rc, out, err = run(["explain", "-f", cfg, "-o", "json"] + list(extra) + ["http://reviews:9080" + path])
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual(len(doc["inbound"]), 1, doc)
        return doc

    def check_agrees(self, policies):
        app = st.start_backend(self, "reviews", "v1")
        reg = st.registry_yaml({("reviews", "v1"): app.port}) + st.workload_yaml(
            "productpage-v1", 9080, {"app": "productpage", "version": "v1"}, address="10.0.9.9",
            service_account="bookinfo-productpage")
        cfg_text = st.join_docs(reg, policies)
        p = st.start_proxy(self, cfg_text, outbound=False, inbound=True, app="127.0.0.1:%d" % app.port,
                           args=["--service", "reviews", "--labels", "app=reviews,version=v1"])
        cfg = write(self, "all.yaml", cfg_text)
        # a plaintext request has no principal: explain's default caller
        # (sa default) is not named by any policy either
        for path in ("/public/a", "/admin/x", "/x", "/"):
            with self.subTest(path=path):
                doc = self.explain(cfg, path)
                r = st.request(p.inbound_port, "GET", path, host="reviews:9080")
                v = doc["inbound"][0]
                self.assertEqual(r.status, 200 if v["allowed"] else v["status"], (r, v))
                self.assertEqual(r.header("sinew-error"), v["error"], (r, v))
        return cfg

    def test_explain_inbound_agrees_with_the_proxy(self):
        cfg = self.check_agrees(self.POLICIES)
        doc = self.explain(cfg, "/x", "--from", "productpage-v1")
        self.assertEqual((doc["inbound"][0]["allowed"], doc["inbound"][0]["why"]), (True, "default/allow"), doc)
        self.assertEqual(doc["warnings"], [])
        rc, out, err = run(["explain", "-f", cfg, "http://reviews:9080/admin/x"])
        self.assertIn("Inbound:     as the endpoints' proxies judge it, from cluster.local/ns/default/sa/default", out)
        self.assertIn("refused 403 (sinew-error: rbac_denied): default/deny-admin", out)

    def test_explain_names_an_unenforceable_policy_and_its_warnings(self):
        cfg = self.check_agrees(self.POLICIES + "---\n" + self.TYPO)
        rc, out, err = run(["explain", "-f", cfg, "--from", "productpage-v1", "http://reviews:9080/public/a"])
        self.assertEqual(rc, 0, err)
        self.assertIn("refused 403 (sinew-error: policy_unenforceable): policy default/typo has fields Sinew "
                      "does not know", out)
        self.assertIn("Warnings:", out)
        self.assertIn("AuthorizationPolicy default/typo: spec.rules[0].to[0].operation.methodz: unknown field", out)


if __name__ == "__main__":
    st.main()
