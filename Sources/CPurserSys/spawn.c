#include "CPurserSys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

#define CHILD_STACK_SIZE (64 * 1024)

#include "CPurserSys.h"

// The supervisor, as a pidfd: a child in a new PID namespace sees no parent pid to compare.
static int supervisor_pidfd = -1;

typedef struct {
    const purser_spawn_args *args;
    pid_t parent;
    int error;
    purser_spawn_stage stage;
} child_context;

// Runs in the clone child, which shares the parent's memory until exec:
// async-signal-safe calls only, no allocation, no locks.
static int child_fail(child_context *ctx, purser_spawn_stage stage) {
    ctx->error = errno;
    ctx->stage = stage;
    _exit(127);
}

static int move_fd(int fd, int target) {
    if (fd == target) {
        int flags = fcntl(fd, F_GETFD);
        return flags < 0 ? -1 : fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
    }
    return dup2(fd, target) < 0 ? -1 : 0;
}

// Closes fds lo..hi (inclusive), by close_range, else one by one up to the fd limit.
static void close_fds(unsigned int lo, unsigned int hi) {
    if (lo > hi) return;
    if (syscall(SYS_close_range, lo, hi, 0U) == 0) return;
    long max = sysconf(_SC_OPEN_MAX);
    long end = max > 0 ? max : 65536;
    for (long fd = lo; fd < end && fd <= (long)hi; fd++) (void)close((int)fd);
}

