/*
 * conn-tool: new TCP connections per second, the load and the server for the
 * NAT benchmark. Both sides are plain C so that their own cost stays small
 * beside the router's, and the stack and the kernel get the same load.
 *
 *   conn-tool serve PORT
 *       accept loop: writes "ok\n" to each connection and closes it (the server
 *       closes first, as an HTTP/1.0 server does)
 *   conn-tool connect HOST PORT SECONDS CONCURRENCY
 *       keeps CONCURRENCY non-blocking connects in flight; each one reads until
 *       the server's close, closes and is replaced by a new one. Prints
 *       "connections N seconds S errors E slow W unfinished U": slow counts
 *       connections that took over 500 ms (a lost SYN or FIN shows there),
 *       unfinished those still open when time ran out.
 *   conn-tool hold HOST PORT N SECONDS [PATH]
 *       opens N keep-alive HTTP/1.1 connections (at most 256 handshakes in
 *       flight), sends "GET PATH" on each and waits for every answer, then prints
 *       "open N answered A errors E seconds S" and holds them all for SECONDS
 *       (the caller measures the server meanwhile), asks once more on each
 *       ("again A2 errors E2"), closes them all and prints "closed". A response
 *       counts when its header ends (status line "HTTP/1.1 "); errors are
 *       connections that failed or were closed by the server.
 *
 *   cc -O2 -o conn-tool bench/conn-tool.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int serve(const char *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(port));
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
    perror("bind/listen");
    return 2;
  }
  for (;;) {
    int c = accept(fd, NULL, NULL);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      perror("accept");
      return 2;
    }
    if (write(c, "ok\n", 3) < 0) {
      /* the client went away; nothing to do */
    }
    close(c);
  }
}

static int ep;
static struct sockaddr_in dst;
static double started[MAX_FD];
static unsigned long long errors, slow, done;
static int open_now;

static void start_one(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0 || fd >= MAX_FD) {
    perror("socket");
    exit(2);
  }
  started[fd] = now();
  if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
    errors++;
    close(fd);
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  open_now++;
}

static void finish(int fd, int ok) {
  double took = now() - started[fd];
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  open_now--;
  if (!ok) errors++;
  else done++;
  if (took > 0.5) slow++;
}

/* ---- hold: many concurrent keep-alive connections ---- */

static char request[512];
static size_t request_len;
/* per fd: 0 unused, 1 connecting, 2 waiting for an answer, 3 answered (idle), 4 failed */
static unsigned char hstate[MAX_FD];

static void hold_fail(int fd, unsigned long long *errs) {
  if (hstate[fd] == 4) return;
  hstate[fd] = 4;
  (*errs)++;
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
}

/* Runs the event loop until `pending` connections are answered or failed, or the deadline. */
static void hold_pump(unsigned long long *pending, unsigned long long *answered, unsigned long long *errs, double deadline,
                      int *to_open, int *in_flight) {
  struct epoll_event evs[512];
  char buf[4096];
  while (*pending > 0 && now() < deadline) {
    while (*to_open > 0 && *in_flight < 256) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0 || fd >= MAX_FD) {
        perror("socket");
        exit(2);
      }
      (*to_open)--;
      if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        (*errs)++;
        (*pending)--;
        close(fd);
        continue;
      }
      hstate[fd] = 1;
      (*in_flight)++;
      struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    int n = epoll_wait(ep, evs, 512, 50);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      unsigned st = hstate[fd];
      if (st == 1) {
        (*in_flight)--;
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err != 0 || (evs[i].events & EPOLLERR)) {
          hold_fail(fd, errs);
          (*pending)--;
          continue;
        }
        hstate[fd] = 2;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        if (write(fd, request, request_len) != (ssize_t)request_len) {
          hold_fail(fd, errs);
          (*pending)--;
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf - 1);
      if (r > 0) {
        buf[r] = 0;
        if (st == 2 && strncmp(buf, "HTTP/1.1 ", 9) == 0 && strstr(buf, "\r\n\r\n") != NULL) {
          hstate[fd] = 3;
          (*answered)++;
          (*pending)--;
        }
        continue;
      }
      if (r < 0 && errno == EAGAIN) continue;
      /* closed or reset by the server */
      if (st == 2) (*pending)--;
      hold_fail(fd, errs);
    }
  }
}

