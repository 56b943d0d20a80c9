/*
 * The "sockets" mode's probe: every way this worker might open a socket, each answered
 * "OK" or the errno's name, as one JSON object:
 *
 *   socket      {"<family>": ...} for every family 0..63: OK if socket() made one with any type
 *   socketpair  the same with socketpair()
 *   inet, inet6 {"tcp", "udp", "raw", "icmp", "sctp", "dccp", "udplite", "mptcp", ...}
 *   netlink     {"<protocol>": ...} for netlink protocols 0..31
 *   vsock       socket, bind (any CID, machine-wide port), connect (the host, CID 2), dgram,
 *               and socket() with the family in the low word and junk in the high word
 *   abi         the same socket(AF_VSOCK) through the x32 ABI and the i386 one (int 0x80:
 *               socket and socketcall), where the host has them
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <linux/netlink.h>
#include <linux/vm_sockets.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"

static const int types[] = {SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, SOCK_RDM, SOCK_DCCP, SOCK_PACKET};
#define TYPE_COUNT (int)(sizeof types / sizeof types[0])

/* 0 if socket() (or socketpair()) made one with any type, else the first attempt's errno. */
static int try_family(int family, int pair) {
    int error = 0;
    for (int t = 0; t < TYPE_COUNT; t++) {
        int fds[2] = {-1, -1};
        int got = pair ? socketpair(family, types[t], 0, fds) : (fds[0] = socket(family, types[t], 0));
        if (got >= 0) {
            close(fds[0]);
            if (pair) close(fds[1]);
            return 0;
        }
        if (error == 0) error = errno;
    }
    return error;
}

static int try_socket(int family, int type, int protocol) {
    int fd = socket(family, type | SOCK_CLOEXEC, protocol);
    if (fd < 0) return errno;
    close(fd);
    return 0;
}

static void families(const char *name, int pair) {
    out_str(",\"");
    out_str(name);
    out_str("\":{");
    for (int family = 0; family < 64; family++) {
        char key[8];
        snprintf(key, sizeof key, "%d", family);
        out_result(key, try_family(family, pair), family == 0);
    }
    out_str("}");
}

static void inet(const char *name, int family) {
    out_str(",\"");
    out_str(name);
    out_str("\":{");
    int icmp = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    out_result("tcp", try_socket(family, SOCK_STREAM, 0), 1);
    out_result("tcp by number", try_socket(family, SOCK_STREAM, IPPROTO_TCP), 0);
    out_result("tcp nonblocking", try_socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0), 0);
    out_result("udp", try_socket(family, SOCK_DGRAM, 0), 0);
    out_result("udp by number", try_socket(family, SOCK_DGRAM, IPPROTO_UDP), 0);
    out_result("raw", try_socket(family, SOCK_RAW, IPPROTO_RAW), 0);
    out_result("raw tcp", try_socket(family, SOCK_RAW, IPPROTO_TCP), 0);
    out_result("icmp", try_socket(family, SOCK_DGRAM, icmp), 0);
    out_result("sctp", try_socket(family, SOCK_STREAM, IPPROTO_SCTP), 0);
    out_result("sctp seqpacket", try_socket(family, SOCK_SEQPACKET, IPPROTO_SCTP), 0);
    out_result("dccp", try_socket(family, SOCK_DCCP, IPPROTO_DCCP), 0);
    out_result("udplite", try_socket(family, SOCK_DGRAM, IPPROTO_UDPLITE), 0);
    out_result("mptcp", try_socket(family, SOCK_STREAM, 262 /* IPPROTO_MPTCP */), 0);
    out_result("udp as tcp", try_socket(family, SOCK_DGRAM, IPPROTO_TCP), 0);
    out_result("packet type", try_socket(family, SOCK_PACKET, 0), 0);
    out_str("}");
}

static void netlink(void) {
    out_str(",\"netlink\":{");
    for (int protocol = 0; protocol < 32; protocol++) {
        char key[8];
        snprintf(key, sizeof key, "%d", protocol);
        int error = try_socket(AF_NETLINK, SOCK_RAW, protocol);
        if (error != 0 && try_socket(AF_NETLINK, SOCK_DGRAM, protocol) == 0) error = 0;
        out_result(key, error, protocol == 0);
    }
    out_str("}");
}

static void vsock(void) {
    out_str(",\"vsock\":{");
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int error = fd < 0 ? errno : 0;
    out_result("socket", error, 1);
    struct sockaddr_vm any = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 47000 + (getpid() % 1000)};
    out_result("bind", fd < 0 ? error : bind(fd, (struct sockaddr *)&any, sizeof any) < 0 ? errno : 0, 0);
    if (fd >= 0) close(fd);
    fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    error = fd < 0 ? errno : 0;
    struct sockaddr_vm host = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = 1024};
    /* A connect that got as far as the transport (EINPROGRESS, or refused by the far end) reached it. */
    out_result("connect", fd < 0 ? error : connect(fd, (struct sockaddr *)&host, sizeof host) < 0 ? errno : 0, 0);
    if (fd >= 0) close(fd);
    out_result("dgram", try_socket(AF_VSOCK, SOCK_DGRAM, 0), 0);
    out_result("seqpacket", try_socket(AF_VSOCK, SOCK_SEQPACKET, 0), 0);
    long high = syscall(SYS_socket, (long)(0x100000000L | AF_VSOCK), (long)SOCK_STREAM, 0L);
    out_result("high bits", high < 0 ? errno : (close((int)high), 0), 0);
    out_str("}");
}

#if defined(__x86_64__)
/* An i386 system call from this 64-bit process; the negative errno or the result. */
static long int80(long nr, long a, long b, long c) {
    long result;
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return result;
}

/* In a child, as a host without i386 emulation kills the caller with SIGSEGV. */
static int i386_socket(int socketcall) {
    int pipe_fds[2];
    if (pipe(pipe_fds) < 0) return errno;
    pid_t pid = fork();
    if (pid == 0) {
        long result;
        if (socketcall) {
            uint32_t *args = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
            if (args == MAP_FAILED) _exit(1);
            args[0] = AF_VSOCK;
            args[1] = SOCK_STREAM;
            args[2] = 0;
            result = int80(102 /* socketcall */, 1 /* SYS_SOCKET */, (long)(uintptr_t)args, 0);
        } else {
            result = int80(359 /* socket */, AF_VSOCK, SOCK_STREAM, 0);
        }
        int error = result < 0 ? (int)-result : 0;
        (void)!write(pipe_fds[1], &error, sizeof error);
        _exit(0);
    }
    close(pipe_fds[1]);
    int error = ECHILD;
    if (pid > 0 && read(pipe_fds[0], &error, sizeof error) != sizeof error) error = EFAULT; /* it died */
    close(pipe_fds[0]);
    if (pid > 0) waitpid(pid, NULL, 0);
    return error;
}
#endif

static void abi(void) {
    out_str(",\"abi\":{");
#if defined(__x86_64__)
    long x32 = syscall(0x40000000L | SYS_socket, (long)AF_VSOCK, (long)SOCK_STREAM, 0L);
    out_result("x32 socket", x32 < 0 ? errno : (close((int)x32), 0), 1);
    out_result("i386 socket", i386_socket(0), 0);
    out_result("i386 socketcall", i386_socket(1), 0);
#else
    out_str("\"native only\":\"OK\"");
#endif
    out_str("}");
}

void probe_sockets(void) {
    out_str("{\"probe\":\"sockets\"");
    families("socket", 0);
    families("socketpair", 1);
    inet("inet", AF_INET);
    inet("inet6", AF_INET6);
    netlink();
    vsock();
    abi();
    out_str("}");
}