// A root worker without capabilities is root only by name: it cannot ptrace, read a
// non-dumpable supervisor's /proc files, override file permissions, mount, or load
// modules. The bounding set goes first (it needs CAP_SETPCAP), then the ambient set; the
// rest goes by capset or with the switch away from uid 0.
static int drop_bounding_capabilities(int cap_last) {
    for (int cap = 0; cap <= cap_last; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    return 0;
}

static int clear_capabilities(void) {
    struct { uint32_t version; int pid; } header = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    struct { uint32_t effective, permitted, inheritable; } data[2];
    memset(data, 0, sizeof data);
    return (int)syscall(SYS_capset, &header, data);
}

// Raw syscalls: glibc's set*id() broadcast the change to every thread of the process,
// and this child shares the supervisor's memory and sees its threads as its own.
static int switch_ids(uid_t uid, gid_t gid) {
    if (syscall(SYS_setgroups, 0, NULL) < 0) return -1;
    if (syscall(SYS_setresgid, gid, gid, gid) < 0) return -1;
    return (int)syscall(SYS_setresuid, uid, uid, uid);
}

// Raised by the supervisor dying before PR_SET_PDEATHSIG took effect.
static bool supervisor_gone(const purser_spawn_args *a, pid_t parent) {
    if (!(a->namespaces & CLONE_NEWPID)) return getppid() != parent;
    struct pollfd p = {.fd = supervisor_pidfd, .events = POLLIN};
    return supervisor_pidfd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

static int set_pdeathsig(child_context *ctx) {
    const purser_spawn_args *a = ctx->args;
    if (a->pdeathsig <= 0) return 0;
    if (prctl(PR_SET_PDEATHSIG, a->pdeathsig, 0, 0, 0) < 0) return -1;
    if (supervisor_gone(a, ctx->parent)) { errno = ESRCH; return -1; }
    return 0;
}

// The open-file limit is applied once the worker's fds are closed (`limit_open_files`):
// until then the child holds the supervisor's fds at their numbers, and a busy supervisor
// holds more than a worker may, so a limit below its highest fd made the seccomp listener's
// fd fail with EMFILE. Only raising the hard limit needs the supervisor's privilege: that
// part is done here, before the ids change.
static int raise_open_files(const purser_spawn_args *a) {
    for (int i = 0; i < a->rlimit_count; i++) {
        if (a->rlimits[i].resource != RLIMIT_NOFILE) continue;
        struct rlimit now;
        if (getrlimit(RLIMIT_NOFILE, &now) < 0) return -1;
        if (a->rlimits[i].hard <= now.rlim_max) return 0;
        struct rlimit raised = {.rlim_cur = now.rlim_cur, .rlim_max = a->rlimits[i].hard};
        return setrlimit(RLIMIT_NOFILE, &raised);
    }
    return 0;
}

static int limit_open_files(const purser_spawn_args *a) {
    for (int i = 0; i < a->rlimit_count; i++) {
        if (a->rlimits[i].resource != RLIMIT_NOFILE) continue;
        struct rlimit rl = {.rlim_cur = a->rlimits[i].soft, .rlim_max = a->rlimits[i].hard};
        return setrlimit(RLIMIT_NOFILE, &rl);
    }
    return 0;
}

// Everything that needs the supervisor's privileges: namespaces, cgroups, mounts, limits,
// the working directory (which may belong to the sandbox user), then giving them up.
static int enter_sandbox(child_context *ctx) {
    const purser_spawn_args *a = ctx->args;
    if (a->netns_fd >= 0 && setns(a->netns_fd, CLONE_NEWNET) < 0) return child_fail(ctx, PURSER_STAGE_NETWORK);
    if (a->child_subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        return child_fail(ctx, PURSER_STAGE_PDEATHSIG);
    for (int i = 0; i < a->cgroup_procs_count; i++) {
        if (write(a->cgroup_procs_fds[i], "0", 1) != 1) return child_fail(ctx, PURSER_STAGE_CGROUP);
    }
    if (a->mounts != NULL && purser_isolate_mounts(a->mounts) < 0) return child_fail(ctx, PURSER_STAGE_MOUNTS);
    for (int i = 0; i < a->rlimit_count; i++) {
        if (a->rlimits[i].resource == RLIMIT_NOFILE) continue;
        struct rlimit rl = {.rlim_cur = a->rlimits[i].soft, .rlim_max = a->rlimits[i].hard};
        if (setrlimit(a->rlimits[i].resource, &rl) < 0) return child_fail(ctx, PURSER_STAGE_RLIMIT);
    }
    if (raise_open_files(a) < 0) return child_fail(ctx, PURSER_STAGE_RLIMIT);
    if (a->cwd != NULL && chdir(a->cwd) < 0) return child_fail(ctx, PURSER_STAGE_CHDIR);
    if (a->drop_capabilities && drop_bounding_capabilities(a->cap_last) < 0)
        return child_fail(ctx, PURSER_STAGE_CAPABILITIES);
    if (a->set_ids) {
        // Leaving uid 0 clears the permitted and effective sets too, and also the
        // parent-death signal (a change of credentials), which is set again.
        if (switch_ids(a->uid, a->gid) < 0) return child_fail(ctx, PURSER_STAGE_IDS);
        if (set_pdeathsig(ctx) < 0) return child_fail(ctx, PURSER_STAGE_PDEATHSIG);
    } else if (a->drop_capabilities && clear_capabilities() < 0) {
        return child_fail(ctx, PURSER_STAGE_CAPABILITIES);
    }
    return 0;
}

// The inherited fds become 3, 4, ...: first each is copied above where any target could
// be, then the copies are moved down, so that no move clobbers a source. Every other fd
// but `keep` (-1: none) is closed.
static int inherit_fds(const purser_spawn_args *a, int keep) {
    int copies[8];
    if (a->inherit_count > 8) { errno = EINVAL; return -1; }
    for (int i = 0; i < a->inherit_count; i++) {
        copies[i] = fcntl(a->inherit_fds[i], F_DUPFD_CLOEXEC, 16);
        if (copies[i] < 0) return -1;
    }
    for (int i = 0; i < a->inherit_count; i++) {
        if (dup2(copies[i], 3 + i) < 0) return -1; // the new fd is not close-on-exec
    }
    // `keep` (the file to execute, >= 3 + count) stays; the copies go with the rest.
    unsigned int first = 3U + (unsigned int)a->inherit_count;
    if (keep >= 0) {
        close_fds(first, (unsigned int)keep - 1U);
        close_fds((unsigned int)keep + 1U, ~0U);
    } else {
        close_fds(first, ~0U);
    }
    return 0;
}

// Stdio in place, everything else closed but the file to execute; returns that fd or -1.
static int arrange_fds(child_context *ctx, int *exec_fd_out) {
    const purser_spawn_args *a = ctx->args;
    // The file to execute by fd must not be clobbered by the stdio moves below.
    int exec_fd = a->exec_fd;
    if (exec_fd >= 0 && exec_fd <= 2) {
        exec_fd = fcntl(exec_fd, F_DUPFD_CLOEXEC, 3);
        if (exec_fd < 0) return child_fail(ctx, PURSER_STAGE_CLOSE_FDS);
    }
    // The pipes are >= 3 (the supervisor keeps 0-2 open), so these cannot clobber each other.
    if (move_fd(a->stdin_fd, 0) < 0 || move_fd(a->stdout_fd, 1) < 0 || move_fd(a->stderr_fd, 2) < 0)
        return child_fail(ctx, PURSER_STAGE_DUP);
    // No exec from here on can gain privileges (setuid, file capabilities); it also lets
    // the filter go on without CAP_SYS_ADMIN.
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return child_fail(ctx, PURSER_STAGE_NO_NEW_PRIVS);
    if (a->seccomp && purser_isolate_seccomp(a->seccomp_socket) < 0) return child_fail(ctx, PURSER_STAGE_SECCOMP);
    if (exec_fd >= 0 && a->inherit_count > 0) {
        // The file to execute goes above where the inherited fds will be, so that they do
        // not clobber it; then they become 3, 4, ... and everything else is closed.
        int moved = fcntl(exec_fd, F_DUPFD_CLOEXEC, 3 + a->inherit_count);
        if (moved < 0 || inherit_fds(a, moved) < 0) return child_fail(ctx, PURSER_STAGE_CLOSE_FDS);
        exec_fd = moved;
    }
    if (exec_fd >= 0) {
        if (a->inherit_count == 0) close_fds(3U, (unsigned int)exec_fd - 1U);
        close_fds((unsigned int)exec_fd + 1U, ~0U);
        // A script's interpreter opens /dev/fd/N, so N must stay open across exec; a binary's
        // fd must not reach the worker.
        int flags = fcntl(exec_fd, F_GETFD);
        if (flags < 0) return child_fail(ctx, PURSER_STAGE_CLOSE_FDS);
        int wanted = a->exec_fd_keep ? (flags & ~FD_CLOEXEC) : (flags | FD_CLOEXEC);
        if (wanted != flags && fcntl(exec_fd, F_SETFD, wanted) < 0) return child_fail(ctx, PURSER_STAGE_CLOSE_FDS);
    } else if (a->inherit_count > 0 && inherit_fds(a, -1) < 0) {
        return child_fail(ctx, PURSER_STAGE_CLOSE_FDS);
    } else if (a->inherit_count == 0) {
        close_fds(3U, ~0U);
    }
    *exec_fd_out = exec_fd;
    return 0;
}

static int child_main(void *raw) {
    child_context *ctx = raw;
    const purser_spawn_args *a = ctx->args;

    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP) (void)sigaction(sig, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) return child_fail(ctx, PURSER_STAGE_SIGNALS);
    if (setsid() < 0) return child_fail(ctx, PURSER_STAGE_SETSID);
    if (set_pdeathsig(ctx) < 0) return child_fail(ctx, PURSER_STAGE_PDEATHSIG);
    enter_sandbox(ctx);
    int exec_fd = -1;
    arrange_fds(ctx, &exec_fd);
    if (limit_open_files(a) < 0) return child_fail(ctx, PURSER_STAGE_RLIMIT);
    umask((mode_t)a->umask);
    if (exec_fd >= 0) {
        syscall(SYS_execveat, exec_fd, "", a->argv, a->envp, AT_EMPTY_PATH);
    } else {
        execve(a->path, a->argv, a->envp);
    }
    return child_fail(ctx, PURSER_STAGE_EXEC);
}

static void spawn_now(const purser_spawn_args *args, purser_spawn_result *result) {
    memset(result, 0, sizeof *result);
    result->pid = -1;
    result->pidfd = -1;

    void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        result->error = errno;
        result->stage = PURSER_STAGE_CLONE;
        return;
    }
    child_context ctx = {.args = args, .parent = getpid(), .error = 0, .stage = PURSER_STAGE_NONE};

    // No handler of the supervisor may run in the child while it shares our memory.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int pidfd = -1;
    pid_t pid = clone(child_main, (char *)stack + CHILD_STACK_SIZE,
                      CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD | args->namespaces, &ctx, &pidfd);
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, CHILD_STACK_SIZE);

    if (pid < 0) {
        result->error = clone_errno;
        result->stage = PURSER_STAGE_CLONE;
        return;
    }
    if (ctx.error != 0) {
        // The child has already exited; reap it so no zombie stays behind.
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        if (pidfd >= 0) close(pidfd);
        result->error = ctx.error;
        result->stage = ctx.stage;
        return;
    }
    result->pid = pid;
    result->pidfd = pidfd;
}

