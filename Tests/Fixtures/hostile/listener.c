/*
 * A worker that answers its own refused calls: it installs a filter of its own that sends
 * keyctl to a listener it holds, and answers "go on" (SECCOMP_USER_NOTIF_FLAG_CONTINUE) to
 * a child's keyctl. Where the supervisor's listener is gone and nothing else stops this,
 * the kernel picks the newest filter's notification, and the refused call runs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostile.h"

static int install_own_listener(void) {
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_keyctl, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = sizeof code / sizeof code[0], .filter = code};
    (void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &program);
}

/* A child's keyctl, answered "go on" here; 0 if it ran, else its errno. */
static int keyctl_through(int listener) {
    int pipe_fds[2];
    if (pipe(pipe_fds) < 0) return errno;
    pid_t pid = fork();
    if (pid == 0) {
        long result = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0);
        int error = result < 0 ? errno : 0;
        (void)!write(pipe_fds[1], &error, sizeof error);
        _exit(0);
    }
    close(pipe_fds[1]);
    struct seccomp_notif_sizes sizes = {0};
    (void)syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes);
    size_t size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif : sizeof(struct seccomp_notif);
    struct seccomp_notif *request = calloc(1, size);
    if (request && ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, request) == 0) {
        struct seccomp_notif_resp response = {.id = request->id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
        (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &response);
    }
    free(request);
    int error = ECHILD;
    if (read(pipe_fds[0], &error, sizeof error) != sizeof error) error = EFAULT;
    close(pipe_fds[0]);
    waitpid(pid, NULL, 0);
    return error;
}

void try_own_listener(void) {
    int listener = install_own_listener();
    out_result("own listener", listener < 0 ? errno : 0, 0);
    out_result("keyctl through own listener", listener < 0 ? EBADF : keyctl_through(listener), 0);
    if (listener >= 0) close(listener);
}
