/*
 * hostile: a Purser worker (protocol v1) that misbehaves on purpose, for the supervisor's
 * tests. The behaviour is chosen with the environment variable HOSTILE_MODE (default
 * "echo"); see the mode table at the bottom. Unless a mode says otherwise the worker
 * answers `initialize` correctly (plugin "hostile") and misbehaves when it gets `run`.
 *
 * Common behaviour, all modes:
 *   initialize -> correct result (protocolVersion 1; -32001 if asked for another version)
 *   ping       -> {}
 *   shutdown   -> {} then exit 0           (ignoreterm: answers, then never exits)
 *   cancel     -> if a run is still unanswered (and the runId matches), answer it -32800
 *   EOF        -> exit 0                   (ignoreterm: never exits)
 * Modes that "pause" stop reading stdin for good, so they keep pausing whatever comes.
 *
 * Other environment: HOSTILE_PIDFILE (grandchild modes), HOSTILE_SLEEP_MS (sleep mode),
 * HOSTILE_CHILDREN, HOSTILE_BURN_MS and HOSTILE_DETACH (cpufork).
 * Output goes to fd 1 with write(2), one write per line where possible.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "CWorkerScan.h"
#include "hostile.h"

extern char **environ;

static int answer_version = 1;   /* protocolVersion put in the initialize result */
static int never_exit = 0;       /* ignoreterm: shutdown and EOF do not end the process */
/* Conformance breakers: each breaks one rule of the SPEC and keeps every other. */
static int ignore_ping = 0;      /* noping: ping requests are never answered */
static int ignore_cancel = 0;    /* nocancel: cancel is ignored (though capabilities.cancel says otherwise) */
static int unknown_code = -32601; /* wrongcode: the error code for an unknown method */
static int stay_on_eof = 0;      /* noeofexit: EOF on stdin does not end the process (shutdown does) */
static int any_version = 0;      /* acceptv2: initialize is answered v1 whatever version it asks for */
static int silent_shutdown = 0;  /* silentshutdown: shutdown exits without answering */
static long long sleep_default_ms = 200; /* the sleep mode's wait without HOSTILE_SLEEP_MS */

static void die(const char *msg) {
    (void)!write(2, msg, strlen(msg));
    _exit(1);
}

static void pause_forever(void) {
    for (;;) pause();
}

/* ======================= output ======================= */

static void write_all(const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(1, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die("hostile: write to stdout failed\n");
        }
        p += w;
        n -= (size_t)w;
    }
}

static ws_buf out;

static void out_put(const char *s, size_t n) {
    if (ws_buf_put(&out, s, n) != 0) die("hostile: out of memory\n");
}

void out_str(const char *s) { out_put(s, strlen(s)); }

/* fmt holds one %lld and at most a few other characters. */
static void out_fmt(const char *fmt, long long v) {
    char buf[48];
    int n = snprintf(buf, sizeof buf, fmt, v);
    out_put(buf, (size_t)n);
}

/* A JSON string: '"' and '\\' escaped, control bytes as \u00XX, bytes >= 0x80 as they are. */
static void out_json_string(const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    out_put("\"", 1);
    size_t run = 0; /* bytes that need no escaping, flushed in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        out_put(s + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            out_put(esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            out_put(esc, 6);
        }
    }
    out_put(s + n - run, run);
    out_put("\"", 1);
}

static void out_json_cstring_or_null(const char *s) {
    if (s) out_json_string(s, strlen(s));
    else out_str("null");
}

/* Ends the line built in `out` and writes it. */
static void out_send(void) {
    out_put("\n", 1);
    write_all(out.data, out.len);
    out.len = 0;
}

static void send_result(const char *id, const char *result) {
    out.len = 0;
    out_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out_str(id);
    out_str(",\"result\":");
    out_str(result);
    out_str("}");
    out_send();
}

static void send_error(const char *id, int code, const char *message) {
    out.len = 0;
    out_str("{\"jsonrpc\":\"2.0\",\"id\":");
    out_str(id);
    out_str(",\"error\":{\"code\":");
    out_fmt("%lld", code);
    out_str(",\"message\":");
    out_json_string(message, strlen(message));
    out_str("}}");
    out_send();
}

static void send_notification(const char *method, const char *params) {
    out.len = 0;
    out_str("{\"jsonrpc\":\"2.0\",\"method\":\"");
    out_str(method);
    out_str("\",\"params\":");
    out_str(params);
    out_str("}");
    out_send();
}

/* ======================= spans (the JSON scanning is in CWorkerScan) ======================= */

static char *dup_span(const char *s, const char *e) {
    char *d = malloc((size_t)(e - s) + 1);
    if (!d) die("hostile: out of memory\n");
    memcpy(d, s, (size_t)(e - s));
    d[e - s] = '\0';
    return d;
}

/* ======================= stdin lines ======================= */

/* The reader is CWorkerScan's, shared with cworker; "\r\n" is tolerated, an over-long line
 * dropped, and a timeout lets the sleep mode serve stdin while it waits. A read error ends
 * the worker as EOF does. */
static ws_lines in = {.max_line = WS_DEFAULT_MAX_LINE, .who = "hostile"};

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ======================= requests and the pending run ======================= */

typedef struct {
    const char *line, *end;     /* the whole message */
    const char *method;         /* NUL-terminated copy or NULL */
    char *id;                   /* raw JSON id token (NUL-terminated copy) or NULL */
    const char *params, *params_end; /* raw params value or NULL */
} Message;

/* The run being worked on: its request id and raw params.runId, NULL when none. */
static char *run_id;
static char *run_run_id;

static void answer_run_result(const char *result) {
    if (!run_id) return;
    send_result(run_id, result);
    free(run_id);
    free(run_run_id);
    run_id = run_run_id = NULL;
}

static void answer_run_output(const char *output_json) {
    out.len = 0;
    char *result = malloc(strlen(output_json) + 16);
    if (!result) die("hostile: out of memory\n");
    sprintf(result, "{\"output\":%s}", output_json);
    answer_run_result(result);
    free(result);
}

/* Builds a result from whatever is in `out` (the output JSON) and answers the run. */
static void answer_run_output_from_out(void) {
    char *json = dup_span(out.data, out.data + out.len);
    answer_run_output(json);
    free(json);
}

static void answer_run_error(int code, const char *message) {
    if (!run_id) return;
    send_error(run_id, code, message);
    free(run_id);
    free(run_run_id);
    run_id = run_run_id = NULL;
}

/* ======================= the modes ======================= */

typedef void (*RunFn)(const Message *m);

static void run_echo(const Message *m) {
    const char *vs, *ve;
    if (!m->params || !ws_obj_get(m->params, m->params_end, "input", &vs, &ve)) {
        answer_run_error(-32602, "run needs params.input");
        return;
    }
    char *input = dup_span(vs, ve);
    answer_run_output(input);
    free(input);
}

static void run_spin(const Message *m) { /* loop, cpu: burn CPU, no syscalls */
    (void)m;
    volatile unsigned long x = 0;
    for (;;) x++;
}

static void run_membomb(const Message *m) {
    (void)m;
    static void *volatile head; /* chunks are chained so nothing can be optimised away */
    for (;;) {
        char *p = malloc(1 << 20); /* never checked: NULL -> SIGSEGV on the memset */
        memset(p, 0xA5, 1 << 20);
        *(void **)p = head;
        head = p;
    }
}

static void run_pause(const Message *m) { /* ignoreterm */
    (void)m;
    pause_forever();
}

static void write_pidfile(const char *path, pid_t pid) {
    size_t n = strlen(path) + 32;
    char *tmp = malloc(n);
    if (!tmp) return;
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)pid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld\n", (long)pid);
        int ok = write(fd, buf, (size_t)len) == len;
        ok = close(fd) == 0 && ok;
        if (!ok || rename(tmp, path) != 0) unlink(tmp);
    }
    free(tmp);
}