// The spawner thread: created once, never exits.
static pthread_once_t spawner_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t spawner_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawner_wake = PTHREAD_COND_INITIALIZER;
static pthread_cond_t spawner_done = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t caller_lock = PTHREAD_MUTEX_INITIALIZER;
static const purser_spawn_args *pending_args;
static purser_spawn_result *pending_result;
static bool pending_finished;
static int spawner_start_error;

static void *spawner_main(void *unused) {
    (void)unused;
    pthread_mutex_lock(&spawner_lock);
    for (;;) {
        while (pending_args == NULL) pthread_cond_wait(&spawner_wake, &spawner_lock);
        const purser_spawn_args *args = pending_args;
        purser_spawn_result *result = pending_result;
        pthread_mutex_unlock(&spawner_lock);
        spawn_now(args, result);
        pthread_mutex_lock(&spawner_lock);
        pending_args = NULL;
        pending_finished = true;
        pthread_cond_broadcast(&spawner_done);
    }
    return NULL;
}

static void start_spawner(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    supervisor_pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (supervisor_pidfd >= 0) (void)fcntl(supervisor_pidfd, F_SETFD, FD_CLOEXEC);
    spawner_start_error = pthread_create(&thread, &attr, spawner_main, NULL);
    pthread_attr_destroy(&attr);
}

