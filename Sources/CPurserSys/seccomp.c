#include "CPurserSys.h"
#include "seccomp_internal.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
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

#define FILTER_MAX (DENIED_COUNT * 2 + 128)
static struct sock_filter filters[2][FILTER_MAX];
static struct sock_fprog programs[2];
static pthread_once_t filters_once = PTHREAD_ONCE_INIT;

// The namespace flags `clone` may not carry.
#define NAMESPACE_FLAGS (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS \
                         | CLONE_NEWCGROUP | 0x00000080 /* CLONE_NEWTIME */)

// A filter being written. A test opens a block that runs only when it holds; every path
// through a block returns, so closing it is pointing the test's false branch past it.
typedef struct {
    struct sock_filter *code;
    int n, capacity;
    bool broken; // longer than its capacity, or a block longer than a jump reaches (255)
} program;

static void put(program *p, struct sock_filter instruction) {
    if (p->n == p->capacity) { p->broken = true; return; }
    p->code[p->n++] = instruction;
}
static void ret(program *p, uint32_t action) { put(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, action)); }
static void refuse(program *p, int error) { ret(p, SECCOMP_RET_ERRNO | (uint32_t)error); }

// Loads the low word of a syscall argument: what the kernel reads of an int (the high
// word, which a caller may fill with anything, is ignored by both).
static void load_arg(program *p, int index) {
    put(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[index])));
}

static int if_equal(program *p, uint32_t value) {
    put(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 0));
    return p->n - 1;
}

static void end_if(program *p, int test) {
    int offset = p->n - test - 1;
    if (offset > 255) p->broken = true;
    p->code[test].jf = (uint8_t)offset;
}

// Returns ALLOW when the loaded value is one of `values`, else falls through.
static void allow_if_one_of(program *p, const uint32_t *values, int count) {
    for (int i = 0; i < count; i++) {
        int test = if_equal(p, values[i]);
        ret(p, SECCOMP_RET_ALLOW);
        end_if(p, test);
    }
}

// The protocols an IPv4 or IPv6 socket of the type in A may have: TCP and UDP only (0 is
// the type's default, which is one of them). Raw, ping, SCTP, DCCP, UDP-Lite and MPTCP are
// kernel surface no worker needs, and a socket() of a protocol not built in loads its module.
static void inet_protocols(program *p) {
    static const uint32_t stream[] = {0, IPPROTO_TCP}, datagram[] = {0, IPPROTO_UDP};
    load_arg(p, 1);
    put(p, (struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf)); // the type, without its flags
    int is_stream = if_equal(p, SOCK_STREAM);
    load_arg(p, 2);
    allow_if_one_of(p, stream, 2);
    refuse(p, EPROTONOSUPPORT);
    end_if(p, is_stream);
    int is_datagram = if_equal(p, SOCK_DGRAM);
    load_arg(p, 2);
    allow_if_one_of(p, datagram, 2);
    refuse(p, EPROTONOSUPPORT);
    end_if(p, is_datagram);
    refuse(p, EPROTONOSUPPORT);
}

// socket() and socketpair(): an allow-list of families, answered here in the kernel.
// Namespaces hold Unix, IPv4, IPv6 and netlink-route sockets (in a network namespace of
// loopback only, and down, the last three reach nothing); they do not hold vsock (which on
// a VM reaches the hypervisor, and whose ports are machine-wide), nor the other netlink
// protocols (uevents, for one, reach every namespace of the initial user namespace), nor
// the rest of the families the kernel may have. socketpair() is Unix only.
static void socket_calls(program *p) {
    static const uint32_t unix_only[] = {AF_UNIX}, route[] = {NETLINK_ROUTE};
    int is_socket = if_equal(p, SYS_socket);
    load_arg(p, 0);
    allow_if_one_of(p, unix_only, 1);
    int is_netlink = if_equal(p, AF_NETLINK);
    load_arg(p, 2);
    allow_if_one_of(p, route, 1);
    refuse(p, EPROTONOSUPPORT);
    end_if(p, is_netlink);
    int is_inet = if_equal(p, AF_INET);
    inet_protocols(p);
    end_if(p, is_inet);
    int is_inet6 = if_equal(p, AF_INET6);
    inet_protocols(p);
    end_if(p, is_inet6);
    refuse(p, EAFNOSUPPORT);
    end_if(p, is_socket);
    int is_pair = if_equal(p, SYS_socketpair);
    load_arg(p, 0);
    allow_if_one_of(p, unix_only, 1);
    refuse(p, EAFNOSUPPORT);
    end_if(p, is_pair);
}

// Another architecture's syscall numbers (i386 through int 0x80, x32) would slip past a
// list of this one's, so such calls are refused whole.
static void build_filter(int mode, uint32_t action) {
    program p = {.code = filters[mode], .n = 0, .capacity = FILTER_MAX};
    put(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PURSER_AUDIT_ARCH, 1, 0));
    refuse(&p, ENOSYS);
    put(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
    put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000U, 0, 1));
    refuse(&p, ENOSYS);
#endif
    int is_clone3 = if_equal(&p, SYS_clone3);
    refuse(&p, ENOSYS);
    end_if(&p, is_clone3);
    // clone: allowed unless its flags (the first argument, low word) ask for a namespace.
    int is_clone = if_equal(&p, SYS_clone);
    load_arg(&p, 0);
    put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 1, 0));
    ret(&p, SECCOMP_RET_ALLOW);
    ret(&p, action);
    end_if(&p, is_clone);
    socket_calls(&p);
    // No listener of the worker's own: its filter would be the newest, whose notification
    // wins, and it could answer its own refused calls "go on" once the supervisor has let
    // go of the run's listener (see notifier.c).
    int is_seccomp = if_equal(&p, SYS_seccomp);
    load_arg(&p, 1);
    put(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SECCOMP_FILTER_FLAG_NEW_LISTENER, 0, 1));
    refuse(&p, EPERM);
    ret(&p, SECCOMP_RET_ALLOW);
    end_if(&p, is_seccomp);
    for (int i = 0; i < DENIED_COUNT; i++) {
        if (denied_syscalls[i].number == SYS_clone) continue;
        int denied = if_equal(&p, (uint32_t)denied_syscalls[i].number);
        ret(&p, action);
        end_if(&p, denied);
    }
    ret(&p, SECCOMP_RET_ALLOW);
    // An empty program makes seccomp() fail with EINVAL, so the spawn fails loudly.
    programs[mode] = (struct sock_fprog){.len = p.broken ? 0 : (unsigned short)p.n, .filter = p.code};
}

static void build_filters(void) {
    build_filter(0, SECCOMP_RET_ERRNO | EPERM);
    build_filter(1, SECCOMP_RET_USER_NOTIF);
}

void purser_seccomp_prepare(void) { pthread_once(&filters_once, build_filters); }

int purser_seccomp_install_listener(void) {
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &programs[1]);
}

int purser_isolate_seccomp(int socket) {
    if (socket < 0) return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &programs[0]) < 0 ? -1 : 0;
    int listener = purser_seccomp_install_listener();
    if (listener < 0) return -1;
    // The worker must never hold its own listener: it could answer its own denied calls.
    int sent = purser_send_fd(socket, listener);
    int saved = errno;
    close(listener);
    close(socket);
    errno = saved;
    return sent;
}
