#include "CPurserSys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <spawn.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// MARK: mounts

static bool skippable(int error) { return error == ENOENT || error == ENOTDIR; }

// The host directories a worker's root is made of, read-only: programs, libraries and
// configuration. Anything else of the host (homes, /var, /srv, /work, sockets anywhere) is
// not in its world at all.
static const char *const allowed_dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"};
int purser_root_directories(const char *const **list) {
    *list = allowed_dirs;
    return (int)(sizeof allowed_dirs / sizeof allowed_dirs[0]);
}

// The devices it gets: no disks, no /dev/ptmx (the host's pty pool is shared).
static const char *const allowed_devices[] = {"null", "zero", "full", "random", "urandom", "tty"};
// The staging point of the new root: a directory every host has.
#define STAGE "/tmp"

static int path_join(char *out, size_t size, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > size) { errno = ENAMETOOLONG; return -1; }
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
    return 0;
}

// One host path into the new root: a symlink as a symlink (merged-/usr hosts), a directory
// as a read-only bind, a device as a bind over an empty file.
static int bring(const char *host, const char *into, bool device) {
    char target[4096], link[4096];
    if (path_join(target, sizeof target, STAGE, into) < 0) return -1;
    struct stat info;
    if (lstat(host, &info) < 0) return skippable(errno) ? 0 : -1;
    if (S_ISLNK(info.st_mode)) {
        ssize_t n = readlink(host, link, sizeof link - 1);
        if (n < 0) return -1;
        link[n] = 0;
        return symlink(link, target);
    }
    if (device) {
        int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return -1;
        close(fd);
    } else if (mkdir(target, 0755) < 0) {
        return -1;
    }
    return mount(host, target, NULL, MS_BIND | MS_REC, NULL);
}

// A tmpfs becomes the worker's root, holding only the allowed directories and devices; the
// host's root is then detached altogether (pivot_root onto itself, then a lazy unmount).
// The directories leading to `path` in the new root (which is a tmpfs of ours there: the
// caller keeps shared paths out of the allowed, host-backed directories).
static int make_parents(const char *path) {
    char target[4096];
    if (path_join(target, sizeof target, STAGE, path) < 0) return -1;
    for (char *slash = target + strlen(STAGE) + 1; (slash = strchr(slash, '/')) != NULL; slash++) {
        *slash = 0;
        int made = mkdir(target, 0755);
        *slash = '/';
        if (made < 0 && errno != EEXIST) return -1;
    }
    return 0;
}