static int hold(int argc, char **argv) {
  int total = atoi(argv[4]);
  /* One descriptor per connection: the soft limit goes up to the hard one. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)total + 16 > rl.rlim_cur) {
    fprintf(stderr, "conn-tool: %d connections need more file descriptors than the limit (%llu)\n", total, (unsigned long long)rl.rlim_cur);
    return 2;
  }
  double seconds = atof(argv[5]);
  const char *path = argc > 6 ? argv[6] : "/";
  request_len = (size_t)snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, argv[2]);
  ep = epoll_create1(0);
  unsigned long long pending = (unsigned long long)total, answered = 0, errs = 0;
  int to_open = total, in_flight = 0;
  double start = now();
  hold_pump(&pending, &answered, &errs, start + 120, &to_open, &in_flight);
  printf("open %d answered %llu errors %llu seconds %.3f\n", total, answered, errs, now() - start);
  fflush(stdout);
  /* Hold them: the server sees only idle keep-alive connections now. */
  double until = now() + seconds;
  while (now() < until) {
    struct epoll_event evs[64];
    char buf[4096];
    int n = epoll_wait(ep, evs, 64, 50);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      ssize_t r = read(fd, buf, sizeof buf);
      if (r == 0 || (r < 0 && errno != EAGAIN)) hold_fail(fd, &errs);
    }
  }
  /* Once more on each connection still open. */
  unsigned long long again = 0, errs2 = errs;
  pending = 0;
  for (int fd = 0; fd < MAX_FD; fd++)
    if (hstate[fd] == 3) {
      hstate[fd] = 2;
      if (write(fd, request, request_len) != (ssize_t)request_len) hold_fail(fd, &errs2);
      else pending++;
    }
  to_open = 0;
  hold_pump(&pending, &again, &errs2, now() + 120, &to_open, &in_flight);
  printf("again %llu errors %llu\n", again, errs2 - errs);
  fflush(stdout);
  for (int fd = 0; fd < MAX_FD; fd++)
    if (hstate[fd] != 0) close(fd);
  printf("closed\n");
  return 0;
}

/* dst = HOST:PORT; -1 (after saying so) when HOST is not an IPv4 address. */
static int set_dst(const char *host, const char *port) {
  memset(&dst, 0, sizeof dst);
  dst.sin_family = AF_INET;
  dst.sin_port = htons((unsigned short)atoi(port));
  if (inet_pton(AF_INET, host, &dst.sin_addr) != 1) {
    fprintf(stderr, "conn-tool: bad address %s\n", host);
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "serve") == 0) return serve(argv[2]);
  if (argc >= 6 && strcmp(argv[1], "hold") == 0) {
    if (set_dst(argv[2], argv[3]) != 0) return 2;
    return hold(argc, argv);
  }
  if (argc < 6 || strcmp(argv[1], "connect") != 0) {
    fprintf(stderr, "usage: conn-tool serve PORT | conn-tool connect HOST PORT SECONDS CONCURRENCY | conn-tool hold HOST PORT N SECONDS [PATH]\n");
    return 2;
  }
  if (set_dst(argv[2], argv[3]) != 0) return 2;
  double seconds = atof(argv[4]);
  int conc = atoi(argv[5]);
  ep = epoll_create1(0);
  double start = now(), end = start + seconds;
  for (int i = 0; i < conc; i++) start_one();
  struct epoll_event evs[256];
  char buf[256];
  while (now() < end) {
    int n = epoll_wait(ep, evs, 256, 50);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (evs[i].events & EPOLLERR) {
        finish(fd, 0);
      } else {
        ssize_t r;
        while ((r = read(fd, buf, sizeof buf)) > 0) {
        }
        if (r == 0) finish(fd, 1);
        else if (errno != EAGAIN) finish(fd, 0);
        else continue;
      }
      if (now() < end) start_one();
    }
  }
  printf("connections %llu seconds %.3f errors %llu slow %llu unfinished %d\n", done, now() - start, errors, slow, open_now);
  return 0;
}