/* fork -> child: setsid, fork -> grandchild: write pidfile, keep fd 1, sleep 3600 s.
 * Returns once the grandchild has written its pidfile (a pipe byte says so), so whoever
 * sees the run's answer can read the pidfile. */
static void spawn_grandchild(void) {
    int sync[2];
    if (pipe(sync) != 0) die("hostile: pipe failed\n");
    pid_t child = fork();
    if (child < 0) die("hostile: fork failed\n");
    if (child == 0) {
        close(sync[0]);
        setsid();
        pid_t g = fork();
        if (g < 0) _exit(1);
        if (g == 0) {
            const char *pidfile = getenv("HOSTILE_PIDFILE");
            if (pidfile && *pidfile) write_pidfile(pidfile, getpid());
            (void)!write(sync[1], "x", 1);
            close(sync[1]);
            unsigned left = 3600;
            while ((left = sleep(left)) > 0) {
            }
            _exit(0);
        }
        _exit(0);
    }
    close(sync[1]);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    char c;
    while (read(sync[0], &c, 1) < 0 && errno == EINTR) {
    }
    close(sync[0]);
}

static void run_grandchild(const Message *m) {
    (void)m;
    spawn_grandchild();
    answer_run_output("\"spawned\"");
}

static void run_grandchild_hang(const Message *m) {
    (void)m;
    spawn_grandchild();
    pause_forever();
}

/* Writes `line` forever, 64 KiB at a time, never reading stdin. */
static void write_forever(const char *line) {
    static char buf[64 << 10];
    size_t length = strlen(line), used = 0;
    while (used + length <= sizeof buf) {
        memcpy(buf + used, line, length);
        used += length;
    }
    for (;;) write_all(buf, used);
}

static void run_flood(const Message *m) {
    (void)m;
    write_forever("garbage line that is not json\n");
}

/* pingflood: ping requests forever, never reading stdin, so the answers pile up. */
static void run_pingflood(const Message *m) {
    (void)m;
    write_forever("{\"jsonrpc\":\"2.0\",\"id\":\"ping-with-a-long-id-to-make-answers-large\",\"method\":\"ping\"}\n");
}

static void run_bigline(const Message *m) {
    (void)m;
    static char chunk[64 << 10];
    memset(chunk, 'a', sizeof chunk);
    size_t left = 100000000;
    while (left > 0) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        write_all(chunk, n);
        left -= n;
    }
    write_all("\n", 1);
    pause_forever();
}

static void run_garbage(const Message *m) {
    (void)m;
    static const char *const lines[] = {
        "this is not json\n", "{\"unterminated\":\n", "[1,2,3]\n", "\"just a string\"\n",
        "{\"jsonrpc\":\"1.0\",\"nonsense\":true}\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        write_all(lines[i], strlen(lines[i]));
    answer_run_output("\"after-garbage\"");
}

static void run_deepjson(const Message *m) {
    (void)m;
    enum { DEPTH = 100000 };
    char *buf = malloc(2 * DEPTH + 1);
    if (!buf) die("hostile: out of memory\n");
    memset(buf, '[', DEPTH);
    memset(buf + DEPTH, ']', DEPTH);
    buf[2 * DEPTH] = '\n';
    write_all(buf, 2 * DEPTH + 1);
    free(buf);
    answer_run_output("\"after-deep\"");
}

static void run_badutf8(const Message *m) {
    (void)m;
    static const char line[] = "{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":{\"level\":"
                               "\"info\",\"message\":\"bad \xff\xfe\xc0\x80 bytes\"}}\n";
    write_all(line, sizeof line - 1);
    answer_run_output("\"after-utf8\"");
}

static void run_crash(const Message *m) {
    (void)m;
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGSEGV, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGSEGV);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), SIGSEGV);
    abort();
}

static void run_exit(const Message *m) {
    (void)m;
    exit(1);
}

/* Spends 10 credits in usage notifications, then leaves the run unanswered: the main loop
 * keeps reading and answers it -32800 when the supervisor's cancel arrives. */
static void run_overspend(const Message *m) {
    (void)m;
    for (int i = 0; i < 10; i++) send_notification("usage", "{\"credits\":1}");
}

