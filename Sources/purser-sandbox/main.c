/*
 * purser-sandbox: how a supervisor that is not root gives an untrusted worker its
 * namespaces. A root supervisor makes them in its spawn child; one that is not root needs
 * a user namespace first, and a CLONE_VM child of a non-dumpable supervisor cannot write
 * its own id maps (its /proc files belong to root). This helper is a process of its own,
 * so it can: the supervisor starts it where it would start the worker, and it
 *
 *   1. makes a user namespace where the supervisor's ids are 65534 (nobody), then network,
 *      IPC, mount and PID namespaces inside it; with --egress-fd, brings up loopback there,
 *      listens on 127.0.0.1:--egress-port and sends that listener to the supervisor over
 *      the fd (the egress proxy's socket: only a process of the namespace can make it);
 *   2. forks the worker as the PID namespace's init, which sets up the mounts (read-only
 *      host, hidden paths, a private /tmp, its own /proc), the seccomp filter (its listener
 *      goes to the supervisor over fd --seccomp-fd), and execs the worker (fd --exec-fd, or
 *      the path after --);
 *   3. stays as the worker's parent: forwards SIGTERM, SIGINT and SIGHUP, and ends as the
 *      worker ended (its exit status, or the same signal).
 *
 * usage: purser-sandbox --uid-map M --gid-map M --tmp OPTIONS [--proc] [--hide-dir P]...
 *                       [--hide-file P]... [--share-dir P]... [--seccomp-fd N] [--exec-fd N [--keep-exec-fd]]
 *                       [--egress-fd N --egress-port P]
 *                       [--cwd DIR]
 *                       -- PATH ARGV0 [ARG]...
 *        purser-sandbox --probe    (exit status: a bit for each layer that failed)
 *
 * The environment is passed to the worker as it is. Errors go to stderr; exit code 125.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "CPurserSys.h"

extern char **environ;

enum { MAX_HIDDEN = 64 };

typedef struct {
    const char *uid_map, *gid_map, *tmp, *cwd;
    int proc, seccomp_fd, exec_fd, keep_exec_fd, egress_fd, egress_port;
    const char *dirs[MAX_HIDDEN], *files[MAX_HIDDEN], *shared[MAX_HIDDEN];
    int dir_count, file_count, shared_count;
    char **command; /* PATH ARGV0 ARG... */
} options;

static void fail(const char *step) {
    fprintf(stderr, "purser-sandbox: %s: %s\n", step, strerror(errno));
    _exit(125);
}

static void usage(const char *message) {
    fprintf(stderr, "purser-sandbox: %s\n", message);
    _exit(125);
}

static options parse(int argc, char **argv) {
    options o = {.cwd = "/tmp", .seccomp_fd = -1, .exec_fd = -1, .egress_fd = -1};
    int i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--proc") == 0) { o.proc = 1; continue; }
        if (strcmp(flag, "--keep-exec-fd") == 0) { o.keep_exec_fd = 1; continue; }
        if (i + 1 >= argc) usage("a flag without its value");
        const char *value = argv[++i];
        if (strcmp(flag, "--uid-map") == 0) o.uid_map = value;
        else if (strcmp(flag, "--gid-map") == 0) o.gid_map = value;
        else if (strcmp(flag, "--tmp") == 0) o.tmp = value;
        else if (strcmp(flag, "--cwd") == 0) o.cwd = value;
        else if (strcmp(flag, "--seccomp-fd") == 0) o.seccomp_fd = atoi(value);
        else if (strcmp(flag, "--exec-fd") == 0) o.exec_fd = atoi(value);
        else if (strcmp(flag, "--egress-fd") == 0) o.egress_fd = atoi(value);
        else if (strcmp(flag, "--egress-port") == 0) o.egress_port = atoi(value);
        else if (strcmp(flag, "--hide-dir") == 0 && o.dir_count < MAX_HIDDEN) o.dirs[o.dir_count++] = value;
        else if (strcmp(flag, "--hide-file") == 0 && o.file_count < MAX_HIDDEN) o.files[o.file_count++] = value;
        else if (strcmp(flag, "--share-dir") == 0 && o.shared_count < MAX_HIDDEN) o.shared[o.shared_count++] = value;
        else usage("unknown flag");
    }
    if (!o.uid_map || !o.gid_map || i + 2 >= argc) usage("needs --uid-map, --gid-map and -- PATH ARGV0");
    if ((o.egress_fd >= 0) != (o.egress_port > 0 && o.egress_port < 65536)) usage("--egress-fd goes with --egress-port 1-65535");
    o.command = argv + i + 1;
    return o;
}

/* The namespaces: a user namespace first, the rest inside it. */
static void enter_namespaces(const options *o) {
    if (unshare(CLONE_NEWUSER) < 0) fail("unshare(CLONE_NEWUSER)");
    if (purser_isolate_map_ids(o->uid_map, o->gid_map) < 0) fail("writing the id maps");
    if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWNS | CLONE_NEWPID) < 0) fail("unshare");
}

/* The egress proxy's listener, made in the new network namespace before the worker exists,
 * sent to the supervisor; the worker never holds it. */
static void send_egress_listener(const options *o) {
    if (o->egress_fd < 0) return;
    int listener = purser_loopback_listen((unsigned short)o->egress_port);
    if (listener < 0) fail("listening for egress on the namespace's loopback");
    if (purser_send_fd(o->egress_fd, listener) < 0) fail("sending the egress listener");
    close(listener);
    close(o->egress_fd);
}

