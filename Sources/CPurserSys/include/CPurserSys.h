#ifndef CPURSERSYS_H
#define CPURSERSYS_H

#include <sys/types.h>
#include <sys/resource.h>
#include <stdint.h>

/// Where a failed spawn stopped, so the error can say which step failed.
typedef enum {
    PURSER_STAGE_NONE = 0,
    PURSER_STAGE_CLONE,
    PURSER_STAGE_SIGNALS,
    PURSER_STAGE_SETSID,
    PURSER_STAGE_PDEATHSIG,
    PURSER_STAGE_CGROUP,
    PURSER_STAGE_DUP,
    PURSER_STAGE_CLOSE_FDS,
    PURSER_STAGE_RLIMIT,
    PURSER_STAGE_CHDIR,
    PURSER_STAGE_EXEC,
    PURSER_STAGE_NO_NEW_PRIVS,
    PURSER_STAGE_CAPABILITIES,
    PURSER_STAGE_NETWORK,
    PURSER_STAGE_MOUNTS,
    PURSER_STAGE_IDS,
    PURSER_STAGE_SECCOMP,
} purser_spawn_stage;

// The clone flags of <sched.h>, which Swift does not see without _GNU_SOURCE.
static const int PURSER_CLONE_NEWNS = 0x00020000;
static const int PURSER_CLONE_NEWIPC = 0x08000000;
static const int PURSER_CLONE_NEWPID = 0x20000000;

/// The mount namespace a worker gets (with CLONE_NEWNS in `namespaces`).
typedef struct {
    int readonly_root;             // every mount private, read-only and nosuid
    int mount_proc;                // a fresh, read-only /proc (for a new PID namespace)
    const char *tmp_options;       // tmpfs options for a private /tmp; NULL: none
    const char *const *hidden_dirs;   // an empty, read-only tmpfs over each (missing ones skipped)
    int hidden_dir_count;
    const char *const *hidden_files;  // /dev/null bound over each (missing ones skipped)
    int hidden_file_count;
    const char *const *shared_dirs;   // with readonly_root: host directories the worker also
    int shared_dir_count;             // sees, read-only, at the same paths (absolute, outside
                                      // the allowed ones)
} purser_mount_plan;

typedef struct {
    int resource;
    rlim_t soft;
    rlim_t hard;
} purser_rlimit;

typedef struct {
    const char *path;              // absolute path of the executable; with exec_fd >= 0, only for messages
    char *const *argv;             // NULL-terminated
    char *const *envp;             // NULL-terminated
    const char *cwd;               // NULL: stay where the supervisor is
    int stdin_fd, stdout_fd, stderr_fd; // the child's ends; become 0, 1, 2
    const int *cgroup_procs_fds;   // open cgroup.procs files the child joins before exec
    int cgroup_procs_count;
    const purser_rlimit *rlimits;
    int rlimit_count;
    int pdeathsig;                 // 0: none
    int child_subreaper;           // make the worker a subreaper (kept across exec)
    unsigned int umask;
    // -1: execute `path`. Otherwise an open file (read-only or O_PATH) that the child executes
    // with execveat(exec_fd, "", argv, envp, AT_EMPTY_PATH): the very file that was opened,
    // whatever `path` names now. It survives the child's cleanup of fds >= 3 (if it is 0-2,
    // the child first moves it to a free fd >= 3). Callers that zero-initialise this struct
    // must set it to -1 explicitly.
    int exec_fd;
    // With exec_fd >= 0: 1 to keep exec_fd open across exec (the child clears FD_CLOEXEC),
    // which a script (#!) needs, since the kernel hands its interpreter /dev/fd/N; 0 to close
    // it at exec (the child sets FD_CLOEXEC), so a binary worker does not inherit it.
    int exec_fd_keep;
    int drop_capabilities;         // clear every capability (bounding, ambient, effective,
                                   // permitted, inheritable) before exec
    int cap_last;                  // the highest capability number (/proc/sys/kernel/cap_last_cap)
    int namespaces;                // CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC, given to clone
    int netns_fd;                  // >= 0: join this network namespace first; -1: stay
    const purser_mount_plan *mounts; // with CLONE_NEWNS; NULL: none
    int set_ids;                   // switch to uid/gid with no supplementary groups
    uid_t uid;
    gid_t gid;
    int seccomp;                   // install the deny-list filter (purser_seccomp_denied)
    int seccomp_socket;            // >= 0: the filter reports to a listener sent here (SCM_RIGHTS);
                                   // -1: denied calls fail with EPERM unreported
    const int *inherit_fds;        // fds the worker keeps, as 3, 4, ... in order (with exec_fd too:
                                   // that one is moved above them)
    int inherit_count;
} purser_spawn_args;

typedef struct {
    pid_t pid;
    int pidfd;
    int error;                     // errno of the failed step, 0 on success
    purser_spawn_stage stage;      // the failed step
} purser_spawn_result;

/// Spawns without fork(): clone(CLONE_VM|CLONE_VFORK) on a dedicated, never-exiting
/// thread, so PR_SET_PDEATHSIG (which follows the creating thread) only fires when the
/// supervisor process dies. Returns 0, or -1 with result->error and result->stage set.
int purser_spawn(const purser_spawn_args *args, purser_spawn_result *result);

int purser_pipe_cloexec(int fds[2]);

/// pidfd_open(pid, 0), close-on-exec (Linux 5.3): a handle on one process, never on
/// whatever later reuses its pid. -1 with errno.
int purser_pidfd_open(int pid);