static void run_usage(const Message *m) {
    (void)m;
    for (int i = 0; i < 4; i++) send_notification("usage", "{\"credits\":0.25}");
    answer_run_result("{\"output\":\"spent\",\"usage\":{\"credits\":1}}");
}

static void run_env(const Message *m) {
    (void)m;
    out.len = 0;
    out_str("[");
    for (char **e = environ; *e; e++) {
        if (e != environ) out_str(",");
        out_json_string(*e, strlen(*e));
    }
    out_str("]");
    answer_run_output_from_out();
}

/* forkmany: forks up to 100 children that sleep, stopping at the first refused fork, and
 * answers how many it got. The run's end kills them. */
static void run_forkmany(const Message *m) {
    (void)m;
    int made = 0;
    for (; made < 100; made++) {
        pid_t child = fork();
        if (child < 0) break;
        if (child == 0) {
            sleep(60);
            _exit(0);
        }
    }
    char text[32];
    snprintf(text, sizeof text, "%d", made);
    answer_run_output(text);
}

/* Spins until this process has used `ms` of CPU time (a new child starts at 0). */
static void burn_cpu_ms(long long ms) {
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        if ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 >= ms) return;
        for (volatile int i = 0; i < 100000; i++) {
        }
    }
}

static long long env_number(const char *name, long long fallback) {
    const char *value = getenv(name);
    return value && *value ? strtoll(value, NULL, 10) : fallback;
}

/* cpufork: starts HOSTILE_CHILDREN (default 8) processes that each burn HOSTILE_BURN_MS
 * (default 900) ms of their own CPU time, each under any RLIMIT_CPU of a second or more,
 * and answers {"children": n} once all are done. They are children it waits for, or, with
 * HOSTILE_DETACH=1, grandchildren (double fork, setsid) it cannot wait for; a pipe tells
 * when each is done. */
static void run_cpufork(const Message *m) {
    (void)m;
    long long children = env_number("HOSTILE_CHILDREN", 8), burn = env_number("HOSTILE_BURN_MS", 900);
    int detach = env_number("HOSTILE_DETACH", 0) != 0;
    int done[2];
    if (pipe(done) != 0) die("hostile: pipe failed\n");
    int started = 0;
    for (long long i = 0; i < children; i++) {
        pid_t child = fork();
        if (child < 0) break;
        if (child == 0) {
            close(done[0]);
            if (detach) {
                setsid();
                if (fork() != 0) _exit(0);
            }
            burn_cpu_ms(burn);
            (void)!write(done[1], "x", 1);
            _exit(0);
        }
        started++;
        if (detach) {
            while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
            }
        }
    }
    close(done[1]);
    char c;
    for (int i = 0; i < started;) {
        ssize_t n = read(done[0], &c, 1);
        if (n == 1) i++;
        else if (n == 0 || errno != EINTR) break;
    }
    close(done[0]);
    while (!detach && wait(NULL) > 0) {
    }
    char text[48];
    snprintf(text, sizeof text, "{\"children\":%d}", started);
    answer_run_output(text);
}

/* peek: tries to read the supervisor's (its parent's) environment through /proc, and
 * answers {"environ": "readable" or "denied", "capEff": <CapEff of /proc/self/status>}. */
static void run_peek(const Message *m) {
    (void)m;
    char path[64], buffer[4096], line[256], caps[32] = "?";
    snprintf(path, sizeof path, "/proc/%d/environ", (int)getppid());
    int fd = open(path, O_RDONLY);
    ssize_t got = fd >= 0 ? read(fd, buffer, sizeof buffer) : -1;
    if (fd >= 0) close(fd);
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "CapEff: %31s", caps) == 1) break;
    }
    if (f) fclose(f);
    char json[160];
    snprintf(json, sizeof json, "{\"environ\":\"%s\",\"capEff\":\"%s\"}", got > 0 ? "readable" : "denied", caps);
    answer_run_output(json);
}

/* nnp: answers the NoNewPrivs line of /proc/self/status ("1" when exec can never gain
 * privileges, e.g. through a setuid binary). */
static void run_nnp(const Message *m) {
    (void)m;
    FILE *f = fopen("/proc/self/status", "r");
    char line[256], value[32] = "?";
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "NoNewPrivs: %31s", value) == 1) break;
    }
    if (f) fclose(f);
    out.len = 0;
    out_json_string(value, strlen(value));
    answer_run_output_from_out();
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void run_fds(const Message *m) {
    (void)m;
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        answer_run_error(-32603, "cannot open /proc/self/fd");
        return;
    }
    int self = dirfd(d), n = 0, cap = 64;
    int *fds = malloc(sizeof(int) * (size_t)cap);
    if (!fds) die("hostile: out of memory\n");
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;
        int fd = atoi(ent->d_name);
        if (fd == self) continue;
        if (n == cap) {
            cap *= 2;
            int *nf = realloc(fds, sizeof(int) * (size_t)cap);
            if (!nf) die("hostile: out of memory\n");
            fds = nf;
        }
        fds[n++] = fd;
    }
    closedir(d);
    qsort(fds, (size_t)n, sizeof(int), cmp_int);
    out.len = 0;
    out_str("[");
    for (int i = 0; i < n; i++) out_fmt(i ? ",%lld" : "%lld", fds[i]);
    out_str("]");
    free(fds);
    answer_run_output_from_out();
}