/* The worker: pid 1 of its namespace, dies with the helper. */
static void worker(const options *o, int helper_pidfd) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail("PR_SET_PDEATHSIG");
    struct pollfd gone = {.fd = helper_pidfd, .events = POLLIN};
    if (poll(&gone, 1, 0) > 0 && (gone.revents & POLLIN)) _exit(125);
    purser_mount_plan plan = {
        .readonly_root = o->tmp != NULL, .mount_proc = o->proc, .tmp_options = o->tmp,
        .hidden_dirs = o->dirs, .hidden_dir_count = o->dir_count,
        .hidden_files = o->files, .hidden_file_count = o->file_count,
        .shared_dirs = o->shared, .shared_dir_count = o->shared_count,
    };
    if (purser_isolate_mounts(&plan) < 0) fail("setting up the mount namespace");
    if (chdir(o->cwd) < 0) fail("entering the working directory");
    for (int cap = 0; cap <= 63; cap++) (void)prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) fail("no_new_privs");
    if (o->seccomp_fd >= 0) {
        purser_seccomp_prepare();
        if (purser_isolate_seccomp(o->seccomp_fd) < 0) fail("installing the seccomp filter");
    }
    close(helper_pidfd);
    /* A script's interpreter opens /dev/fd/N; a binary must not inherit its own file. */
    if (o->exec_fd >= 0 && !o->keep_exec_fd) (void)fcntl(o->exec_fd, F_SETFD, FD_CLOEXEC);
    if (o->exec_fd >= 0) {
        syscall(SYS_execveat, o->exec_fd, "", o->command + 1, environ, AT_EMPTY_PATH);
    } else {
        execve(o->command[0], o->command + 1, environ);
    }
    fail("exec");
}

static volatile pid_t child = -1;
static volatile int own_proc = 0; /* the worker mounted a /proc of its namespace, where it is 1 */

/* Whether the worker handles SIGTERM: its SigCgt line, read with async-signal-safe calls
 * only (this runs in a signal handler). */
static int catches_sigterm(void) {
    char path[64] = "/proc/", digits[16], text[2048];
    int n = 0;
    for (unsigned value = own_proc ? 1U : (unsigned)child; value > 0 || n == 0; value /= 10) digits[n++] = (char)('0' + value % 10);
    size_t at = strlen(path);
    while (n > 0) path[at++] = digits[--n];
    strcpy(path + at, "/status");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t got = read(fd, text, sizeof text - 1);
    close(fd);
    if (got <= 0) return 0;
    text[got] = 0;
    const char *line = strstr(text, "SigCgt:");
    if (!line) return 0;
    line += 7;
    while (*line == '\t' || *line == ' ') line++;
    unsigned long long mask = 0;
    for (; *line; line++) {
        int digit = *line >= '0' && *line <= '9' ? *line - '0' : *line >= 'a' && *line <= 'f' ? *line - 'a' + 10 : -1;
        if (digit < 0) break;
        mask = mask << 4 | (unsigned)digit;
    }
    return (mask >> (SIGTERM - 1)) & 1;
}

/* The worker is its PID namespace's init, which the kernel shields from every signal it
 * does not handle: one that does not catch SIGTERM gets SIGKILL instead. */
static void forward(int signal) {
    if (child <= 0) return;
    int saved = errno;
    kill(child, signal == SIGTERM && !catches_sigterm() ? SIGKILL : signal);
    errno = saved;
}

/* Ends as the worker ended. */
static void follow(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) fail("waitpid");
    }
    if (WIFEXITED(status)) _exit(WEXITSTATUS(status));
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* no core of the helper */
    kill(getpid(), sig);
    _exit(128 + sig);
}

/* Each layer tried; a bit set for each that failed: 1 user, 2 network, 4 IPC+PID,
 * 8 mount (private, tmpfs, read-only), 16 seccomp listener. */
static int probe(void) {
    if (unshare(CLONE_NEWUSER) < 0) return 31;
    char uid_map[64], gid_map[64];
    snprintf(uid_map, sizeof uid_map, "65534 %u 1\n", (unsigned)geteuid());
    snprintf(gid_map, sizeof gid_map, "65534 %u 1\n", (unsigned)getegid());
    if (purser_isolate_map_ids(uid_map, gid_map) < 0) return 31;
    purser_seccomp_prepare();
    purser_layer_probe out = {0};
    purser_probe_here(&out, 1);
    return (out.net_ns ? 2 : 0) | (out.ipc_ns || out.pid_ns ? 4 : 0) | (out.mount_ns || out.tmpfs ? 8 : 0)
        | (out.seccomp ? 16 : 0);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--probe") == 0) return probe();
    options o = parse(argc, argv);
    pid_t parent = getppid();
    enter_namespaces(&o);
    send_egress_listener(&o);
    /* Entering the user namespace changed our credentials, which clears the parent-death signal. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) fail("PR_SET_PDEATHSIG");
    if (getppid() != parent) _exit(125);
    int self = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (self < 0) fail("pidfd_open");
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        worker(&o, self);
    }
    child = pid;
    own_proc = o.proc;
    if (o.seccomp_fd >= 0) close(o.seccomp_fd);
    if (o.exec_fd >= 0) close(o.exec_fd);
    close(self);
    struct sigaction action = {.sa_handler = forward};
    sigemptyset(&action.sa_mask);
    int forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaction(forwarded[i], &action, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    follow(pid);
}
