#include "CPurserSys.h"
#include "seccomp_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <pthread.h>
#include <spawn.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>

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

// MARK: network namespaces

static void *netns_thread(void *out) {
    int *result = out;
    if (unshare(CLONE_NEWNET) < 0) { result[1] = errno; return NULL; }
    result[0] = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (result[0] < 0) result[1] = errno;
    return NULL; // the thread, and its namespace membership, end here; the fd holds the namespace
}

typedef struct {
    int netns;
    unsigned short port;
    int fd;
    int error;
} listen_request;

int purser_loopback_listen(unsigned short port) {
    int control = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (control < 0) return -1;
    struct ifreq lo;
    memset(&lo, 0, sizeof lo);
    strncpy(lo.ifr_name, "lo", IFNAMSIZ - 1);
    int failed = ioctl(control, SIOCGIFFLAGS, &lo) < 0;
    if (!failed && !(lo.ifr_flags & IFF_UP)) {
        lo.ifr_flags |= IFF_UP;
        failed = ioctl(control, SIOCSIFFLAGS, &lo) < 0;
    }
    int saved = errno;
    close(control);
    if (failed) { errno = saved; return -1; }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int on = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0 || listen(fd, 64) < 0) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

// On a thread of its own, which alone joins the namespace: loopback up (the supervisor is
// root there; the worker holds no capability to do it), then the listener. The socket stays
// in the namespace it was made in after the thread ends.
static void *listen_thread(void *raw) {
    listen_request *request = raw;
    if (setns(request->netns, CLONE_NEWNET) < 0) { request->error = errno; return NULL; }
    request->fd = purser_loopback_listen(request->port);
    if (request->fd < 0) request->error = errno;
    return NULL;
}

int purser_netns_listen(int netns_fd, unsigned short port) {
    listen_request request = {.netns = netns_fd, .port = port, .fd = -1, .error = 0};
    pthread_t thread;
    int error = pthread_create(&thread, NULL, listen_thread, &request);
    if (error != 0) { errno = error; return -1; }
    pthread_join(thread, NULL);
    if (request.fd < 0) errno = request.error;
    return request.fd;
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
        int listener = purser_seccomp_install_listener();
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
