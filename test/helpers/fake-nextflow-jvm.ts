// The body of the fake "Nextflow JVM": a python3 child that does, as itself (its pid, its uid), what the JVM
// does on disk, one JSON command per stdin line, answering `ok` or `err <reason>` per line.
// python3 because its fcntl module takes real POSIX record locks (lockf), as Java's FileChannel.tryLock does.
import { existsSync } from 'node:fs'

/** The system python starts ten times faster than a pyenv shim, and other users can run it. */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

export const JVM_SCRIPT = String.raw`
import fcntl, json, os, random, sys, time

log_fd = None
session_fd = None

def ok(): sys.stdout.write('ok\n'); sys.stdout.flush()

def rotate(path):
    # logback FixedWindowRollingPolicy (1..9) with RollOnStartupPolicy: roll only a non-empty file
    global log_fd
    if os.path.exists(path) and os.path.getsize(path) > 0:
        for i in range(8, 0, -1):
            if os.path.exists('%s.%d' % (path, i)):
                os.replace('%s.%d' % (path, i), '%s.%d' % (path, i + 1))
        os.replace(path, path + '.1')
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

def log(level, logger, msg, thread, ts=None):
    # ts: a date the test wrote in a JVM's locale (test/fixtures/nextflow-locales); else the C locale's
    now = time.time()
    ts = ts or time.strftime('%b-%d %H:%M:%S', time.localtime(now)) + '.%03d' % int((now % 1) * 1000)
    os.write(log_fd, ('%s [%s] %-5s %s - %s\n' % (ts, thread, level, logger, msg)).encode())

def with_history_lock(history, action):
    # HistoryFile.withFileLock: tryLock on <history>.lock in a loop with random sleeps under 75 ms for up to
    # 1 s; the lock file is deleted after every operation
    os.makedirs(os.path.dirname(history), exist_ok=True)
    lock_path = history + '.lock'
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.time() + 1
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.time() > deadline: raise RuntimeError('cannot lock ' + lock_path)
                time.sleep(random.random() * 0.075)
        action()
    finally:
        os.close(fd)
        try: os.unlink(lock_path)
        except FileNotFoundError: pass

def history_append(history, line):
    def act():
        with open(history, 'a') as f: f.write(line + '\n')
    with_history_lock(history, act)

def history_update(history, run_name, status, duration):
    # HistoryFile.update0: read all, set duration and status on the run's lines, rewrite the whole file in
    # place (truncate and write, no rename)
    def act():
        with open(history) as f: lines = f.read().split('\n')
        out = []
        for line in lines:
            cols = [c for c in line.split('\t') if c != '']
            if len(cols) == 7 and cols[2] == run_name:
                cols[1] = duration
                cols[3] = status
                line = '\t'.join(cols)
            out.append(line)
        with open(history, 'w') as f: f.write('\n'.join(out))
    with_history_lock(history, act)

def session_lock(path):
    global session_fd
    os.makedirs(os.path.dirname(path), exist_ok=True)
    session_fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(session_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

def session_unlock():
    global session_fd
    if session_fd is not None:
        fcntl.lockf(session_fd, fcntl.LOCK_UN)
        os.close(session_fd)
        session_fd = None

def write_file(path, text):
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'w') as f: f.write(text)

sys.stdout.write('ready\n'); sys.stdout.flush()
for raw in sys.stdin:
    cmd = json.loads(raw)
    op = cmd['op']
    try:
        if op == 'rotate': rotate(cmd['path'])
        elif op == 'log': log(cmd['level'], cmd['logger'], cmd['msg'], cmd.get('thread', 'main'), cmd.get('ts'))
        elif op == 'history-append': history_append(cmd['history'], cmd['line'])
        elif op == 'history-update': history_update(cmd['history'], cmd['runName'], cmd['status'], cmd['duration'])
        elif op == 'session-lock': session_lock(cmd['path'])
        elif op == 'session-unlock': session_unlock()
        elif op == 'write': write_file(cmd['path'], cmd['text'])
        elif op == 'exit':
            ok()
            os._exit(cmd['code'])
        else: raise RuntimeError('unknown op ' + op)
        ok()
    except Exception as e:
        sys.stdout.write('err %s\n' % str(e).replace('\n', ' ')); sys.stdout.flush()
`