/// pidfd_send_signal(pidfd, signal, NULL, 0) (Linux 5.1). -1 with errno (ESRCH: it is gone).
int purser_pidfd_signal(int pidfd, int signal);

/// Kills every process in the cgroup at `group` and in the groups inside it: `cgroup.kill`
/// (v2), else `pids.max` 0 (a v1 pids group: no more forks), then SIGKILL to each member
/// still there, through a pidfd, then 5 ms, for up to `rounds` rounds. 0 once empty; -1
/// (EBUSY) if members are still there (dying, or stuck in the kernel): call again.
/// For a supervisor's start and for purser-watchdog; not for a spawn child.
int purser_cgroup_kill_tree(const char *group, int rounds);

/// `purser_cgroup_kill_tree` for several groups: every one killed first, then all waited for
/// together, a round (about 5 ms) at a time, for up to `rounds` rounds. Returns how many
/// are still not empty.
int purser_cgroup_kill_trees(const char *const *groups, int count, int rounds);

/// prctl(option, 0, 0, 0, 0) for the read-only queries (PR_GET_NO_NEW_PRIVS,
/// PR_GET_SECCOMP, PR_GET_DUMPABLE): prctl is variadic, so Swift cannot call it.
int purser_prctl_query(int option);

/// prctl(option, value, 0, 0, 0) for settings such as PR_SET_DUMPABLE.
int purser_prctl_set(int option, unsigned long value);

// The sandbox's steps, for a spawn child and for the purser-sandbox helper (which a
// supervisor that is not root runs in between): async-signal-safe, no allocation.

/// Sets up the worker's mount namespace: see purser_mount_plan.
int purser_isolate_mounts(const purser_mount_plan *plan);

/// Installs the deny-list filter; with socket >= 0 the filter's listener is sent there and
/// closed (with the socket), and denied calls wait for the supervisor's answer (EPERM).
int purser_isolate_seccomp(int socket);

/// In a new user namespace: denies setgroups, then writes the uid and gid maps
/// ("INSIDE OUTSIDE 1\n"). The process then holds every capability in that namespace.
int purser_isolate_map_ids(const char *uid_map, const char *gid_map);

/// The host directories a worker's own root is made of (read-only binds).
int purser_root_directories(const char *const **list);

/// Builds the filters; call before a spawn (or fork) that installs one.
void purser_seccomp_prepare(void);

/// A new network namespace (only loopback, down), held by the returned fd; -1 with errno.
/// Made on a short-lived thread, so no thread of the supervisor ever leaves its own.
int purser_netns_create(void);
/// A TCP listener on 127.0.0.1:port inside the network namespace `netns_fd` (loopback
/// brought up there first); -1 with errno on failure. Needs CAP_NET_ADMIN over the namespace.
int purser_netns_listen(int netns_fd, unsigned short port);
/// The same in the caller's own network namespace (purser-sandbox, inside its user
/// namespace, where it holds CAP_NET_ADMIN over the namespace it made).
int purser_loopback_listen(unsigned short port);

/// What the host allows, tried for real in a throwaway child: each field 0 or an errno.
typedef struct {
    int mount_ns, pid_ns, ipc_ns, net_ns, user_ns, seccomp, mount_setattr, tmpfs;
} purser_layer_probe;
void purser_probe_layers(purser_layer_probe *out);
/// The same tries in this very process, which must be a throwaway one (the helper's probe,
/// inside its user namespace); call purser_seccomp_prepare first. `network`: try that too.
void purser_probe_here(purser_layer_probe *out, int network);

typedef struct {
    int number;                    // for this architecture
    const char *name;
} purser_syscall;

/// Runs `path --probe` (the purser-sandbox helper) and returns its exit status, or -1.
int purser_run_probe(const char *path);

/// How many refused calls of one run the notifier answers (and counts); then it lets go of
/// the run's listener, and the kernel refuses the rest alone.
static const int PURSER_SECCOMP_WATCHED_CALLS = 64;

/// The syscalls the deny-list refuses, for reports.
int purser_seccomp_denied(const purser_syscall **list);
/// Hands a filter's listener to the notifier thread, which answers each denied call with
/// EPERM and records its number under `tag`, and closes the listener once its filter has no
/// process left, or once it answered PURSER_SECCOMP_WATCHED_CALLS calls (the kernel then
/// refuses the rest with ENOSYS). Takes ownership of `listener`, unless it fails (-1): then
/// the caller must end the worker before closing it.
int purser_seccomp_watch(int listener, uint64_t tag);
/// As purser_seccomp_watch, for a listener still to come over `socket` (sent by a helper
/// after the spawn returned). Takes ownership of `socket`, unless it fails, as above.
int purser_seccomp_watch_socket(int socket, uint64_t tag);
/// The distinct denied syscall numbers recorded under `tag` (up to `max`), with `calls`, how
/// many denied calls the notifier answered, and `capped`, 1 if it stopped watching; the entry
/// goes once its listener is closed.
int purser_seccomp_take(uint64_t tag, int *numbers, int max, int *calls, int *capped);
/// Receives a listener fd sent by a spawned child over `socket`; -1 if none came.
int purser_receive_fd(int socket);
/// Sends `fd` over the unix socket `socket` (SCM_RIGHTS); 0, or -1 with errno.
int purser_send_fd(int socket, int fd);
int purser_socketpair_cloexec(int fds[2]);

#endif