int purser_spawn(const purser_spawn_args *args, purser_spawn_result *result) {
    pthread_once(&spawner_once, start_spawner);
    if (spawner_start_error != 0) {
        memset(result, 0, sizeof *result);
        result->pid = -1;
        result->pidfd = -1;
        result->error = spawner_start_error;
        result->stage = PURSER_STAGE_CLONE;
        return -1;
    }
    if (args->seccomp) purser_seccomp_prepare();
    pthread_mutex_lock(&caller_lock); // one request in flight at a time
    pthread_mutex_lock(&spawner_lock);
    pending_result = result;
    pending_finished = false;
    pending_args = args;
    pthread_cond_signal(&spawner_wake);
    while (!pending_finished) pthread_cond_wait(&spawner_done, &spawner_lock);
    pthread_mutex_unlock(&spawner_lock);
    pthread_mutex_unlock(&caller_lock);
    return result->error == 0 ? 0 : -1;
}

int purser_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int purser_pidfd_open(int pid) { return (int)syscall(SYS_pidfd_open, (pid_t)pid, 0U); }

int purser_pidfd_signal(int pidfd, int signal) {
    int result;
    do {
        result = (int)syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0U);
    } while (result < 0 && errno == EINTR);
    return result;
}

int purser_prctl_query(int option) { return prctl(option, 0, 0, 0, 0); }

int purser_prctl_set(int option, unsigned long value) { return prctl(option, value, 0, 0, 0); }
