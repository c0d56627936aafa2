#!/usr/bin/python3
"""Supervisor of one local desktop env (harness/env/providers/local).

Started by the Node provider, one per env, as `/usr/bin/python3 envinit.py CONFIG_JSON_PATH`.
- Becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so every process of the env, even one that
  double-forks or calls setsid (oosplash -> soffice, Chromium's crashpad), stays in its process tree and is
  reaped here (the sandbox's PID 1 does not reap orphans).
- Starts Xvfb (-displayfd), a D-Bus session bus and openbox, then prints {"event":"ready",...}.
- Reads JSON-line commands on stdin: spawn / signal / shutdown. Prints JSON-line events on stdout.
- On shutdown, SIGTERM, or stdin EOF (the Node process died): kills every descendant (TERM, then KILL), exits.
"""
import ctypes
import json
import os
import select
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36

cfg = json.load(open(sys.argv[1]))
ENV = dict(cfg["env"])  # the env's full environment (DISPLAY added below)
RUN = cfg["runDir"]
W, H, D = cfg.get("width", 1920), cfg.get("height", 1080), cfg.get("depth", 24)

def emit(obj):
    try:
        os.write(1, (json.dumps(obj) + "\n").encode())
    except OSError:
        pass


def log(msg):
    try:
        os.write(2, ("envinit: %s\n" % msg).encode())
    except OSError:
        pass


try:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log("prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d" % ctypes.get_errno())
except Exception as e:  # pragma: no cover
    log("no prctl: %s" % e)

# id -> pid and pid -> id for the processes we spawned on request (or internally)
by_pid = {}
SELF = os.getpid()