static int new_root(const purser_mount_plan *m) {
    if (mount("tmpfs", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755") < 0) return -1;
    for (size_t i = 0; i < sizeof allowed_dirs / sizeof allowed_dirs[0]; i++) {
        if (bring(allowed_dirs[i], allowed_dirs[i], false) < 0) return -1;
    }
    for (int i = 0; i < m->shared_dir_count; i++) {
        if (make_parents(m->shared_dirs[i]) < 0 || bring(m->shared_dirs[i], m->shared_dirs[i], false) < 0) return -1;
    }
    bool proc = m->mount_proc;
    static const char *const dirs[] = {STAGE "/dev", STAGE "/proc", STAGE "/tmp", STAGE "/run"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (mkdir(dirs[i], 0755) < 0) return -1;
    }
    // In a user namespace, a new /proc may be mounted only where one is already fully
    // visible: the host's goes under the worker's, which is mounted over it.
    if (proc && mount("/proc", STAGE "/proc", NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
    for (size_t i = 0; i < sizeof allowed_devices / sizeof allowed_devices[0]; i++) {
        char host[64], into[64];
        if (path_join(host, sizeof host, "/dev/", allowed_devices[i]) < 0) return -1;
        if (path_join(into, sizeof into, "/dev/", allowed_devices[i]) < 0) return -1;
        if (bring(host, into, true) < 0) return -1;
    }
    if (symlink("/proc/self/fd", STAGE "/dev/fd") < 0) return -1;
    if (symlink("/proc/self/fd/0", STAGE "/dev/stdin") < 0 || symlink("/proc/self/fd/1", STAGE "/dev/stdout") < 0
        || symlink("/proc/self/fd/2", STAGE "/dev/stderr") < 0)
        return -1;
    if (chdir(STAGE) < 0) return -1;
    if (syscall(SYS_pivot_root, ".", ".") < 0) return -1;
    if (umount2(".", MNT_DETACH) < 0) return -1;
    return chdir("/");
}

// Read-only, nosuid and nodev everywhere; then the devices are let be devices again.
static int seal_root(void) {
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV};
    if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) < 0) return -1;
    struct mount_attr devices = {.attr_clr = MOUNT_ATTR_NODEV};
    for (size_t i = 0; i < sizeof allowed_devices / sizeof allowed_devices[0]; i++) {
        char path[64];
        if (path_join(path, sizeof path, "/dev/", allowed_devices[i]) < 0) return -1;
        if (syscall(SYS_mount_setattr, AT_FDCWD, path, 0, &devices, sizeof devices) < 0 && !skippable(errno)) return -1;
    }
    return 0;
}

int purser_isolate_mounts(const purser_mount_plan *m) {
    // Nothing mounted here may leak back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -1;
    if (m->readonly_root && (new_root(m) < 0 || seal_root() < 0)) return -1;
    // Supervisor files within the allowed directories (a gateway config under /etc, say).
    for (int i = 0; i < m->hidden_dir_count; i++) {
        if (mount("tmpfs", m->hidden_dirs[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=000") < 0
            && !skippable(errno))
            return -1;
    }
    for (int i = 0; i < m->hidden_file_count; i++) {
        if (mount("/dev/null", m->hidden_files[i], NULL, MS_BIND, NULL) < 0 && !skippable(errno)) return -1;
    }
    if (m->tmp_options != NULL && mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, m->tmp_options) < 0) return -1;
    if (m->mount_proc && mount("proc", "/proc", "proc", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -1;
    return 0;
}

// MARK: user namespaces

static int write_file(const char *name, const char *text) {
    int fd = open(name, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t length = (ssize_t)strlen(text);
    ssize_t written = write(fd, text, (size_t)length);
    int saved = errno;
    close(fd);
    errno = saved;
    return written == length ? 0 : -1;
}

int purser_isolate_map_ids(const char *uid_map, const char *gid_map) {
    if (write_file("/proc/self/setgroups", "deny") < 0) return -1;
    if (write_file("/proc/self/uid_map", uid_map) < 0) return -1;
    return write_file("/proc/self/gid_map", gid_map);
}

// MARK: seccomp

// What tools never need: kernel keyrings, tracing processes or reading their memory,
// io_uring (a large, often-patched surface that also bypasses this filter's view of I/O),
// replacing the kernel or loading modules, mounts (the old and the new API), namespaces of
// their own (a user namespace would give the tool capabilities in it: the usual way to
// kernel bugs), eBPF, perf, userfaultfd, swap, reboot. `clone` is refused only with a
// namespace flag; `clone3`, whose flags the filter cannot read, fails with ENOSYS, which
// makes glibc fall back to `clone`.
#define DENY(name) {SYS_##name, #name}
static const purser_syscall denied_syscalls[] = {
    DENY(keyctl), DENY(add_key), DENY(request_key),
    DENY(ptrace), DENY(process_vm_readv), DENY(process_vm_writev),
    DENY(io_uring_setup), DENY(io_uring_enter), DENY(io_uring_register),
    DENY(kexec_load), DENY(kexec_file_load), DENY(init_module), DENY(finit_module), DENY(delete_module),
    DENY(mount), DENY(umount2), DENY(pivot_root), DENY(move_mount), DENY(fsopen), DENY(fsmount), DENY(open_tree),
    DENY(fspick), DENY(fsconfig), DENY(mount_setattr),
#ifdef SYS_open_tree_attr
    DENY(open_tree_attr),
#endif
    DENY(unshare), DENY(setns), DENY(clone),
    DENY(bpf), DENY(perf_event_open), DENY(userfaultfd), DENY(swapon), DENY(swapoff), DENY(reboot),
};
#define DENIED_COUNT ((int)(sizeof denied_syscalls / sizeof denied_syscalls[0]))

int purser_seccomp_denied(const purser_syscall **list) {
    *list = denied_syscalls;
    return DENIED_COUNT;
}

#if defined(__x86_64__)
#define PURSER_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PURSER_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "the seccomp deny-list knows x86_64 and aarch64"
#endif

#define FILTER_MAX (DENIED_COUNT * 2 + 24)
static struct sock_filter filters[2][FILTER_MAX];
static struct sock_fprog programs[2];
static pthread_once_t filters_once = PTHREAD_ONCE_INIT;

// The namespace flags `clone` may not carry.
#define NAMESPACE_FLAGS (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS \
                         | CLONE_NEWCGROUP | 0x00000080 /* CLONE_NEWTIME */)

// Another architecture's syscall numbers (i386 through int 0x80, x32) would slip past a
// list of this one's, so such calls are refused whole.
static void build_filter(int mode, uint32_t action) {
    struct sock_filter *f = filters[mode];
    int n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PURSER_AUDIT_ARCH, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
#endif
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
    // clone: allowed unless its flags (the first argument, low word) ask for a namespace.
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action);
    for (int i = 0; i < DENIED_COUNT; i++) {
        if (denied_syscalls[i].number == SYS_clone) continue;
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)denied_syscalls[i].number, 0, 1);
        f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action);
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    programs[mode] = (struct sock_fprog){.len = (unsigned short)n, .filter = f};
}

static void build_filters(void) {
    build_filter(0, SECCOMP_RET_ERRNO | EPERM);
    build_filter(1, SECCOMP_RET_USER_NOTIF);
}

void purser_seccomp_prepare(void) { pthread_once(&filters_once, build_filters); }

static int send_fd(int socket, int fd) {
    char data = 'L';
    struct iovec iov = {.iov_base = &data, .iov_len = 1};
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                             .msg_controllen = sizeof control.space};
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ssize_t sent;
    do { sent = sendmsg(socket, &message, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    return sent == 1 ? 0 : -1;
}

int purser_isolate_seccomp(int socket) {
    if (socket < 0) return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &programs[0]) < 0 ? -1 : 0;
    int listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &programs[1]);
    if (listener < 0) return -1;
    // The worker must never hold its own listener: it could answer its own denied calls.
    int sent = send_fd(socket, listener);
    int saved = errno;
    close(listener);
    close(socket);
    errno = saved;
    return sent;
}