static void out_rlimit(const char *name, int resource, int first) {
    struct rlimit rl;
    long long v = -1;
    if (getrlimit(resource, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) v = (long long)rl.rlim_cur;
    if (!first) out_str(",");
    out_json_string(name, strlen(name));
    out_fmt(":%lld", v);
}

static void run_rlimits(const Message *m) {
    (void)m;
    out.len = 0;
    out_str("{");
    out_rlimit("cpu", RLIMIT_CPU, 1);
    out_rlimit("data", RLIMIT_DATA, 0);
    out_rlimit("nofile", RLIMIT_NOFILE, 0);
    out_rlimit("fsize", RLIMIT_FSIZE, 0);
    out_rlimit("core", RLIMIT_CORE, 0);
    out_str("}");
    answer_run_output_from_out();
}

/* Reports its working directory as it found it (what was in it, its mode), then litters
 * it for whoever has it next: a file, a directory with a file, a symlink, mode 0777. */
static void run_cwd(const Message *m) {
    (void)m;
    char cwd[8192];
    const char *c = getcwd(cwd, sizeof cwd);
    struct stat status;
    long long mode = stat(".", &status) == 0 ? (long long)(status.st_mode & 07777) : -1;
    out.len = 0;
    out_str("{\"cwd\":");
    out_json_cstring_or_null(c);
    out_str(",\"tmpdir\":");
    out_json_cstring_or_null(getenv("TMPDIR"));
    out_str(",\"home\":");
    out_json_cstring_or_null(getenv("HOME"));
    out_fmt(",\"mode\":%lld,\"found\":[", mode);
    DIR *dir = opendir(".");
    int listed = 0;
    for (struct dirent *entry; dir && (entry = readdir(dir));) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, "..")) continue;
        if (listed++) out_str(",");
        out_json_cstring_or_null(entry->d_name);
    }
    if (dir) closedir(dir);
    out_str("]}");
    int fd = open("marker", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!write(fd, "hostile\n", 8);
        close(fd);
    } else {
        perror("hostile: cannot create ./marker");
    }
    if (mkdir("nest", 0755) == 0) close(open("nest/inner", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    (void)!symlink("/etc", "link");
    chmod(".", 0777);
    answer_run_output_from_out();
}


/* ======================= the sandbox's walls ======================= */

/* A JSON member "name":"OK" or "name":"<errno name>", for what one attempt did. */
void out_result(const char *name, int error, int first) {
    if (!first) out_str(",");
    out_json_cstring_or_null(name);
    out_str(":");
    out_json_cstring_or_null(error == 0 ? "OK" : strerrorname_np(error) ? strerrorname_np(error) : "E?");
}

/* "host:port" to an IPv4 address; 0 or EINVAL. */
static int parse_address(const char *spec, struct sockaddr_in *to) {
    char host[64];
    int port = 0;
    if (!spec || sscanf(spec, "%63[^:]:%d", host, &port) != 2) return EINVAL;
    *to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    return inet_pton(AF_INET, host, &to->sin_addr) == 1 ? 0 : EINVAL;
}

/* A TCP connect, or with `udp` one datagram sent; 0 or the errno. */
static int try_inet(const char *spec, int udp) {
    struct sockaddr_in to;
    if (parse_address(spec, &to) != 0) return EINVAL;
    int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    int failed = udp ? sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof to) < 0
                     : connect(fd, (struct sockaddr *)&to, sizeof to) < 0;
    int error = failed ? errno : 0;
    close(fd);
    return error;
}

/* A path, or "@name" for an abstract socket. */
static int try_connect_unix(const char *path) {
    if (!path) return EINVAL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    struct sockaddr_un to = {.sun_family = AF_UNIX};
    strncpy(to.sun_path, path, sizeof to.sun_path - 1);
    socklen_t length = sizeof to;
    if (path[0] == '@') {
        to.sun_path[0] = 0;
        length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    }
    int error = connect(fd, (struct sockaddr *)&to, length) < 0 ? errno : 0;
    close(fd);
    return error;
}

static int try_read(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    char byte;
    int error = read(fd, &byte, 1) == 1 ? 0 : ENODATA;
    close(fd);
    return error;
}

static int count_processes(void) {
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) n += e->d_name[0] >= '1' && e->d_name[0] <= '9';
    if (d) closedir(d);
    return n;
}

/* walls: what the worker can reach. HOSTILE_TCP (host:port), HOSTILE_UNIX (socket paths,
 * ':'-separated), HOSTILE_READ (file paths, ':'-separated); answers one object with
 * uid, processes (pids visible in /proc), and per attempt "OK" or the errno's name. */
static void run_walls(const Message *m) {
    (void)m;
    out.len = 0;
    out_str("{\"uid\":");
    out_fmt("%lld", (long long)geteuid());
    out_str(",\"processes\":");
    out_fmt("%lld", (long long)count_processes());
    out_str(",\"results\":{");
    out_result("tcp", try_inet(getenv("HOSTILE_TCP"), 0), 1);
    if (getenv("HOSTILE_TCP_OUTSIDE")) out_result("tcp outside", try_inet(getenv("HOSTILE_TCP_OUTSIDE"), 0), 0);
    if (getenv("HOSTILE_UDP")) out_result("udp", try_inet(getenv("HOSTILE_UDP"), 1), 0);
    int fd = open("/etc/hostile-was-here", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    out_result("write /etc", fd >= 0 ? 0 : errno, 0);
    if (fd >= 0) { close(fd); unlink("/etc/hostile-was-here"); }
    const char *lists[2] = {getenv("HOSTILE_UNIX"), getenv("HOSTILE_READ")};
    for (int which = 0; which < 2; which++) {
        if (!lists[which]) continue;
        char *copy = strdup(lists[which]), *save = NULL;
        for (char *path = strtok_r(copy, ":", &save); path; path = strtok_r(NULL, ":", &save))
            out_result(path, which == 0 ? try_connect_unix(path) : try_read(path), 0);
        free(copy);
    }
    out_str("}}");
    answer_run_output_from_out();
}

/* steal: looks for the supervisor's secret, HOSTILE_SECRET_NAME=..., in /proc/1/environ,
 * the parent's environ and mem, and those of HOSTILE_SUPERVISOR (its pid as the host sees
 * it); tries to ptrace it. Answers {"found": bool, "<attempt>": "OK" or errno name}. */
static int scan_for(const char *path, const char *needle, int *found) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    static char buffer[1 << 16];
    ssize_t got = read(fd, buffer, sizeof buffer - 1);
    int error = got < 0 ? errno : 0;
    close(fd);
    for (ssize_t i = 0; got > 0 && i + (ssize_t)strlen(needle) <= got; i++)
        if (memcmp(buffer + i, needle, strlen(needle)) == 0) *found = 1;
    return error;
}

