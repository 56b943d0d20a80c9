#include "CPurserStore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

enum { SLOTS = 256, PATH_BYTES = 1024, REMEMBERED = 256, FREE = 0, FILLING = 1, LIVE = 2 };

/// A watched file. The handler reads live slots only; a slot is filled in before it goes live.
typedef struct {
    _Atomic int state;
    _Atomic int faults;
    _Atomic int identified;
    _Atomic unsigned int major, minor;
    _Atomic unsigned long long inode;
    char path[PATH_BYTES];
} watched_file;

static watched_file slots[SLOTS];
/// Pages made private lately: a second thread faulting on one a moment later just retries.
static _Atomic uintptr_t remembered[REMEMBERED];
static _Atomic unsigned int remembered_next;
static atomic_flag rescuing = ATOMIC_FLAG_INIT;
static struct sigaction previous;
static long page_size;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_error;

/// One line of /proc/self/maps, as far as it matters here.
typedef struct {
    uintptr_t start, end;
    int shared;
    unsigned int major, minor;
    unsigned long long inode;
    const char *path;
    size_t path_length;
} mapping;

static const char *parse_number(const char *p, const char *end, int base, unsigned long long *value) {
    unsigned long long result = 0;
    const char *first = p;
    for (; p < end; p++) {
        int digit;
        if (*p >= '0' && *p <= '9') digit = *p - '0';
        else if (base == 16 && *p >= 'a' && *p <= 'f') digit = *p - 'a' + 10;
        else break;
        result = result * (unsigned long long)base + (unsigned long long)digit;
    }
    *value = result;
    return p == first ? NULL : p;
}

static const char *expect(const char *p, const char *end, char c) {
    return p && p < end && *p == c ? p + 1 : NULL;
}

/// "start-end perms offset major:minor inode   path"
static int parse_mapping(const char *p, const char *end, mapping *out) {
    unsigned long long start, stop, offset, major, minor, inode;
    p = parse_number(p, end, 16, &start);
    p = p ? parse_number(expect(p, end, '-'), end, 16, &stop) : NULL;
    p = expect(p, end, ' ');
    if (!p || end - p < 5) return 0;
    out->shared = p[3] == 's';
    p = expect(p + 4, end, ' ');
    p = p ? parse_number(p, end, 16, &offset) : NULL;
    p = p ? parse_number(expect(p, end, ' '), end, 16, &major) : NULL;
    p = p ? parse_number(expect(p, end, ':'), end, 16, &minor) : NULL;
    p = p ? parse_number(expect(p, end, ' '), end, 10, &inode) : NULL;
    if (!p) return 0;
    while (p < end && *p == ' ') p++;
    out->start = (uintptr_t)start;
    out->end = (uintptr_t)stop;
    out->major = (unsigned int)major;
    out->minor = (unsigned int)minor;
    out->inode = inode;
    out->path = p;
    out->path_length = (size_t)(end - p);
    return 1;
}

static int same_path(const watched_file *slot, const mapping *map) {
    size_t length = strnlen(slot->path, PATH_BYTES);
    if (length == 0 || length == PATH_BYTES || map->path_length < length) return 0;
    if (memcmp(map->path, slot->path, length) != 0) return 0;
    static const char deleted[] = " (deleted)";
    return map->path_length == length ||
        (map->path_length == length + sizeof deleted - 1 && memcmp(map->path + length, deleted, sizeof deleted - 1) == 0);
}

/// Counts a fault in every live slot the mapping is of; returns how many.
static int count_fault(const mapping *map, int record) {
    int matches = 0;
    for (int i = 0; i < SLOTS; i++) {
        watched_file *slot = &slots[i];
        if (atomic_load_explicit(&slot->state, memory_order_acquire) != LIVE) continue;
        int same_file = atomic_load(&slot->identified) && atomic_load(&slot->inode) == map->inode &&
            atomic_load(&slot->major) == map->major && atomic_load(&slot->minor) == map->minor;
        if (!same_file && !same_path(slot, map)) continue;
        matches++;
        if (record) atomic_fetch_add(&slot->faults, 1);
    }
    return matches;
}

static int open_retrying(const char *path, int flags) {
    int fd;
    do { fd = open(path, flags); } while (fd < 0 && errno == EINTR);
    return fd;
}

static ssize_t read_retrying(int fd, char *buffer, size_t size) {
    ssize_t got;
    do { got = read(fd, buffer, size); } while (got < 0 && errno == EINTR);
    return got;
}