// MARK: the notifier thread

// Each watched listener, until its filter has no process left and its run took the record.
typedef struct {
    int fd;                        // -1 once closed
    int socket;                    // >= 0 while the listener is still to come over it
    uint64_t tag;
    int numbers[16];
    int count;
    bool taken;
} watch;

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t notifier_once = PTHREAD_ONCE_INIT;
static watch *watches;
static int watch_count, watch_capacity;
static int notifier_wake = -1;
static int notifier_error;

static void record(uint64_t tag, int nr) {
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < watch_count; i++) {
        watch *w = &watches[i];
        if (w->tag != tag) continue;
        bool seen = false;
        for (int j = 0; j < w->count; j++) seen = seen || w->numbers[j] == nr;
        if (!seen && w->count < 16) w->numbers[w->count++] = nr;
    }
    pthread_mutex_unlock(&watch_lock);
}

static void answer(int fd, uint64_t tag, void *buffer, size_t size) {
    memset(buffer, 0, size);
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buffer) < 0) return; // the caller died meanwhile
    struct seccomp_notif *request = buffer;
    record(tag, request->data.nr);
    struct seccomp_notif_resp response = {.id = request->id, .val = 0, .error = -EPERM, .flags = 0};
    (void)ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &response);
}

// Closes what was taken and forgets it; returns the fds to poll: each listener, or the
// socket its listener is still to come over.
static int collect(struct pollfd *polls, uint64_t *tags, int capacity) {
    pthread_mutex_lock(&watch_lock);
    int n = 0;
    for (int i = 0; i < watch_count;) {
        watch *w = &watches[i];
        // A listener is closed only when its filter has no process left: closed earlier, it
        // would let a surviving process install a listener of its own and answer itself.
        if (w->taken && w->fd < 0 && w->socket < 0) {
            watches[i] = watches[--watch_count];
            continue;
        }
        int fd = w->socket >= 0 ? w->socket : w->fd;
        if (fd >= 0 && n < capacity) {
            polls[n] = (struct pollfd){.fd = fd, .events = POLLIN};
            tags[n++] = w->tag;
        }
        i++;
    }
    pthread_mutex_unlock(&watch_lock);
    return n;
}

