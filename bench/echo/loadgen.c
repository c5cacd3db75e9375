/* Closed-loop TCP echo load generator: N connections, each sends a message of SIZE bytes and
 * waits for all of it to come back before sending the next, for SECONDS seconds.
 * Prints: requests p50_us p99_us. Used by bench/echo.py; compiled there with the system cc. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { int fd; size_t sent, got; double started; } conn_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: loadgen PORT CONNECTIONS SIZE SECONDS\n"); return 2; }
    int port = atoi(argv[1]), n = atoi(argv[2]);
    size_t size = (size_t)atol(argv[3]);
    double seconds = atof(argv[4]);
    char *out = malloc(size), *in = malloc(65536);
    memset(out, 'x', size);
    size_t cap = 1 << 22, count = 0;
    double *lat = malloc(cap * sizeof(double));
    conn_t *c = calloc(n, sizeof(conn_t));
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    for (int i = 0; i < n; i++) {
        c[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct timeval limit = {.tv_sec = 10};  /* a server that never accepts fails in 10 s */
        setsockopt(c[i].fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
        if (connect(c[i].fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
        fcntl(c[i].fd, F_SETFL, O_NONBLOCK);  /* partial writes and reads from here on */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
        c[i].started = now();
    }
    double end = now() + seconds;
    struct epoll_event evs[256];
    while (now() < end) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int j = 0; j < k; j++) {
            conn_t *x = &c[evs[j].data.u32];
            if ((evs[j].events & EPOLLOUT) && x->sent < size) {
                ssize_t w = write(x->fd, out + x->sent, size - x->sent);
                if (w > 0) x->sent += (size_t)w;
                if (x->sent == size) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[j].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
                }
            }
            if (evs[j].events & EPOLLIN) {
                ssize_t r = read(x->fd, in, 65536);
                if (r <= 0) { if (r < 0 && errno == EAGAIN) continue; fprintf(stderr, "closed\n"); return 1; }
                x->got += (size_t)r;
                if (x->got >= size) {
                    double t = now();
                    if (count < cap) lat[count] = t - x->started;
                    count++;
                    x->sent = x->got = 0;
                    x->started = t;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = evs[j].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
                }
            }
        }
    }
    size_t m = count < cap ? count : cap;
    qsort(lat, m, sizeof(double), cmp);
    double p50 = m ? lat[m / 2] : 0, p99 = m ? lat[(size_t)(m * 0.99)] : 0;
    printf("%zu %.0f %.0f\n", count, p50 * 1e6, p99 * 1e6);
    return 0;
}
