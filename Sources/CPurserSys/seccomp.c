#include "CPurserSys.h"
#include "seccomp_internal.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

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

int purser_seccomp_install_listener(void) {
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &programs[1]);
}

int purser_isolate_seccomp(int socket) {
    if (socket < 0) return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &programs[0]) < 0 ? -1 : 0;
    int listener = purser_seccomp_install_listener();
    if (listener < 0) return -1;
    // The worker must never hold its own listener: it could answer its own denied calls.
    int sent = send_fd(socket, listener);
    int saved = errno;
    close(listener);
    close(socket);
    errno = saved;
    return sent;
}