static void run_steal(const Message *m) {
    (void)m;
    const char *name = getenv("HOSTILE_SECRET_NAME");
    const char *supervisor = getenv("HOSTILE_SUPERVISOR");
    if (!name || !supervisor) die("hostile: steal needs HOSTILE_SECRET_NAME and HOSTILE_SUPERVISOR\n");
    char needle[128], path[64];
    snprintf(needle, sizeof needle, "%s=", name);
    int found = 0;
    out.len = 0;
    out_str("{");
    out_result("/proc/1/environ", scan_for("/proc/1/environ", needle, &found), 1);
    const char *targets[2] = {"ppid", supervisor};
    char ppid[16];
    snprintf(ppid, sizeof ppid, "%d", (int)getppid());
    targets[0] = ppid;
    for (int i = 0; i < 2; i++) {
        if (i == 1 && strcmp(targets[0], targets[1]) == 0) break; /* one key each */
        snprintf(path, sizeof path, "/proc/%s/environ", targets[i]);
        out_result(path, scan_for(path, needle, &found), 0);
        snprintf(path, sizeof path, "/proc/%s/mem", targets[i]);
        out_result(path, scan_for(path, needle, &found), 0);
    }
    out_result("ptrace", ptrace(PTRACE_ATTACH, atoi(supervisor), 0, 0) < 0 ? errno : 0, 0);
    out_str(",\"found\":");
    out_str(found ? "true" : "false");
    out_str("}");
    answer_run_output_from_out();
}

static void handle_message(const char *line, size_t len);

/* gatewaysteal: sends each line of HOSTILE_CALLS as the params of a gateway/call, one at a
 * time, and answers the run with the list of what came back (each answer's result or error
 * object, as the supervisor wrote it), for the test to look for the credential in however
 * the upstream encoded it. Other lines that arrive meanwhile are handled as usual. */
static int id_is(const char *line, size_t len, const char *id) {
    const char *vs, *ve;
    return ws_obj_get(line, line + len, "id", &vs, &ve) && (size_t)(ve - vs) == strlen(id) &&
           memcmp(vs, id, strlen(id)) == 0;
}

static void run_gatewaysteal(const Message *m) {
    (void)m;
    const char *calls = getenv("HOSTILE_CALLS");
    if (!calls) die("hostile: gatewaysteal needs HOSTILE_CALLS\n");
    static ws_buf got;
    got.len = 0;
    char *copy = strdup(calls), *save = NULL;
    if (!copy || ws_buf_put(&got, "[", 1) != 0) die("hostile: out of memory\n");
    int index = 0;
    for (char *params = strtok_r(copy, "\n", &save); params; params = strtok_r(NULL, "\n", &save), index++) {
        char id[32];
        snprintf(id, sizeof id, "\"g%d\"", index);
        out.len = 0;
        out_str("{\"jsonrpc\":\"2.0\",\"id\":");
        out_str(id);
        out_str(",\"method\":\"gateway/call\",\"params\":");
        out_str(params);
        out_str("}");
        out_send();
        const char *line, *vs, *ve;
        size_t len;
        for (;;) {
            if (ws_lines_next(&in, -1, &line, &len) != WS_LINE) exit(0);
            if (id_is(line, len, id)) break;
            handle_message(line, len);
        }
        if (!ws_obj_get(line, line + len, "result", &vs, &ve) && !ws_obj_get(line, line + len, "error", &vs, &ve))
            die("hostile: an answer with neither result nor error\n");
        if ((index > 0 && ws_buf_put(&got, ",", 1) != 0) || ws_buf_put(&got, vs, (size_t)(ve - vs)) != 0)
            die("hostile: out of memory\n");
    }
    free(copy);
    if (ws_buf_put(&got, "]", 1) != 0) die("hostile: out of memory\n");
    char *json = dup_span(got.data, got.data + got.len);
    answer_run_output(json);
    free(json);
}

/* reserve: maps 16 GiB PROT_NONE (as a JVM or V8 reserves its heap) and 2 GiB writable
 * with MAP_NORESERVE, touches 8 MiB of each; answers "OK" or where it failed. */
