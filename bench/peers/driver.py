#!/usr/bin/env python3
"""Peer benchmark driver for BatchMeterUsage clients (stdlib only).

Starts a canned nginx responder on 127.0.0.1, measures the server's own
ceiling with wrk (or ab), then runs every client in bench/clients/ through the
contract described in bench/peers/README.md and writes a Markdown table (plus the raw
numbers as JSON) into bench/peers/results/.

Only 127.0.0.1 is ever contacted. Every run is bounded by a call count and a
timeout.
"""
import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS_DIR = os.path.join(HERE, "clients")
RESULTS_DIR = os.path.join(HERE, "results")
TARGET = "AWSMPMeteringService.BatchMeterUsage"
CONTENT_TYPE = "application/x-amz-json-1.1"
RUN_TIMEOUT_S = 600  # hard bound for any single client process


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# canned payloads
# --------------------------------------------------------------------------
def hour_ts():
    now = int(time.time())
    return now - now % 3600


def request_body(ts):
    recs = [{"Timestamp": ts, "CustomerIdentifier": f"c-{i}", "Dimension": "users",
             "Quantity": 1} for i in range(25)]
    return json.dumps({"UsageRecords": recs, "ProductCode": "prod-123"},
                      separators=(",", ":"))


def canned_response():
    # Fixed content: a BatchMeterUsage result with 25 Success results.
    ts = 1767225600  # 2026-01-01T00:00:00Z; clients do not check it
    results = []
    for i in range(25):
        results.append({
            "MeteringRecordId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-record-{i}")),
            "Status": "Success",
            "UsageRecord": {"CustomerIdentifier": f"c-{i}", "Dimension": "users",
                            "Quantity": 1, "Timestamp": ts},
        })
    body = json.dumps({"Results": results, "UnprocessedRecords": []},
                      separators=(",", ":"))
    assert "'" not in body and "\\" not in body and "$" not in body
    return body


# --------------------------------------------------------------------------
# nginx
# --------------------------------------------------------------------------
NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    server_tokens off;
    default_type {ctype};
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location = / {{
            if ($request_method != POST) {{ return 405; }}
            add_header x-amzn-RequestId 11111111-2222-4333-8444-555555555555 always;
            # nginx caps one config token at 4 KiB: the body is split into variables
{sets}
            return 200 "{vars}";
        }}
    }}
}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(d))
    return kids


