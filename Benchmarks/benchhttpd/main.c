/*
 * benchhttpd: the cheapest HTTP/1.1 upstream we could write, for measuring what the
 * gateway adds without the test server's own cost in the way. One thread, epoll,
 * keep-alive; every request (GET, no body) gets "200 hello". Prints its port, then serves
 * until killed. Usage: benchhttpd [PORT]   (0 or none: any free port)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n";

static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (void *)&address, sizeof address) != 0 || listen(fd, 512) != 0) {
        perror("benchhttpd: listen");
        exit(1);
    }
    socklen_t length = sizeof address;
    getsockname(fd, (void *)&address, &length);
    printf("%d\n", ntohs(address.sin_port));
    fflush(stdout);
    return fd;
}

/* Counts the requests that ended in this read: a request ends with an empty line. Requests
 * split across reads are answered when their end arrives, which is all a GET needs. */
static int requests_in(const char *data, ssize_t length, int *tail) {
    int count = 0;
    for (ssize_t i = 0; i < length; i++) {
        *tail = (data[i] == '\r' || data[i] == '\n') ? *tail + 1 : 0;
        if (*tail == 4) count++;
    }
    return count;
}

int main(int argc, char **argv) {
    /* Dies with whoever started it, so a benchmark that crashes leaves nothing behind: by
     * watching its parent, not with PR_SET_PDEATHSIG, which fires when the *thread* that
     * started it ends (a pool thread that went idle killed the upstream mid-benchmark). */
    pid_t parent = getppid();
    signal(SIGPIPE, SIG_IGN);
    int server = listen_on(argc > 1 ? atoi(argv[1]) : 0), one = 1;
    int poller = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = server};
    epoll_ctl(poller, EPOLL_CTL_ADD, server, &event);
    static int tails[65536];
    char input[65536];
    struct epoll_event events[256];
    for (;;) {
        int ready = epoll_wait(poller, events, 256, 1000);
        if (getppid() != parent) return 0;
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == server) {
                int client;
                while ((client = accept4(server, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (client >= 65536) { close(client); continue; }
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    tails[client] = 0;
                    struct epoll_event added = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(poller, EPOLL_CTL_ADD, client, &added);
                }
                continue;
            }
            ssize_t length = read(fd, input, sizeof input);
            if (length <= 0) {
                close(fd);
                continue;
            }
            for (int n = requests_in(input, length, &tails[fd]); n > 0; n--) (void)!write(fd, reply, sizeof reply - 1);
        }
    }
}