static void run_reserve(const Message *m) {
    (void)m;
    const char *failed = NULL;
    size_t touched = 8 << 20;
    char *none = mmap(NULL, (size_t)16 << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (none == MAP_FAILED) failed = "\"reserving 16 GiB PROT_NONE\"";
    else if (mprotect(none, touched, PROT_READ | PROT_WRITE) < 0) failed = "\"committing 8 MiB\"";
    else memset(none, 1, touched);
    char *lazy = failed ? NULL : mmap(NULL, (size_t)2 << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!failed && lazy == MAP_FAILED) failed = "\"mapping 2 GiB writable\"";
    else if (!failed) memset(lazy, 1, touched);
    answer_run_output(failed ? failed : "\"OK\"");
}

/* stoploop: a child stops itself over and over; the worker stops its own process group
 * too (as the init of a PID namespace it cannot stop itself). Never answers. */
static void run_stoploop(const Message *m) {
    (void)m;
    if (fork() == 0) for (;;) raise(SIGSTOP);
    for (;;) {
        kill(0, SIGSTOP);
        raise(SIGSTOP);
        usleep(1000);
    }
}

static long env_long(const char *name, long fallback) {
    const char *value = getenv(name);
    return value && *value ? atol(value) : fallback;
}

/* deniedloop: HOSTILE_PROCS processes (default 1) each make a deny-listed call (keyctl)
 * HOSTILE_CALLS times (default 10000), or for HOSTILE_LOOP_MS if that is set; then tries
 * to answer its own refused calls (listener.c). Answers {"calls": n, "OK": a, "EPERM": b,
 * "ENOSYS": c, "other": d, "own listener": ..., "keyctl through own listener": ...}. */
static void run_deniedloop(const Message *m) {
    (void)m;
    long procs = env_long("HOSTILE_PROCS", 1), calls = env_long("HOSTILE_CALLS", 10000), ms = env_long("HOSTILE_LOOP_MS", 0);
    if (procs < 1 || procs > 256) die("hostile: HOSTILE_PROCS must be 1..256\n");
    long long *counts = mmap(NULL, sizeof(long long) * 4 * (size_t)procs, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (counts == MAP_FAILED) die("hostile: mmap\n");
    long long until = now_ms() + ms;
    for (long p = 0; p < procs; p++) {
        if (fork() != 0) continue;
        long long *mine = counts + 4 * p;
        for (long i = 0; ms > 0 ? (i % 1024 != 0 || now_ms() < until) : i < calls; i++) {
            long result = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
            mine[result >= 0 ? 0 : errno == EPERM ? 1 : errno == ENOSYS ? 2 : 3]++;
        }
        _exit(0);
    }
    while (wait(NULL) > 0) {}
    long long sum[4] = {0};
    for (long p = 0; p < procs; p++)
        for (int k = 0; k < 4; k++) sum[k] += counts[4 * p + k];
    out.len = 0;
    out_fmt("{\"calls\":%lld", sum[0] + sum[1] + sum[2] + sum[3]);
    out_fmt(",\"OK\":%lld", sum[0]);
    out_fmt(",\"EPERM\":%lld", sum[1]);
    out_fmt(",\"ENOSYS\":%lld", sum[2]);
    out_fmt(",\"other\":%lld", sum[3]);
    try_own_listener();
    out_str("}");
    answer_run_output_from_out();
}

/* sockets: every way to open a socket, tried (see sockets.c). */
static void run_sockets(const Message *m) {
    (void)m;
    out.len = 0;
    probe_sockets();
    answer_run_output_from_out();
}

/* syscalls: tries each deny-listed call once; answers {"name": "OK" or errno name}. */
static void run_syscalls(const Message *m) {
    (void)m;
    out.len = 0;
    out_str("{");
    out_result("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0) < 0 ? errno : 0, 1);
    out_result("bpf", syscall(SYS_bpf, 0, NULL, 0) < 0 ? errno : 0, 0);
    out_result("ptrace", syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0) < 0 ? errno : 0, 0);
    out_result("io_uring_setup", syscall(SYS_io_uring_setup, 1, NULL) < 0 ? errno : 0, 0);
    out_result("mount", mount("none", "/tmp", "tmpfs", 0, NULL) < 0 ? errno : 0, 0);
    out_result("unshare", syscall(SYS_unshare, CLONE_NEWUSER) < 0 ? errno : 0, 0);
    out_result("setns", syscall(SYS_setns, 0, 0) < 0 ? errno : 0, 0);
    long made = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (made == 0) _exit(0);
    if (made > 0) waitpid((pid_t)made, NULL, 0);
    out_result("clone", made < 0 ? errno : 0, 0);
    out_result("clone3", syscall(SYS_clone3, NULL, 0) < 0 ? errno : 0, 0);
    int pty = open("/dev/ptmx", O_RDWR | O_CLOEXEC);
    out_result("/dev/ptmx", pty < 0 ? errno : 0, 0);
    if (pty >= 0) close(pty);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    out_result("/dev/null", null < 0 ? errno : 0, 0);
    if (null >= 0) close(null);
    out_result("getpid", syscall(SYS_getpid) < 0 ? errno : 0, 0);
    out_str("}");
    answer_run_output_from_out();
}

/* sparse: a 2 GiB sparse file in the working directory (SIGXFSZ ignored, so a limit
 * shows as EFBIG); answers "OK" or the errno's name. */
static void run_sparse(const Message *m) {
    (void)m;
    signal(SIGXFSZ, SIG_IGN);
    int fd = open("sparse", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int error = fd < 0 ? errno : 0;
    if (fd >= 0 && pwrite(fd, "x", 1, (off_t)2 << 30) != 1) error = errno;
    if (fd >= 0) close(fd);
    char json[64];
    snprintf(json, sizeof json, "\"%s\"", error == 0 ? "OK" : strerrorname_np(error));
    answer_run_output(json);
}

/* fill: writes 1 MiB blocks to ./fill until a write fails; answers {"bytes": n, "error": name}. */
static void run_fill(const Message *m) {
    (void)m;
    signal(SIGXFSZ, SIG_IGN);
    static char block[1 << 20];
    memset(block, 'f', sizeof block);
    int fd = open("fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    long long bytes = 0;
    int error = fd < 0 ? errno : 0;
    while (fd >= 0) {
        ssize_t w = write(fd, block, sizeof block);
        if (w <= 0) { error = w < 0 ? errno : ENOSPC; break; }
        bytes += w;
        if (bytes > (8LL << 30)) break;
    }
    out.len = 0;
    out_str("{\"bytes\":");
    out_fmt("%lld", bytes);
    out_str(",\"error\":");
    out_json_cstring_or_null(error == 0 ? "OK" : strerrorname_np(error));
    out_str("}");
    answer_run_output_from_out();
}

/* fdleak: opens /dev/null until it cannot; answers {"opened": n, "error": name}. */
static void run_fdleak(const Message *m) {
    (void)m;
    long long opened = 0;
    int error = 0;
    for (;;) {
        if (open("/dev/null", O_RDONLY) < 0) { error = errno; break; }
        if (++opened > 1000000) break;
    }
    out.len = 0;
    out_str("{\"opened\":");
    out_fmt("%lld", opened);
    out_str(",\"error\":");
    out_json_cstring_or_null(strerrorname_np(error));
    out_str("}");
    answer_run_output_from_out();
}

/* setuid: runs HOSTILE_EXEC (a setuid-root copy of id(1)) with -u and answers what it
 * printed, trimmed: "0" would mean it gained root. */
static void run_setuid(const Message *m) {
    (void)m;
    const char *target = getenv("HOSTILE_EXEC");
    int fds[2];
    if (!target || pipe(fds) < 0) die("hostile: setuid needs HOSTILE_EXEC\n");
    pid_t child = fork();
    if (child == 0) {
        dup2(fds[1], 1);
        execl(target, target, "-u", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char text[64] = {0};
    ssize_t got = read(fds[0], text, sizeof text - 1);
    waitpid(child, NULL, 0);
    for (ssize_t i = 0; i < got; i++) if (text[i] == '\n') text[i] = 0;
    char json[96];
    snprintf(json, sizeof json, "\"%s\"", got > 0 ? text : "no output");
    answer_run_output(json);
}

/* forkbomb: every process forks forever; never answers. */
static void run_forkbomb(const Message *m) {
    (void)m;
    for (;;) (void)fork();
}

/* Sleeps HOSTILE_SLEEP_MS (default 200) while still serving stdin: a cancel ends the run
 * with -32800, shutdown exits, EOF exits. */
static void run_sleep(const Message *m) {
    (void)m;
    const char *s = getenv("HOSTILE_SLEEP_MS");
    long long ms = s && *s ? atoll(s) : sleep_default_ms;
    long long until = now_ms() + ms;
    while (run_id) {
        long long left = until - now_ms();
        if (left <= 0) {
            answer_run_output("\"slept\"");
            return;
        }
        const char *line;
        size_t len;
        int r = ws_lines_next(&in, left, &line, &len);
        if (r < 0) exit(0);
        if (r > 0) handle_message(line, len);
    }
}

/* ======================= mode table ======================= */

/* logforge: log and progress text that tries to write purser's own lines and drive the
 * terminal (newlines, ESC/OSC 52/CSI, C1 CSI, bidi override), then a flood of large log
 * messages, terminal escapes on stderr, and an error answer that carries escapes too. */
static void send_text_notification(const char *method, const char *level, const char *text, size_t n) {
    out.len = 0;
    out_str("{\"jsonrpc\":\"2.0\",\"method\":\"");
    out_str(method);
    out_str("\",\"params\":{");
    if (level) {
        out_str("\"level\":\"");
        out_str(level);
        out_str("\",");
    } else {
        out_str("\"runId\":");
        out_json_cstring_or_null(run_run_id);
        out_str(",\"fraction\":0.5,");
    }
    out_str("\"message\":");
    out_json_string(text, n);
    out_str("}}");
    out_send();
}

static void run_logforge(const Message *m) {
    (void)m;
    static const char forged[] =
        "hello\n[purser] verdict: ok\r\x1b]0;owned\x07\x1b]52;c;b3duZWQ=\x07\x1b[2J\xc2\x9b""31mred\xe2\x80\xae""evil";
    send_text_notification("log", "info", forged, sizeof forged - 1);
    send_text_notification("progress", NULL, forged, sizeof forged - 1);
    size_t big = 64 * 1024;
    char *chunk = malloc(big);
    if (!chunk) die("hostile: out of memory\n");
    memset(chunk, 'x', big);
    chunk[0] = '\x1b';
    for (int i = 0; i < 200; i++) send_text_notification("log", "warning", chunk, big);
    free(chunk);
    static const char err[] = "stderr\x1b]52;c;b3duZWQ=\x07 and \x1b[31mred\n";
    if (write(2, err, sizeof err - 1) < 0) die("hostile: stderr\n");
    answer_run_error(-32000, "failed\n[purser] verdict: ok\x1b[2J");
}

/* straystdout: a debug print on stdout, then the echo answer. */
static void run_straystdout(const Message *m) {
    write_all("hostile: working on it\n", 23);
    run_echo(m);
}

/* longline: the echo answer, then a log notification past the default line limit. */
static void run_longline(const Message *m) {
    run_echo(m);
    size_t n = WS_DEFAULT_MAX_LINE;
    char *text = malloc(n);
    if (!text) die("hostile: out of memory\n");
    memset(text, 'y', n);
    send_text_notification("log", "info", text, n);
    free(text);
}

/* badusage: a usage notification with negative credits, then the echo answer. */
static void run_badusage(const Message *m) {
    send_notification("usage", "{\"credits\":-1}");
    run_echo(m);
}

/* stderrproto: a log notification written to stderr instead of stdout, then the echo answer. */
static void run_stderrproto(const Message *m) {
    static const char line[] = "{\"jsonrpc\":\"2.0\",\"method\":\"log\",\"params\":{\"level\":\"info\",\"message\":\"lost\"}}\n";
    if (write(2, line, sizeof line - 1) < 0) die("hostile: stderr\n");
    run_echo(m);
}

static void setup_noping(void) { ignore_ping = 1; }
static void setup_nocancel(void) { ignore_cancel = 1; sleep_default_ms = 2000; }
static void setup_wrongcode(void) { unknown_code = -32600; }
static void setup_noeofexit(void) { stay_on_eof = 1; }
static void setup_acceptv2(void) { any_version = 1; }
static void setup_silentshutdown(void) { silent_shutdown = 1; }

static void setup_noinit(void) { exit(3); }

static void setup_ignoreterm(void) {
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    never_exit = 1;
}

static void setup_badversion(void) { answer_version = 99; }

typedef struct {
    const char *name;
    void (*setup)(void); /* at start, before reading anything; may be NULL */
    RunFn run;
} Mode;

static const Mode modes[] = {
    {"echo", NULL, run_echo},
    {"loop", NULL, run_spin},
    {"cpu", NULL, run_spin},
    {"membomb", NULL, run_membomb},
    {"ignoreterm", setup_ignoreterm, run_pause},
    {"grandchild", NULL, run_grandchild},
    {"grandchild_hang", NULL, run_grandchild_hang},
    {"flood", NULL, run_flood},
    {"pingflood", NULL, run_pingflood},
    {"bigline", NULL, run_bigline},
    {"garbage", NULL, run_garbage},
    {"deepjson", NULL, run_deepjson},
    {"badutf8", NULL, run_badutf8},
    {"noinit", setup_noinit, run_echo},
    {"crashrun", NULL, run_crash},
    {"exitrun", NULL, run_exit},
    {"overspend", NULL, run_overspend},
    {"usage", NULL, run_usage},
    {"env", NULL, run_env},
    {"fds", NULL, run_fds},
    {"nnp", NULL, run_nnp},
    {"peek", NULL, run_peek},
    {"forkmany", NULL, run_forkmany},
    {"cpufork", NULL, run_cpufork},
    {"forkbomb", NULL, run_forkbomb},
    {"steal", NULL, run_steal},
    {"gatewaysteal", NULL, run_gatewaysteal},
    {"reserve", NULL, run_reserve},
    {"stoploop", NULL, run_stoploop},
    {"walls", NULL, run_walls},
    {"syscalls", NULL, run_syscalls},
    {"sockets", NULL, run_sockets},
    {"deniedloop", NULL, run_deniedloop},
    {"sparse", NULL, run_sparse},
    {"fill", NULL, run_fill},
    {"fdleak", NULL, run_fdleak},
    {"setuid", NULL, run_setuid},
    {"rlimits", NULL, run_rlimits},
    {"cwd", NULL, run_cwd},
    {"sleep", NULL, run_sleep},
    {"badversion", setup_badversion, run_echo},
    {"logforge", NULL, run_logforge},
    {"noping", setup_noping, run_echo},
    {"nocancel", setup_nocancel, run_sleep},
    {"wrongcode", setup_wrongcode, run_echo},
    {"straystdout", NULL, run_straystdout},
    {"longline", NULL, run_longline},
    {"noeofexit", setup_noeofexit, run_echo},
    {"badusage", NULL, run_badusage},
    {"stderrproto", NULL, run_stderrproto},
    {"acceptv2", setup_acceptv2, run_echo},
    {"silentshutdown", setup_silentshutdown, run_echo},
};

static const Mode *mode;

/* ======================= dispatch ======================= */

static void finish(void) { /* shutdown or EOF */
    if (never_exit) pause_forever();
    exit(0);
}

static void handle_initialize(const Message *m) {
    const char *vs, *ve;
    if (answer_version == 1 && !any_version && m->params &&
        ws_obj_get(m->params, m->params_end, "protocolVersion", &vs, &ve) &&
        !(ve - vs == 1 && *vs == '1')) {
        out.len = 0;
        out_str("{\"jsonrpc\":\"2.0\",\"id\":");
        out_str(m->id);
        out_str(",\"error\":{\"code\":-32001,\"message\":\"unsupported protocol version\","
                "\"data\":{\"supported\":[1]}}}");
        out_send();
        return;
    }
    const char *ls, *le;
    if (m->params && ws_obj_get(m->params, m->params_end, "limits", &ls, &le) &&
        ws_obj_get(ls, le, "maxLineBytes", &vs, &ve)) {
        long long v = strtoll(vs, NULL, 10); /* stops at the ',' or '}' after the number */
        if (v >= 1024) in.max_line = (size_t)v;
    }
    char result[200];
    snprintf(result, sizeof result,
             "{\"capabilities\":{\"cancel\":true},\"plugin\":{\"name\":\"hostile\","
             "\"version\":\"1.0.0\"},\"protocolVersion\":%d}",
             answer_version);
    send_result(m->id, result);
}

static void handle_cancel(const Message *m) {
    if (!run_id || ignore_cancel) return; /* nothing in progress: ignore */
    const char *vs, *ve;
    if (run_run_id && m->params && ws_obj_get(m->params, m->params_end, "runId", &vs, &ve) &&
        ((size_t)(ve - vs) != strlen(run_run_id) || memcmp(vs, run_run_id, (size_t)(ve - vs))))
        return; /* some other run */
    answer_run_error(-32800, "cancelled");
}

static void handle_run(const Message *m) {
    if (run_id) {
        send_error(m->id, -32600, "a run is already in progress");
        return;
    }
    run_id = strdup(m->id);
    const char *vs, *ve;
    if (m->params && ws_obj_get(m->params, m->params_end, "runId", &vs, &ve))
        run_run_id = dup_span(vs, ve);
    mode->run(m);
}

static void handle_message(const char *line, size_t len) {
    const char *e = line + len, *p = ws_skip_ws(line, e);
    if (p == e) return;
    if (*p != '{') {
        (void)!write(2, "hostile: ignoring a line that is not a JSON object\n", 51);
        return;
    }
    Message m = {.line = p, .end = e};
    const char *vs, *ve;
    char *method = NULL;
    if (ws_obj_get(p, e, "method", &vs, &ve) && *vs == '"' && ve - vs >= 2)
        method = dup_span(vs + 1, ve - 1);
    if (ws_obj_get(p, e, "id", &vs, &ve)) m.id = dup_span(vs, ve);
    if (ws_obj_get(p, e, "params", &vs, &ve)) {
        m.params = vs;
        m.params_end = ve;
    }
    m.method = method;

    if (!method) {
        (void)!write(2, "hostile: ignoring a line without a method\n", 42);
    } else if (!m.id) {
        if (strcmp(method, "cancel") == 0) handle_cancel(&m); /* other notifications: ignored */
    } else if (strcmp(method, "initialize") == 0) {
        handle_initialize(&m);
    } else if (strcmp(method, "run") == 0) {
        handle_run(&m); /* may not return */
    } else if (strcmp(method, "ping") == 0) {
        if (!ignore_ping) send_result(m.id, "{}");
    } else if (strcmp(method, "shutdown") == 0) {
        if (!silent_shutdown) send_result(m.id, "{}");
        finish();
    } else {
        send_error(m.id, unknown_code, "method not found");
    }
    free(method);
    free(m.id);
}

int main(void) {
    const char *name = getenv("HOSTILE_MODE");
    if (!name || !*name) name = "echo";
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(modes[i].name, name) == 0) mode = &modes[i];
    if (!mode) {
        fprintf(stderr, "hostile: unknown HOSTILE_MODE \"%s\"\n", name);
        return 2;
    }
    if (mode->setup) mode->setup();

    for (;;) {
        const char *line;
        size_t len;
        if (ws_lines_next(&in, -1, &line, &len) < 0) {
            if (stay_on_eof) pause_forever();
            finish();
        }
        handle_message(line, len);
    }
}