class Nginx:
    def __init__(self, binary, tmp, port):
        self.binary, self.tmp, self.port = binary, tmp, port
        self.proc = None
        self.worker = None

    def start(self):
        conf = os.path.join(self.tmp, "nginx.conf")
        body = canned_response()
        parts = [body[i:i + 3000] for i in range(0, len(body), 3000)]
        sets = "\n".join(f"            set $canned{i} '{p}';" for i, p in enumerate(parts))
        names = "".join(f"$canned{i}" for i in range(len(parts)))
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=self.port, ctype=CONTENT_TYPE,
                                      sets=sets, vars=names))
        errlog = os.path.join(self.tmp, "error.log")
        self.proc = subprocess.Popen(
            [self.binary, "-p", self.tmp + "/", "-e", errlog, "-c", conf],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "nginx.stderr"), "w"))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("nginx exited: " +
                                   open(os.path.join(self.tmp, "nginx.stderr")).read())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                kids = children_of(self.proc.pid)
                if kids:
                    self.worker = kids[0]
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("nginx did not come up")

    def pin(self, cpus):
        for pid in (self.proc.pid, self.worker):
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)],
                           check=True, stdout=subprocess.DEVNULL)

    def cpu_ns(self):
        # sum_exec_runtime of the (single-threaded) worker, in ns
        with open(f"/proc/{self.worker}/schedstat") as f:
            return int(f.read().split()[0])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def verify_server(endpoint, body_path, tmp):
    """POST a 25-record body with curl twice on one connection."""
    out = {}
    if shutil.which("curl"):
        hdr = os.path.join(tmp, "curl.hdr")
        r = subprocess.run(
            ["curl", "-sS", "-v", "--max-time", "10", "-D", hdr, "-o", os.path.join(tmp, "curl.body"),
             "-X", "POST", "-H", f"Content-Type: {CONTENT_TYPE}", "-H", f"X-Amz-Target: {TARGET}",
             "--data-binary", "@" + body_path, endpoint + "/",
             "--next", "-sS", "-o", os.devnull, "-X", "POST", "-H", f"Content-Type: {CONTENT_TYPE}",
             "--data-binary", "@" + body_path, endpoint + "/"],
            capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("curl failed: " + r.stderr)
        headers = open(hdr).read()
        body = json.load(open(os.path.join(tmp, "curl.body")))
        out["status_line"] = headers.splitlines()[0].strip()
        m = re.search(r"(?im)^content-type:\s*(\S+)", headers)
        out["content_type"] = m.group(1) if m else None
        out["results"] = len(body["Results"])
        out["keepalive_reused"] = ("Re-using existing connection" in r.stderr
                                   or "Reusing existing" in r.stderr)
        ok = (" 200" in out["status_line"] and out["content_type"] == CONTENT_TYPE
              and out["results"] == 25)
        if not ok:
            raise RuntimeError(f"server check failed: {out}")
    else:
        out["note"] = "curl not found; skipped"
    return out


# --------------------------------------------------------------------------
# server ceiling: wrk (or ab)
# --------------------------------------------------------------------------
def wrk_script(tmp, body):
    p = os.path.join(tmp, "post.lua")
    with open(p, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write("wrk.body = [[" + body + "]]\n")
        f.write(f'wrk.headers["Content-Type"] = "{CONTENT_TYPE}"\n')
        f.write(f'wrk.headers["X-Amz-Target"] = "{TARGET}"\n')
    return p


def run_wrk(endpoint, script, conns, threads, duration, cpus):
    cmd = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "-s", script,
           endpoint + "/"]
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    rc, out, err, wall, ru = run_process(cmd, dict(os.environ), timeout=duration + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if rc != 0 or not m:
        raise RuntimeError("wrk failed: " + out + err)
    reqs = re.search(r"(\d+) requests in", out)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    return {"rps": float(m.group(1)), "requests": int(reqs.group(1)) if reqs else None,
            "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": errs.group(0) if errs else None,
            "tool_cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": wall}


def run_ab(endpoint, body_path, conns, duration, cpus):
    cmd = ["ab", "-q", "-k", "-t", str(duration), "-n", "10000000", "-c", str(conns),
           "-p", body_path, "-T", CONTENT_TYPE, "-H", f"X-Amz-Target: {TARGET}", endpoint + "/"]
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    rc, out, err, wall, ru = run_process(cmd, dict(os.environ), timeout=duration + 60)
    m = re.search(r"Requests per second:\s+([\d.]+)", out)
    if rc != 0 or not m:
        raise RuntimeError("ab failed: " + out + err)
    reqs = re.search(r"Complete requests:\s+(\d+)", out)
    bad = re.search(r"Non-2xx responses:\s+(\d+)", out)
    return {"rps": float(m.group(1)), "requests": int(reqs.group(1)) if reqs else None,
            "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": None,
            "tool_cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": wall}


# --------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------
def discover_clients(names):
    found = sorted(n for n in os.listdir(CLIENTS_DIR)
                   if os.path.isfile(os.path.join(CLIENTS_DIR, n))
                   and os.access(os.path.join(CLIENTS_DIR, n), os.X_OK)
                   and not n.startswith("."))
    # Cold-start references (clients/ref/: a bare runtime, no library) run only when named.
    ref = os.path.join(CLIENTS_DIR, "ref")
    refs = sorted("ref/" + n for n in (os.listdir(ref) if os.path.isdir(ref) else [])
                  if os.access(os.path.join(ref, n), os.X_OK))
    if names:
        missing = [n for n in names if n not in found + refs]
        if missing:
            raise SystemExit(f"unknown client(s) {missing}; have {found + refs}")
        return names
    return found


def client_env(base, endpoint, calls, conc, warmup):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "BENCH_ENDPOINT": endpoint,
        "BENCH_CALLS": str(calls),
        "BENCH_CONCURRENCY": str(conc),
        "BENCH_WARMUP": str(warmup),
        # keep every SDK away from user profiles and the instance metadata service
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.path.join(base, "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(base, "no-aws-credentials"),
    })
    return env


def cpu_snapshot():
    """(busy, steal) seconds summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (v + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / hz, steal / hz


def foreign_pct(snap0, snap1, own_cpu_s, wall_s):
    """CPU used by everything but the measured processes, in % of one core,
    and the hypervisor's steal in % of one core, over wall_s."""
    busy = snap1[0] - snap0[0]
    steal = snap1[1] - snap0[1]
    return ((busy - own_cpu_s) / wall_s * 100, steal / wall_s * 100) if wall_s > 0 else (None, None)


class Gate:
    """Noise control for a shared machine.

    Before a run: wait (at most max_wait s) until the machine has been idle for
    two 0.25 s windows in a row (busy < quiet_threshold % of one core).
    After a run: if the CPU used by others during the run (/proc/stat busy time
    minus the measured processes) exceeds noisy_threshold % of one core, the
    run is marked discarded and done again, at most `retries` times; the last
    attempt is kept whatever it shows (and flagged noisy)."""

    def __init__(self, quiet_threshold, max_wait, noisy_threshold, retries):
        self.quiet_threshold, self.max_wait = quiet_threshold, max_wait
        self.noisy_threshold, self.retries = noisy_threshold, retries

    def wait_quiet(self):
        t0 = time.perf_counter()
        if not self.max_wait:
            return 0.0, None
        calm = 0
        while True:
            a = cpu_snapshot()
            time.sleep(0.25)
            busy = (cpu_snapshot()[0] - a[0]) / 0.25 * 100
            calm = calm + 1 if busy < self.quiet_threshold else 0
            waited = time.perf_counter() - t0
            if calm >= 2:
                return waited, True
            if waited > self.max_wait:
                return waited, False

    def run(self, once):
        attempts = []
        for attempt in range(1 + self.retries):
            waited, quiet = self.wait_quiet()
            snap0 = cpu_snapshot()
            rec = once()
            fo, st = foreign_pct(snap0, cpu_snapshot(), rec["own_cpu_s"], rec["wall_s"])
            rec.update({"other_cpu_pct": fo, "steal_pct": st, "quiet_wait_s": waited,
                        "quiet_before": quiet, "attempt": attempt})
            attempts.append(rec)
            if (self.noisy_threshold is None or fo is None or fo <= self.noisy_threshold
                    or rec.get("failed")):
                break
        for r in attempts[:-1]:
            r["discarded"] = True
        last = attempts[-1]
        if self.noisy_threshold is not None and (last["other_cpu_pct"] or 0) > self.noisy_threshold:
            last["noisy"] = True
        return attempts


def gnu_time():
    """GNU time (Debian package 'time'), used as a small launcher so that the
    client's peak RSS is its own: a child forked or vforked from this Python
    driver inherits the driver's RSS high-water mark across exec."""
    t = shutil.which("time")
    if not t:
        return None
    try:
        r = subprocess.run([t, "--version"], capture_output=True, text=True, timeout=10)
        return t if "GNU" in (r.stdout + r.stderr) else None
    except Exception:  # noqa: BLE001
        return None


TIME_BIN = gnu_time()


class Usage:
    def __init__(self, ru, maxrss_kb):
        self.ru_utime, self.ru_stime, self.ru_maxrss = ru.ru_utime, ru.ru_stime, maxrss_kb


def run_process(cmd, env, cpus=None, timeout=RUN_TIMEOUT_S):
    """Run cmd; return (rc, stdout, stderr, wall_s, usage).

    usage.ru_utime/ru_stime: CPU of the process tree (wait4); usage.ru_maxrss:
    the client's peak RSS in KiB as GNU time reports it (wait4's value, which
    is at least the driver's own RSS, when GNU time is missing)."""
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    rss_path = None
    if TIME_BIN:
        fd, rss_path = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        cmd = [TIME_BIN, "-f", "%M", "-o", rss_path] + cmd
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        maxrss = ru.ru_maxrss
        if rss_path:
            try:
                lines = open(rss_path).read().strip().splitlines()
                maxrss = int(lines[-1])
            except (OSError, ValueError, IndexError):
                pass
            os.unlink(rss_path)
        fo.seek(0)
        fe.seek(0)
        return (p.returncode, fo.read().decode(errors="replace"),
                fe.read().decode(errors="replace"), wall, Usage(ru, maxrss))


def last_json_line(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def client_info(name, env):
    rc, out, err, _, _ = run_process([os.path.join(CLIENTS_DIR, name), "--info"], env, timeout=120)
    info = last_json_line(out) if rc == 0 else None
    return info or {}


def network_check(name, env, tmp, calls=20):
    """`calls` sequential calls under strace: every inet address the process
    connect()s/sends to, and how many TCP connects it made (1 = keep-alive)."""
    if not shutil.which("strace"):
        return {"checked": False}
    trace = os.path.join(tmp, f"strace-{name.replace('/', '-')}.txt")
    e = dict(env, BENCH_CALLS=str(calls), BENCH_WARMUP="0", BENCH_CONCURRENCY="1")
    rc, out, err, _, _ = run_process(
        ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", trace,
         os.path.join(CLIENTS_DIR, name)], e, timeout=120)
    addrs, connects = set(), 0
    with open(trace) as f:
        for line in f:
            found = [m.group(1) or m.group(2) for m in re.finditer(
                r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6?, "([^"]+)"', line)]
            addrs.update(found)
            if found and re.search(r"\bconnect\(", line):
                connects += 1
    bad = sorted(a for a in addrs if not a.startswith("127."))
    return {"checked": True, "rc": rc, "calls": calls, "addresses": sorted(addrs),
            "non_loopback": bad, "inet_connects": connects}


# --------------------------------------------------------------------------
# stats / formatting
# --------------------------------------------------------------------------
def med(xs):
    return statistics.median(xs) if xs else None


def spread_str(xs, fmt="{:.0f}"):
    if not xs:
        return "n/a"
    m = med(xs)
    s = fmt.format(m)
    if len(xs) > 1:
        lo, hi = min(xs), max(xs)
        pct = (hi - lo) / m * 100 if m else 0
        s += f" ({fmt.format(lo)}–{fmt.format(hi)}, ±{pct / 2:.0f}%)"
    return s


def fmt_num(x, fmt="{:.0f}"):
    return "n/a" if x is None else fmt.format(x)


def machine_info(nginx_bin):
    info = {"nproc": os.cpu_count(), "kernel": platform.release()}
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                info["mem_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass

    def ver(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except Exception:  # noqa: BLE001
            return None
    info["nginx"] = ver([nginx_bin, "-v"])
    info["wrk"] = ver(["wrk", "--version"]) if shutil.which("wrk") else None
    info["node"] = ver(["node", "--version"]) if shutil.which("node") else None
    info["driver_python"] = platform.python_version()
    return info


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=int(os.environ.get("BENCH_CALLS", 2000)))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 50)))
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steady-calls", type=int, default=10000,
                    help="extra sequential unpinned run with a long warm-up (JIT steady state); 0 = off")
    ap.add_argument("--steady-warmup", type=int, default=2000)
    ap.add_argument("--cold-runs", type=int, default=7)
    ap.add_argument("--ceiling-seconds", type=int, default=5, help="wrk/ab duration per run")
    ap.add_argument("--clients", default=os.environ.get("BENCH_CLIENTS", ""),
                    help="comma list of names in clients/ (default: all executables)")
    ap.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", 0)))
    ap.add_argument("--client-cpu", default="0")
    ap.add_argument("--server-cpu", default="1")
    ap.add_argument("--skip-ceiling", action="store_true")
    ap.add_argument("--skip-netcheck", action="store_true")
    ap.add_argument("--out", default=None, help="results file (default results/peers-<date>.md)")
    ap.add_argument("--nginx", default=os.environ.get("NGINX", "nginx"))
    ap.add_argument("--render", metavar="JSON", help="only re-render the .md of an earlier run's .json")
    ap.add_argument("--quiet-threshold", type=float, default=10.0,
                    help="machine counts as idle below this %% of one core (0.25 s windows)")
    ap.add_argument("--quiet-wait", type=float, default=30.0,
                    help="max seconds to wait for an idle machine before each run (0 = never wait)")
    ap.add_argument("--noisy-threshold", type=float, default=15.0,
                    help="redo a run when others used more than this %% of one core during it")
    ap.add_argument("--noisy-retries", type=int, default=2)
    args = ap.parse_args()
    if args.render:
        with open(args.render) as f:
            data = json.load(f)
        out_md = os.path.splitext(args.render)[0] + ".md"
        with open(out_md, "w") as f:
            f.write(render(data, args, os.path.basename(args.render)))
        log(f"wrote {out_md}")
        return 0

    nginx_bin = shutil.which(args.nginx)
    if not nginx_bin:
        raise SystemExit("nginx not found (apt-get install -y nginx, or set NGINX)")
    clients = discover_clients([c for c in args.clients.split(",") if c])
    can_pin = (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    all_cpus = f"0-{(os.cpu_count() or 1) - 1}"

    tmp = tempfile.mkdtemp(prefix="metering-bench-")
    port = args.port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    ts = hour_ts()
    body = request_body(ts)
    body_path = os.path.join(tmp, "request.json")
    with open(body_path, "w") as f:
        f.write(body)

    started = dt.datetime.now(dt.timezone.utc)
    data = {"started_utc": started.isoformat(timespec="seconds"), "endpoint_port": port,
            "params": {"calls": args.calls, "warmup": args.warmup, "concurrency": args.concurrency,
                       "repeats": args.repeats, "cold_runs": args.cold_runs,
                       "steady_calls": args.steady_calls, "steady_warmup": args.steady_warmup,
                       "ceiling_seconds": args.ceiling_seconds,
                       "quiet_threshold": args.quiet_threshold, "quiet_wait": args.quiet_wait,
                       "noisy_threshold": args.noisy_threshold, "noisy_retries": args.noisy_retries,
                       "client_cpu": args.client_cpu, "server_cpu": args.server_cpu,
                       "request_body_bytes": len(body),
                       "response_body_bytes": len(canned_response())},
            "machine": machine_info(nginx_bin), "ceiling": [], "clients": {}}

    server = Nginx(nginx_bin, tmp, port)
    server.start()
    try:
        log(f"nginx on {endpoint} (master {server.proc.pid}, worker {server.worker})")
        data["server_check"] = verify_server(endpoint, body_path, tmp)
        log("server check:", data["server_check"])

        gate = Gate(args.quiet_threshold, args.quiet_wait, args.noisy_threshold, args.noisy_retries)

        # ---- server ceiling ------------------------------------------------
        if not args.skip_ceiling:
            tool = "wrk" if shutil.which("wrk") else ("ab" if shutil.which("ab") else None)
            data["ceiling_tool"] = tool
            if tool:
                script = wrk_script(tmp, body) if tool == "wrk" else None
                configs = [("unpinned", 1), ("unpinned", 8)]
                if can_pin:
                    configs += [("pinned", 1), ("pinned", 8)]
                for rep in range(args.repeats):
                    for pinmode, conns in configs:
                        pinned = pinmode == "pinned"
                        cpus = args.client_cpu if pinned else None
                        threads = 1 if (pinned or conns == 1) else 2

                        def once():
                            server.pin(args.server_cpu if pinned else all_cpus)
                            c0 = server.cpu_ns()
                            if tool == "wrk":
                                r = run_wrk(endpoint, script, conns, threads, args.ceiling_seconds, cpus)
                            else:
                                r = run_ab(endpoint, body_path, conns, args.ceiling_seconds, cpus)
                            srv_ns = server.cpu_ns() - c0
                            r.update({"pin": pinmode, "conns": conns, "threads": threads, "rep": rep,
                                      "own_cpu_s": r["tool_cpu_s"] + srv_ns / 1e9,
                                      "server_cpu_us_per_req": srv_ns / 1000 / r["requests"]
                                      if r.get("requests") else None})
                            return r
                        for r in gate.run(once):
                            data["ceiling"].append(r)
                            log(f"ceiling {tool} {pinmode} c={conns}: {r['rps']:.0f} req/s "
                                f"(other CPU {r['other_cpu_pct']:.0f}%"
                                f"{', discarded' if r.get('discarded') else ''})")
                server.pin(all_cpus)

        # ---- clients ---------------------------------------------------------
        base_env = client_env(tmp, endpoint, args.calls, 1, args.warmup)
        for name in clients:
            info = client_info(name, base_env)
            entry = {"info": info, "runs": [], "cold": []}
            if not args.skip_netcheck and not name.startswith("ref/"):
                entry["network"] = network_check(name, base_env, tmp)
                log(f"{name} network check: {entry['network']}")
            data["clients"][name] = entry

        # (kind, pinning, concurrency, calls, warmup)
        C, W = args.calls, args.warmup
        modes = [("seq", "pinned", 1, C, W), ("seq", "unpinned", 1, C, W),
                 ("conc", "unpinned", args.concurrency, C, W),
                 ("conc", "pinned", args.concurrency, C, W)]
        if args.steady_calls:
            modes.append(("steady", "unpinned", 1, args.steady_calls, args.steady_warmup))
        if not can_pin:
            modes = [m for m in modes if m[1] != "pinned"]

        # cold start: interleave clients so drift hits all of them alike
        server.pin(all_cpus)
        cold_gate = Gate(args.quiet_threshold, args.quiet_wait, None, 0)
        for rep in range(args.cold_runs):
            for name in clients:
                def once():
                    env = client_env(tmp, endpoint, 1, 1, 0)
                    rc, out, err, wall, ru = run_process([os.path.join(CLIENTS_DIR, name)], env)
                    rec = {"rep": rep, "rc": rc, "wall_s": wall, "maxrss_kb": ru.ru_maxrss,
                           "cpu_s": ru.ru_utime + ru.ru_stime, "own_cpu_s": ru.ru_utime + ru.ru_stime,
                           "json": last_json_line(out)}
                    if rc != 0:
                        rec["stderr"] = err[-2000:]
                        log(f"{name} cold run failed rc={rc}: {err[-500:]}")
                    return rec
                data["clients"][name]["cold"].extend(cold_gate.run(once))
            log(f"cold-start round {rep + 1}/{args.cold_runs} done")

        # throughput: repeats outermost, then clients, then modes
        for rep in range(args.repeats):
            for name in clients:
                if name.startswith("ref/"):  # a bare runtime: cold start only
                    continue
                for kind, pinmode, conc, calls, warmup in modes:
                    pinned = pinmode == "pinned"

                    def once():
                        server.pin(args.server_cpu if pinned else all_cpus)
                        env = client_env(tmp, endpoint, calls, conc, warmup)
                        c0 = server.cpu_ns()
                        rc, out, err, wall, ru = run_process(
                            [os.path.join(CLIENTS_DIR, name)], env,
                            cpus=args.client_cpu if pinned else None)
                        srv_ns = server.cpu_ns() - c0
                        j = last_json_line(out)
                        rec = {"rep": rep, "kind": kind, "pin": pinmode, "concurrency": conc,
                               "calls": calls, "warmup": warmup, "rc": rc, "wall_s": wall,
                               "maxrss_kb": ru.ru_maxrss,
                               "proc_cpu_s": ru.ru_utime + ru.ru_stime, "json": j,
                               "own_cpu_s": ru.ru_utime + ru.ru_stime + srv_ns / 1e9,
                               "server_cpu_us_per_call": srv_ns / 1000 / (calls + warmup),
                               "loadavg": open("/proc/loadavg").read().split()[0]}
                        if rc != 0 or not j:
                            rec["stderr"] = err[-2000:]
                            rec["failed"] = True
                            log(f"{name} {kind}/{pinmode} FAILED rc={rc}: {err[-800:]}")
                        return rec
                    for rec in gate.run(once):
                        data["clients"][name]["runs"].append(rec)
                        if rec.get("json"):
                            log(f"{name} {kind}/{pinmode} c={conc} rep {rep + 1}: "
                                f"{rec['json']['calls_per_sec']:.0f} calls/s (other CPU "
                                f"{rec['other_cpu_pct']:.0f}%, waited {rec['quiet_wait_s']:.1f}s"
                                f"{', discarded' if rec.get('discarded') else ''})")
    finally:
        server.pin(all_cpus) if server.worker else None
        server.stop()

    data["finished_utc"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    os.makedirs(RESULTS_DIR, exist_ok=True)
    out_md = args.out or os.path.join(RESULTS_DIR, f"peers-{started.date().isoformat()}.md")
    out_json = os.path.splitext(out_md)[0] + ".json"
    with open(out_json, "w") as f:
        json.dump(data, f, indent=1)
    with open(out_md, "w") as f:
        f.write(render(data, args, os.path.basename(out_json)))
    log(f"wrote {os.path.relpath(out_md)} and {os.path.relpath(out_json)}")
    shutil.rmtree(tmp, ignore_errors=True)
    failed = [n for n, e in data["clients"].items()
              if any(r["rc"] != 0 or not r["json"] for r in e["runs"] + e["cold"])]
    if failed:
        log("clients with failed runs:", failed)
        return 1
    return 0


MODE_KEYS = (("seq", "pinned"), ("seq", "unpinned"), ("conc", "unpinned"), ("conc", "pinned"),
             ("steady", "unpinned"))


def summarize_client(e):
    s = {}
    ok = [r for r in e["runs"] if r["rc"] == 0 and r["json"] and not r.get("discarded")]
    for kind, pin in MODE_KEYS:
        rs = [r for r in ok if r["kind"] == kind and r["pin"] == pin]
        if not rs:
            continue
        cps = [r["json"]["calls_per_sec"] for r in rs]
        cpu = []
        est = False
        for r in rs:
            if r["json"].get("cpu_seconds") is not None:
                cpu.append(r["json"]["cpu_seconds"] / r["json"]["calls"] * 1e6)
        if not cpu:  # fallback: whole-process CPU minus a cold start, over all calls
            cold_cpu = med([c["cpu_s"] for c in e["cold"] if c["rc"] == 0]) or 0
            cpu = [(r["proc_cpu_s"] - cold_cpu) / (r["calls"] + r["warmup"] - 1) * 1e6 for r in rs]
            est = True
        s[(kind, pin)] = {"cps": cps, "cpu_us": cpu, "cpu_est": est,
                          "srv_us": [r["server_cpu_us_per_call"] for r in rs],
                          "noisy": sum(1 for r in rs if r.get("noisy")),
                          "other": [r.get("other_cpu_pct") for r in rs
                                    if r.get("other_cpu_pct") is not None],
                          "rss_mb": [r["maxrss_kb"] * 1024 / 1e6 for r in rs]}
    cold = [c for c in e["cold"] if c["rc"] == 0]
    s["cold_ms"] = [c["wall_s"] * 1000 for c in cold]
    s["cold_rss_mb"] = [c["maxrss_kb"] * 1024 / 1e6 for c in cold]
    s["cold_cpu_ms"] = [c["cpu_s"] * 1000 for c in cold]
    return s


def render(data, args, json_name):
    p, m = data["params"], data["machine"]
    L = []
    L.append(f"# Peer anchors: BatchMeterUsage clients ({data['started_utc'][:10]})\n")
    L.append(f"Run {data['started_utc']} → {data['finished_utc']} (UTC). Raw numbers: `{json_name}`.\n")
    L.append(f"Machine: {m.get('cpu')} × {m.get('nproc')} CPUs, {m.get('mem_gib')} GiB, "
             f"kernel {m.get('kernel')}; {m.get('nginx')}; {m.get('wrk') or ''}; node {m.get('node')}.\n")
    L.append(f"Workload: BatchMeterUsage, 25 records/call ({p['request_body_bytes']} B request, "
             f"{p['response_body_bytes']} B canned response), {p['calls']} timed calls after "
             f"{p['warmup']} warm-up calls per process, {p['concurrency']} in flight for the concurrent "
             f"runs; every throughput figure is the median of {p['repeats']} processes with "
             f"(min–max, ±half-range %); cold start is the median of {p['cold_runs']} fresh processes. "
             f"'Pinned' = client on CPU {p['client_cpu']}, nginx worker on CPU {p['server_cpu']} "
             f"(taskset); 'unpinned' = both free on all CPUs.\n")
    sc = data.get("server_check", {})
    if sc:
        L.append(f"Server check (curl): `{sc.get('status_line')}`, Content-Type "
                 f"`{sc.get('content_type')}`, {sc.get('results')} results, keep-alive reuse: "
                 f"{sc.get('keepalive_reused')}.\n")

    if data["ceiling"]:
        L.append(f"## Server ceiling ({data.get('ceiling_tool')}, {p['ceiling_seconds']} s per run, "
                 f"same 25-record POST)\n")
        L.append("| connections | pinning | req/s median (min–max) | nginx CPU µs/req | other CPU % (max) |")
        L.append("|---|---|---|---|---|")
        for pin in ("pinned", "unpinned"):
            for conns in (1, 8):
                rs = [r for r in data["ceiling"] if r["pin"] == pin and r["conns"] == conns
                      and not r.get("discarded")]
                if rs:
                    L.append(f"| {conns} | {pin} | {spread_str([r['rps'] for r in rs])} | "
                             f"{fmt_num(med([r['server_cpu_us_per_req'] for r in rs if r['server_cpu_us_per_req']]), '{:.1f}')} | "
                             f"{fmt_num(max(0, max([r['other_cpu_pct'] for r in rs])))} |")
        L.append("")

    L.append("## Peers\n")
    L.append("| peer | version | seq calls/s pinned | seq calls/s unpinned | "
             f"{p['concurrency']}-conc calls/s unpinned | {p['concurrency']}-conc calls/s pinned | "
             "client CPU µs/call (seq pinned) | cold start ms | peak RSS MB cold / seq run | footprint MB |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    sums = {}
    for name, e in data["clients"].items():
        s = summarize_client(e)
        sums[name] = s
        info = e["info"]

        def c(key):
            if key not in s:
                return "n/a"
            return spread_str(s[key]["cps"]) + (" †" if s[key]["noisy"] else "")
        sp = s.get(("seq", "pinned")) or s.get(("seq", "unpinned"))
        cpu = (spread_str(sp["cpu_us"]) + (" (est.)" if sp["cpu_est"] else "")) if sp else "n/a"
        fp = info.get("footprint_bytes")
        run_rss = med(s[("seq", "unpinned")]["rss_mb"]) if ("seq", "unpinned") in s else None
        L.append(f"| {name} | {info.get('version', '?')} | {c(('seq', 'pinned'))} | "
                 f"{c(('seq', 'unpinned'))} | {c(('conc', 'unpinned'))} | {c(('conc', 'pinned'))} | "
                 f"{cpu} | {spread_str(s['cold_ms'])} | {fmt_num(med(s['cold_rss_mb']), '{:.1f}')} / "
                 f"{fmt_num(run_rss, '{:.1f}')} | "
                 f"{fmt_num(fp / 1e6 if fp else None, '{:.1f}')} |")
    L.append("")
    L.append("MB = 10^6 bytes. Peak RSS: GNU time's %M of the client process (cold = one-call process, "
             "seq run = the sequential unpinned run). Client CPU µs/call: user+sys of the client "
             "process over the timed calls, all its threads, client on one core. Footprint: " + "; ".join(
        f"{n}: {e['info'].get('footprint_what', 'n/a')}"
        + (f" ({e['info'].get('footprint_files')} files)" if e['info'].get('footprint_files') else "")
        for n, e in data["clients"].items()) + ".\n")

    # noise control summary
    allruns = data["ceiling"] + [r for e in data["clients"].values() for r in e["runs"] + e["cold"]]
    disc = sum(1 for r in allruns if r.get("discarded"))
    noisy = sum(1 for r in allruns if r.get("noisy"))
    waited = sum(r.get("quiet_wait_s") or 0 for r in allruns)
    unquiet = sum(1 for r in allruns if r.get("quiet_before") is False)
    L.append(f"Noise control: before each run the driver waited for two idle 0.25 s windows "
             f"(< {p.get('quiet_threshold')} % of one core busy; at most {p.get('quiet_wait')} s; "
             f"{waited:.0f} s waited in all, {unquiet} run(s) started without an idle machine); "
             f"a throughput/ceiling run during which other processes used more than "
             f"{p.get('noisy_threshold')} % of one core was done again (at most "
             f"{p.get('noisy_retries')} times): {disc} run(s) discarded, {noisy} kept although "
             f"noisy (marked †). Discarded runs stay in the JSON.\n")

    L.append("## Details\n")
    L.append("CPU is user+sys of the client process during the timed calls (as the client reports it); "
             "server CPU is the nginx worker's run time over the whole client process "
             "(warm-up included) divided by all its calls; peak RSS is GNU time's %M for the client. "
             "'Other CPU' is what the rest of the machine used during the run (all CPUs busy time "
             "from /proc/stat minus client and nginx), in % of one core: a rough noise indicator "
             "(tick-based, ±10 ms per run, so values under ~20 % on sub-second runs mean nothing). "
             "The long-warm-up row shows how far a JIT (V8) or cache warm-up moves the "
             f"{p['warmup']}-warm-up figures.\n")
    L.append("| peer | mode | calls/s | client CPU µs/call | nginx CPU µs/call | peak RSS MB | other CPU % (max) |")
    L.append("|---|---|---|---|---|---|---|")
    for name, s in sums.items():
        for key in MODE_KEYS:
            if key not in s:
                continue
            v = s[key]
            label = {"seq": f"sequential, {key[1]}",
                     "conc": f"{p['concurrency']} in flight, {key[1]}",
                     "steady": f"sequential, {key[1]}, {p.get('steady_calls')} calls after "
                               f"{p.get('steady_warmup')} warm-up"}[key[0]]
            L.append(f"| {name} | {label} | {spread_str(v['cps'])}{' †' if v['noisy'] else ''} | "
                     f"{spread_str(v['cpu_us'])}{' (est.)' if v['cpu_est'] else ''} | "
                     f"{fmt_num(med(v['srv_us']), '{:.1f}')} | {fmt_num(med(v['rss_mb']), '{:.1f}')} | "
                     f"{fmt_num(max(0, max(v['other'])) if v['other'] else None)} |")
    L.append("")
    L.append("| peer | cold start ms median (min–max) | cold CPU ms (user+sys) | peak RSS MB (min–max) |")
    L.append("|---|---|---|---|")
    for name, s in sums.items():
        L.append(f"| {name} | {spread_str(s['cold_ms'])} | {fmt_num(med(s['cold_cpu_ms']))} | "
                 f"{spread_str(s['cold_rss_mb'], '{:.1f}')} |")
    L.append("")
    L.append("Versions:\n")
    for name, e in data["clients"].items():
        L.append(f"- {name}: `{json.dumps(e['info'], sort_keys=True)}`")
    L.append("")
    nets = {n: e.get("network") for n, e in data["clients"].items() if e.get("network")}
    if nets:
        L.append("Network check (sequential calls under `strace -f -e connect,sendto,sendmsg`: "
                 "inet addresses seen, TCP connects made):\n")
        for n, r in nets.items():
            if r.get("checked"):
                L.append(f"- {n}: {', '.join(r['addresses']) or 'none'}; "
                         f"{r['inet_connects']} connect(s) for {r['calls']} calls"
                         + (f" — NON-LOOPBACK: {r['non_loopback']}" if r["non_loopback"] else ""))
            else:
                L.append(f"- {n}: not checked (no strace)")
        L.append("")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