def spawn(argv, env=None, cwd=None, stdout=None, stderr=None, stdin=None, pass_fds=(), new_pgrp=True):
    """fork+exec; returns pid or raises OSError with the exec error."""
    r, w = os.pipe()
    os.set_inheritable(w, False)
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            if new_pgrp:
                os.setpgid(0, 0)
            fd_in = os.open(stdin or os.devnull, os.O_RDONLY)
            fd_out = os.open(stdout or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            fd_err = fd_out if (stderr and stderr == stdout) else os.open(stderr or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd_in, 0)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            keep = set(pass_fds) | {0, 1, 2, w}
            for fd in os.listdir("/proc/self/fd"):
                n = int(fd)
                if n not in keep:
                    try:
                        os.close(n)
                    except OSError:
                        pass
            for fd in pass_fds:
                os.set_inheritable(fd, True)
            if cwd:
                os.chdir(cwd)
            os.execvpe(argv[0], argv, env if env is not None else ENV)
        except BaseException as e:  # report to the parent (worded like Python's subprocess), then die
            try:
                if isinstance(e, OSError) and e.errno:
                    msg = "[Errno %d] %s: %r" % (e.errno, e.strerror, argv[0])
                else:
                    msg = "%s: %s" % (type(e).__name__, e)
                os.write(w, msg.encode()[:2000])
            finally:
                os._exit(127)
    os.close(w)
    err = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        err += chunk
    os.close(r)
    if err:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        raise OSError(err.decode(errors="replace"))
    return pid


def all_descendants():
    """pids of all live descendants of this process (walks /proc ppid links)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                s = f.read().decode(errors="replace")
            rest = s[s.rindex(")") + 2:].split()
            state, ppid = rest[0], int(rest[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append((int(d), state))
    res, stack = [], [SELF]
    while stack:
        p = stack.pop()
        for c, st in children.get(p, []):
            res.append((c, st))
            stack.append(c)
    return res


def tree_of(pid):
    res = [pid]
    live = {p for p, st in all_descendants()}
    ppid = {}
    for p in live:
        try:
            with open("/proc/%d/stat" % p, "rb") as f:
                s = f.read().decode(errors="replace")
            ppid[p] = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            pass
    changed = True
    while changed:
        changed = False
        for p, pp in ppid.items():
            if pp in res and p not in res:
                res.append(p)
                changed = True
    return res


def reap():
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        name = by_pid.pop(pid, None)
        if name is not None:
            code = os.waitstatus_to_exitcode(status)
            emit({"event": "exit", "id": name, "pid": pid, "code": code})


def kill_everything(grace=2.0):
    desc = [p for p, st in all_descendants() if st != "Z"]
    for p in desc:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline:
        reap()
        if not [p for p, st in all_descendants() if st != "Z"]:
            break
        time.sleep(0.05)
    for _ in range(20):
        left = [p for p, st in all_descendants() if st != "Z"]
        if not left:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        reap()
    # final reap of zombies
    t = time.time() + 1.0
    while time.time() < t:
        reap()
        if not all_descendants():
            break
        time.sleep(0.02)


stopping = False


def shutdown(reason):
    global stopping
    if stopping:
        return
    stopping = True
    kill_everything()
    emit({"event": "bye", "reason": reason})
    os._exit(0)


def on_term(signum, frame):
    shutdown("signal %d" % signum)


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
signal.signal(signal.SIGHUP, on_term)
signal.signal(signal.SIGPIPE, signal.SIG_IGN)
wake_r, wake_w = os.pipe()
os.set_blocking(wake_r, False)
os.set_blocking(wake_w, False)
signal.set_wakeup_fd(wake_w)
signal.signal(signal.SIGCHLD, lambda s, f: None)

# ---- start Xvfb, D-Bus, openbox ----------------------------------------------------------------
t0 = time.time()
dr, dw = os.pipe()
xargs = ["Xvfb", "-displayfd", str(dw), "-screen", "0", "%dx%dx%d" % (W, H, D), "-nolisten", "tcp",
         "+extension", "XTEST", "+extension", "RANDR", "-dpi", "96", "-noreset"]
try:
    xpid = spawn(xargs, env=ENV, stdout=os.path.join(RUN, "xvfb.log"), stderr=os.path.join(RUN, "xvfb.log"), pass_fds=(dw,))
except OSError as e:
    emit({"event": "error", "message": "Xvfb: %s" % e})
    sys.exit(1)
by_pid[xpid] = "xvfb"
os.close(dw)
buf = b""
deadline = time.time() + 15
while b"\n" not in buf and time.time() < deadline:
    rl, _, _ = select.select([dr], [], [], 0.2)
    if rl:
        c = os.read(dr, 64)
        if not c:
            break
        buf += c
os.close(dr)
if b"\n" not in buf:
    emit({"event": "error", "message": "Xvfb did not report a display (see %s/xvfb.log)" % RUN})
    kill_everything(0.5)
    sys.exit(1)
display = int(buf.strip())
ENV["DISPLAY"] = ":%d" % display

bus_path = os.path.join(RUN, "bus")
ENV["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=" + bus_path
try:
    os.unlink(bus_path)
except FileNotFoundError:
    pass
dpid = spawn(["dbus-daemon", "--session", "--nofork", "--nopidfile", "--address=unix:path=" + bus_path],
             env=ENV, stdout=os.path.join(RUN, "dbus.log"), stderr=os.path.join(RUN, "dbus.log"))
by_pid[dpid] = "dbus"
for _ in range(200):
    if os.path.exists(bus_path):
        break
    time.sleep(0.01)

wm = cfg.get("wm", ["openbox"])
if wm:
    opid = spawn(wm, env=ENV, stdout=os.path.join(RUN, "wm.log"), stderr=os.path.join(RUN, "wm.log"))
    by_pid[opid] = "wm"

for i, argv in enumerate(cfg.get("init", [])):  # e.g. xsetroot
    try:
        p = spawn(argv, env=ENV)
        by_pid[p] = "init%d" % i
    except OSError as e:
        log("init %s: %s" % (argv, e))

emit({"event": "ready", "display": display, "pid": SELF, "xvfb": xpid, "dbus": bus_path,
      "ms": int((time.time() - t0) * 1000)})

# ---- command loop ------------------------------------------------------------------------------
stdin_buf = b""


def handle(cmd):
    op = cmd.get("op")
    if op == "spawn":
        cid = str(cmd["id"])
        env = dict(ENV)
        env.update(cmd.get("env") or {})
        argv = cmd["argv"]
        try:
            pid = spawn(argv, env=env, cwd=cmd.get("cwd"), stdout=cmd.get("stdout"), stderr=cmd.get("stderr"),
                        stdin=cmd.get("stdin"))
        except OSError as e:
            emit({"event": "spawn-error", "id": cid, "message": str(e)})
            return
        by_pid[pid] = cid
        emit({"event": "spawned", "id": cid, "pid": pid})
    elif op == "signal":
        sig = getattr(signal, cmd.get("signal", "SIGTERM"), signal.SIGTERM)
        target = None
        for p, n in by_pid.items():
            if n == str(cmd["id"]):
                target = p
        if target is None:
            return
        pids = tree_of(target) if cmd.get("tree", True) else [target]
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
    elif op == "shutdown":
        shutdown("shutdown")
    elif op == "ping":
        emit({"event": "pong", "n": cmd.get("n")})


while True:
    try:
        rl, _, _ = select.select([0, wake_r], [], [], 1.0)
    except InterruptedError:
        rl = []
    if wake_r in rl:
        try:
            while os.read(wake_r, 512):
                pass
        except BlockingIOError:
            pass
    reap()
    if 0 in rl:
        chunk = os.read(0, 65536)
        if not chunk:
            shutdown("stdin closed")
        stdin_buf += chunk
        while b"\n" in stdin_buf:
            line, stdin_buf = stdin_buf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                handle(json.loads(line))
            except Exception as e:
                emit({"event": "error", "message": "bad command: %s" % e})