// A hang-up ends a listener (its filter has no process left) or a socket (the helper is
// gone); a socket that is readable brings the listener.
static void close_watched(int fd, bool readable) {
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < watch_count; i++) {
        watch *w = &watches[i];
        if (w->socket == fd) {
            w->fd = readable ? purser_receive_fd(fd) : -1;
            close(fd);
            w->socket = -1;
        } else if (w->fd == fd) {
            close(fd);
            w->fd = -1;
        }
    }
    pthread_mutex_unlock(&watch_lock);
}

static bool is_socket(int fd) {
    pthread_mutex_lock(&watch_lock);
    bool found = false;
    for (int i = 0; i < watch_count; i++) found = found || watches[i].socket == fd;
    pthread_mutex_unlock(&watch_lock);
    return found;
}

static void *notifier_main(void *unused) {
    (void)unused;
    struct seccomp_notif_sizes sizes = {0};
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) sizes.seccomp_notif = sizeof(struct seccomp_notif);
    size_t size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif : sizeof(struct seccomp_notif);
    void *buffer = calloc(1, size);
    // Grown to every watched entry: one left out would never be answered nor closed.
    struct pollfd *polls = NULL;
    uint64_t *tags = NULL;
    int capacity = 0;
    for (;;) {
        pthread_mutex_lock(&watch_lock);
        int wanted = watch_capacity > 16 ? watch_capacity : 16;
        pthread_mutex_unlock(&watch_lock);
        if (wanted > capacity) {
            struct pollfd *more_polls = realloc(polls, sizeof *polls * (size_t)(wanted + 1));
            if (more_polls != NULL) polls = more_polls;
            uint64_t *more_tags = realloc(tags, sizeof *tags * (size_t)wanted);
            if (more_tags != NULL) tags = more_tags;
            if (more_polls != NULL && more_tags != NULL) capacity = wanted;
        }
        if (buffer == NULL || polls == NULL) { sleep(1); continue; }
        int n = collect(polls + 1, tags, capacity);
        polls[0] = (struct pollfd){.fd = notifier_wake, .events = POLLIN};
        if (poll(polls, (nfds_t)n + 1, -1) < 0) continue;
        if (polls[0].revents & POLLIN) {
            uint64_t value;
            (void)read(notifier_wake, &value, sizeof value);
        }
        for (int i = 1; i <= n; i++) {
            short events = polls[i].revents;
            if (events == 0) continue;
            if (is_socket(polls[i].fd)) close_watched(polls[i].fd, events & POLLIN);
            else if (events & POLLIN) answer(polls[i].fd, tags[i - 1], buffer, size);
            else close_watched(polls[i].fd, false);
        }
    }
    return NULL;
}

static void start_notifier(void) {
    notifier_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (notifier_wake < 0) { notifier_error = errno; return; }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    notifier_error = pthread_create(&thread, &attr, notifier_main, NULL);
    pthread_attr_destroy(&attr);
}

static void wake_notifier(void) {
    uint64_t one = 1;
    (void)write(notifier_wake, &one, sizeof one);
}

static int watch_entry(int listener, int socket, uint64_t tag) {
    pthread_once(&notifier_once, start_notifier);
    if (notifier_error != 0) { errno = notifier_error; return -1; }
    pthread_mutex_lock(&watch_lock);
    if (watch_count == watch_capacity) {
        int capacity = watch_capacity == 0 ? 64 : watch_capacity * 2;
        watch *grown = realloc(watches, sizeof(watch) * (size_t)capacity);
        if (grown == NULL) { pthread_mutex_unlock(&watch_lock); errno = ENOMEM; return -1; }
        watches = grown;
        watch_capacity = capacity;
    }
    watches[watch_count++] = (watch){.fd = listener, .socket = socket, .tag = tag, .count = 0, .taken = false};
    pthread_mutex_unlock(&watch_lock);
    wake_notifier();
    return 0;
}

int purser_seccomp_watch(int listener, uint64_t tag) { return watch_entry(listener, -1, tag); }

