#include "CPurserSys.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

// MARK: the notifier thread

// Each watched listener, until its filter has no process left and its run took the record.
typedef struct {
    int fd;                        // -1 once closed
    int socket;                    // >= 0 while the listener is still to come over it
    uint64_t tag;
    int numbers[16];
    int count;
    int calls;                     // notifications answered
    bool capped;                   // closed after PURSER_SECCOMP_WATCHED_CALLS of them
    bool taken;
} watch;

static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t notifier_once = PTHREAD_ONCE_INIT;
static watch *watches;
static int watch_count, watch_capacity;
static int notifier_wake = -1;
static int notifier_error;

// Counts a refused call of the run `tag`; true once the run has had its share.
static bool record(uint64_t tag, int nr) {
    bool full = false;
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < watch_count; i++) {
        watch *w = &watches[i];
        if (w->tag != tag) continue;
        w->calls++;
        full = full || w->calls >= PURSER_SECCOMP_WATCHED_CALLS;
        bool seen = false;
        for (int j = 0; j < w->count; j++) seen = seen || w->numbers[j] == nr;
        if (!seen && w->count < 16) w->numbers[w->count++] = nr;
    }
    pthread_mutex_unlock(&watch_lock);
    return full;
}

// Past its share, a run's refused calls are the kernel's alone: with the listener closed,
// the filter's notification fails at once (ENOSYS), and this thread, which serves every
// run, sees no more of them. Nothing under the filter can put a listener of its own in its
// place and answer itself: the filter refuses a new listener (see seccomp.c).
static void let_go(int fd) {
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < watch_count; i++) {
        watch *w = &watches[i];
        if (w->fd != fd) continue;
        close(fd);
        w->fd = -1;
        w->capped = true;
    }
    pthread_mutex_unlock(&watch_lock);
}

static void answer(int fd, uint64_t tag, void *buffer, size_t size) {
    memset(buffer, 0, size);
    if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buffer) < 0) return; // the caller died meanwhile
    struct seccomp_notif *request = buffer;
    bool full = record(tag, request->data.nr);
    struct seccomp_notif_resp response = {.id = request->id, .val = 0, .error = -EPERM, .flags = 0};
    (void)ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &response);
    if (full) let_go(fd);
}

// Closes what was taken and forgets it; returns the fds to poll: each listener, or the
// socket its listener is still to come over.
static int collect(struct pollfd *polls, uint64_t *tags, int capacity) {
    pthread_mutex_lock(&watch_lock);
    int n = 0;
    for (int i = 0; i < watch_count;) {
        watch *w = &watches[i];
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
// gone); a socket that is readable brings the listener. Until then a listener stays open,
// unless its run had its share (let_go).
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
    watches[watch_count++] =
        (watch){.fd = listener, .socket = socket, .tag = tag, .count = 0, .calls = 0, .capped = false, .taken = false};
    pthread_mutex_unlock(&watch_lock);
    wake_notifier();
    return 0;
}

int purser_seccomp_watch(int listener, uint64_t tag) { return watch_entry(listener, -1, tag); }

int purser_seccomp_watch_socket(int socket, uint64_t tag) { return watch_entry(-1, socket, tag); }

int purser_seccomp_take(uint64_t tag, int *numbers, int max, int *calls, int *capped) {
    int found = 0;
    *calls = 0;
    *capped = 0;
    pthread_mutex_lock(&watch_lock);
    for (int i = 0; i < watch_count; i++) {
        watch *w = &watches[i];
        if (w->tag != tag || w->taken) continue;
        for (int j = 0; j < w->count && found < max; j++) numbers[found++] = w->numbers[j];
        *calls += w->calls;
        *capped = *capped || w->capped;
        w->taken = true;
    }
    pthread_mutex_unlock(&watch_lock);
    wake_notifier();
    return found;
}

int purser_send_fd(int socket, int fd) {
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
