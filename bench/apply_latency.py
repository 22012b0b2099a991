#!/usr/bin/python3
"""Apply latency of sinewd binaries, interleaved: a live apply of one
VirtualService (median of 200) and a 1,000-Service bulk apply, three rounds.
Usage: bench/apply_latency.py NAME=SINEWD [NAME=SINEWD ...] (docs/internals/admission.md)."""
import http.client, json, os, subprocess, sys, tempfile, time, statistics, socket
def free_port():
    s=socket.socket(); s.bind(("127.0.0.1",0)); p=s.getsockname()[1]; s.close(); return p
def run(sinewd, n=200, bulk=1000):
    d=tempfile.mkdtemp(); port=free_port(); mport=free_port()
    p=subprocess.Popen([sinewd,"--data-dir",d,"--api","127.0.0.1:%d"%port,"--mesh","127.0.0.1:%d"%mport,"--mesh-plaintext","--log-level","warn"],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)
    def call(body, src="x.yaml"):
        for _ in range(100):
            try:
                c=http.client.HTTPConnection("127.0.0.1",port,timeout=60); c.request("POST","/api/v1/apply?source="+src,body=body.encode()); r=c.getresponse(); r.read(); c.close(); return r.status
            except OSError: time.sleep(0.05)
    reg="apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec: {selector: {app: reviews}, ports: [{port: 9080}]}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"
    call(reg)
    ts=[]
    for i in range(n):
        vs="apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - {destination: {host: reviews, subset: v1}, weight: %d}\n    - {destination: {host: reviews, subset: v2}, weight: %d}\n"%(i%100, 100-i%100)
        t=time.perf_counter(); st=call(vs); ts.append((time.perf_counter()-t)*1000)
    docs=[]
    for i in range(bulk):
        docs.append("apiVersion: v1\nkind: Service\nmetadata: {name: s%d}\nspec: {selector: {app: s%d}, ports: [{port: 9080}]}\n"%(i,i))
    t=time.perf_counter(); st=call("---\n".join(docs),"bulk.yaml"); bt=(time.perf_counter()-t)*1000
    p.terminate(); p.wait()
    return statistics.median(ts), bt, st
if __name__ == "__main__":
    bins = [a.split("=", 1) for a in sys.argv[1:]] or [["sinewd", "build/release/bin/sinewd"]]
    for rnd in range(3):
        for name, b in bins:
            m, bt, st = run(b)
            print("%s: live apply median %.2f ms, 1000-resource bulk apply %.0f ms (status %s)" % (name, m, bt, st),
                  flush=True)