int purser_seccomp_watch_socket(int socket, uint64_t tag) { return watch_entry(-1, socket, tag); }

int purser_seccomp_take(uint64_t tag, int *numbers, int max) {
    int found = 0;
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < watch_count; i++) {
        watch *w = &watches[i];
        if (w->tag != tag || w->taken) continue;
        for (int j = 0; j < w->count && found < max; j++) numbers[found++] = w->numbers[j];
        w->taken = true;
    }
    pthread_mutex_unlock(&watch_lock);
    wake_notifier();
    return found;
}

int purser_receive_fd(int socket) {
    char data;
    struct iovec iov = {.iov_base = &data, .iov_len = 1};
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                             .msg_controllen = sizeof control.space};
    ssize_t got;
    do { got = recvmsg(socket, &message, MSG_DONTWAIT | MSG_CMSG_CLOEXEC); } while (got < 0 && errno == EINTR);
    if (got != 1) return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&message);
    if (c == NULL || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

int purser_socketpair_cloexec(int fds[2]) { return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds); }

// MARK: network namespaces

static void *netns_thread(void *out) {
    int *result = out;
    if (unshare(CLONE_NEWNET) < 0) { result[1] = errno; return NULL; }
    result[0] = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (result[0] < 0) result[1] = errno;
    return NULL; // the thread, and its namespace membership, end here; the fd holds the namespace
}

int purser_netns_create(void) {
    int result[2] = {-1, 0};
    pthread_t thread;
    int error = pthread_create(&thread, NULL, netns_thread, result);
    if (error != 0) { errno = error; return -1; }
    pthread_join(thread, NULL);
    if (result[0] < 0) errno = result[1];
    return result[0];
}

// MARK: probing

static int try_unshare(int flag) { return unshare(flag) < 0 ? errno : 0; }

void purser_probe_here(purser_layer_probe *out, int network) {
    if (network) out->net_ns = try_unshare(CLONE_NEWNET);
    out->ipc_ns = try_unshare(CLONE_NEWIPC);
    out->pid_ns = try_unshare(CLONE_NEWPID);
    out->mount_ns = try_unshare(CLONE_NEWNS);
    if (out->mount_ns == 0) {
        // The whole of what a worker gets: the allow-listed root, pivot_root, sealing, a /tmp.
        purser_mount_plan plan = {.readonly_root = 1, .tmp_options = "size=64k"};
        out->tmpfs = out->mount_setattr = purser_isolate_mounts(&plan) < 0 ? errno : 0;
    } else {
        out->tmpfs = out->mount_setattr = out->mount_ns;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        out->seccomp = errno;
    } else {
        int listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &programs[1]);
        out->seccomp = listener < 0 ? errno : 0;
    }
}

// Runs in a throwaway vfork child, so nothing it changes reaches the supervisor.
static int probe_child(void *raw) {
    purser_probe_here(raw, 0);
    _exit(0);
}

static int user_child(void *unused) {
    (void)unused;
    _exit(0);
}

static int probe_clone(int (*body)(void *), void *arg, int flags) {
    const size_t size = 64 * 1024;
    void *stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return errno;
    pid_t pid = clone(body, (char *)stack + size, CLONE_VM | CLONE_VFORK | SIGCHLD | flags, arg);
    int error = pid < 0 ? errno : 0;
    if (pid > 0) while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    munmap(stack, size);
    return error;
}

void purser_probe_layers(purser_layer_probe *out) {
    memset(out, 0, sizeof *out);
    purser_seccomp_prepare(); // built here, not in the child, which must not take locks
    int error = probe_clone(probe_child, out, 0);
    if (error != 0) out->mount_ns = out->pid_ns = out->ipc_ns = out->seccomp = out->tmpfs = out->mount_setattr = error;
    out->user_ns = probe_clone(user_child, NULL, CLONE_NEWUSER);
    int netns = purser_netns_create();
    out->net_ns = netns < 0 ? errno : 0;
    if (netns >= 0) close(netns);
}

int purser_run_probe(const char *path) {
    char *argv[] = {(char *)path, "--probe", NULL};
    char *envp[] = {NULL};
    pid_t pid;
    if (posix_spawn(&pid, path, NULL, NULL, argv, envp) != 0) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