/// Finds the mapping that holds `page`; 1 if it is a shared mapping of a watched file.
static int find_watched(uintptr_t page, mapping *found) {
    int fd = open_retrying("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buffer[4096];
    size_t have = 0;
    int result = 0;
    for (;;) {
        ssize_t got = read_retrying(fd, buffer + have, sizeof buffer - have);
        if (got <= 0) break;
        have += (size_t)got;
        const char *line = buffer, *end = buffer + have, *newline;
        while ((newline = memchr(line, '\n', (size_t)(end - line))) != NULL) {
            mapping map;
            if (parse_mapping(line, newline, &map) && map.start <= page && page < map.end) {
                result = map.shared && count_fault(&map, 0) > 0;
                if (result) *found = map;
                close(fd);
                return result;
            }
            line = newline + 1;
        }
        have = (size_t)(end - line);
        // A line longer than the buffer (a very long path) is not one of ours: skip it.
        if (have == sizeof buffer) have = 0;
        memmove(buffer, line, have);
    }
    close(fd);
    return result;
}

/// Puts a private copy of the page in its place. The copy is read through the kernel, so a
/// page past the file's end fails there (EFAULT) instead of faulting again; it stays zeros.
static int make_private(uintptr_t page) {
    void *copy = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (copy == MAP_FAILED) return 0;
    struct iovec local = {copy, (size_t)page_size}, remote = {(void *)page, (size_t)page_size};
    (void)process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (mremap(copy, (size_t)page_size, (size_t)page_size, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)page) == MAP_FAILED) {
        munmap(copy, (size_t)page_size);
        return 0;
    }
    return 1;
}

static int was_made_private(uintptr_t page) {
    for (int i = 0; i < REMEMBERED; i++) {
        if (atomic_load(&remembered[i]) == page) return 1;
    }
    return 0;
}

static int rescue(uintptr_t address) {
    uintptr_t page = address & ~((uintptr_t)page_size - 1);
    while (atomic_flag_test_and_set_explicit(&rescuing, memory_order_acquire)) {}
    int caught = 0;
    mapping map;
    if (find_watched(page, &map)) {
        caught = make_private(page);
        if (caught) {
            count_fault(&map, 1);
            atomic_store(&remembered[atomic_fetch_add(&remembered_next, 1) % REMEMBERED], page);
        }
    } else {
        caught = was_made_private(page);
    }
    atomic_flag_clear_explicit(&rescuing, memory_order_release);
    return caught;
}

/// Any other SIGBUS goes where it went before: the handler that was there, else death.
static void pass_on(int signal, siginfo_t *info, void *context) {
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
        previous.sa_sigaction(signal, info, context);
        return;
    }
    if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(signal);
        return;
    }
    // The access faults again on return, and the default action ends the process.
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigaction(SIGBUS, &fallback, NULL);
}

static void on_sigbus(int signal, siginfo_t *info, void *context) {
    int saved = errno;
    int caught = rescue((uintptr_t)info->si_addr);
    errno = saved;
    if (!caught) pass_on(signal, info, context);
}

static void install(void) {
    page_size = sysconf(_SC_PAGESIZE);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &previous) != 0) install_error = errno;
}

int purser_store_watch(const char *path) {
    pthread_once(&install_once, install);
    if (install_error) {
        errno = install_error;
        return -1;
    }
    for (int i = 0; i < SLOTS; i++) {
        int expected = FREE;
        if (!atomic_compare_exchange_strong(&slots[i].state, &expected, FILLING)) continue;
        watched_file *slot = &slots[i];
        atomic_store(&slot->faults, 0);
        atomic_store(&slot->identified, 0);
        memset(slot->path, 0, PATH_BYTES);
        // A longer path is matched by device and inode only.
        if (strlen(path) < PATH_BYTES) strcpy(slot->path, path);
        atomic_store_explicit(&slot->state, LIVE, memory_order_release);
        return i;
    }
    errno = ENOSPC;
    return -1;
}

void purser_store_identify(int slot, unsigned long long device, unsigned long long inode) {
    if (slot < 0 || slot >= SLOTS) return;
    atomic_store(&slots[slot].major, major((dev_t)device));
    atomic_store(&slots[slot].minor, minor((dev_t)device));
    atomic_store(&slots[slot].inode, inode);
    atomic_store(&slots[slot].identified, 1);
}

int purser_store_faults(int slot) {
    if (slot < 0 || slot >= SLOTS) return 0;
    return atomic_load(&slots[slot].faults);
}

void purser_store_forget(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    atomic_store_explicit(&slots[slot].state, FREE, memory_order_release);
}
